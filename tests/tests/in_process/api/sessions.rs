//! `GET /api/sessions`, `DELETE /api/sessions/{id}`, `GET /api/protected`.

use authd::Config;
use integration_tests::app::{Backend, PASSWORD, spawn_app};
use serde_json::json;

integration_tests::on_both!(
    std::future::ready;
    protected_answers_the_caller,
    bearer_errors,
    sessions_are_listed,
    a_session_is_revoked,
    revoking_other_sessions_is_not_found
);

pub async fn protected_answers_the_caller(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let s = app.signed_in("alice").await;
    let r = app.protected(&s.access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert!(body["message"].is_string());
    assert_eq!(body["user"], json!({"id": s.user_id, "username": "alice"}));
    assert!(body["tokenExpiresAt"].as_i64().unwrap() > 0);
}

pub async fn bearer_errors(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    for path in ["/api/protected", "/api/sessions"] {
        let r = app.get(path).send().await;
        r.assert_problem(401, "invalid_token");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer"),
            "{path} without a token"
        );
        let r = app.get(path).bearer("nonsense").send().await;
        r.assert_problem(401, "invalid_token");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\""),
            "{path} with a bad token"
        );
        let r = app
            .get(path)
            .header("authorization", "Basic YTpi")
            .send()
            .await;
        r.assert_problem(401, "invalid_token");
    }
    let r = app
        .delete(&format!("/api/sessions/{}", uuid::Uuid::new_v4()))
        .send()
        .await;
    r.assert_problem(401, "invalid_token");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
}

pub async fn sessions_are_listed(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    app.register("alice", PASSWORD).await;
    let body = json!({"username": "alice", "password": PASSWORD});
    let phone = app
        .post("/api/login")
        .header("user-agent", "phone/1.0")
        .json(&body)
        .send()
        .await;
    let laptop = app
        .post("/api/login")
        .header("user-agent", "laptop/2.0")
        .json(&body)
        .send()
        .await;
    let r = app
        .get("/api/sessions")
        .bearer(&laptop.access_token())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = r.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["userAgent"], "laptop/2.0");
    for s in list {
        assert!(uuid::Uuid::parse_str(s["id"].as_str().unwrap()).is_ok());
        for field in ["createdAt", "lastUsedAt", "expiresAt"] {
            assert!(s[field].as_i64().unwrap() > 1_600_000_000, "{field} in {s}");
        }
        assert_eq!(s["ip"], "127.0.0.1");
        assert_eq!(s["mfa"], false, "password logins: {s}");
        assert_eq!(
            s["expiresAt"].as_i64().unwrap() - s["createdAt"].as_i64().unwrap(),
            30 * 86_400
        );
    }
    assert!(
        list.iter()
            .any(|s| s["userAgent"] == "phone/1.0" && s["current"] == false)
    );
    assert_eq!(phone.status, 200);
}

pub async fn a_session_is_revoked(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let phone = app.signed_in("alice").await;
    let laptop = app.login("alice", PASSWORD).await;
    let laptop_access = laptop.access_token();
    let list = app
        .get("/api/sessions")
        .bearer(&laptop_access)
        .send()
        .await
        .json();
    let phone_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .delete(&format!("/api/sessions/{phone_id}"))
        .bearer(&laptop_access)
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.protected(&phone.access)
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(&phone.refresh)
        .await
        .assert_problem(401, "session_revoked");
    assert_eq!(app.protected(&laptop_access).await.status, 200);
    let list = app
        .get("/api/sessions")
        .bearer(&laptop_access)
        .send()
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // Already revoked: not a live session any more.
    app.delete(&format!("/api/sessions/{phone_id}"))
        .bearer(&laptop_access)
        .send()
        .await
        .assert_problem(404, "not_found");
}

pub async fn revoking_other_sessions_is_not_found(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let alice = app.signed_in("alice").await;
    let bob = app.signed_in("bob").await;
    let list = app
        .get("/api/sessions")
        .bearer(&bob.access)
        .send()
        .await
        .json();
    let bob_session = list[0]["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/sessions/{bob_session}"))
        .bearer(&alice.access)
        .send()
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        app.protected(&bob.access).await.status,
        200,
        "bob's session survives"
    );
    let unknown = uuid::Uuid::new_v4();
    app.delete(&format!("/api/sessions/{unknown}"))
        .bearer(&alice.access)
        .send()
        .await
        .assert_problem(404, "not_found");
    app.delete("/api/sessions/not-a-uuid")
        .bearer(&alice.access)
        .send()
        .await
        .assert_problem(404, "not_found");
}

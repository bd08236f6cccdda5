//! `POST /api/password` (contract v2) on both databases: the other sessions
//! end with their sockets (4003 within 1 s), the caller's stays; the current
//! password is checked through the login throttle.

use std::time::Duration;

use integration_tests::app::{Backend, TestApp, TestOptions, spawn_app};
use integration_tests::client::PASSWORD;
use integration_tests::ws_client::{Connect, WsClient};
use serde_json::json;

const NEW: &str = "a brand new passphrase";

integration_tests::on_both!(
    std::future::ready;
    a_password_change_ends_every_other_session_and_keeps_the_callers,
    wrong_current_passwords_count_towards_the_login_throttle,
    a_password_change_needs_a_token_and_a_good_new_password
);

async fn socket(app: &TestApp, access: &str) -> WsClient {
    let path = format!("/ws?token={access}");
    let mut client = Connect::with_token(&path)
        .open(app.ws_addr)
        .await
        .unwrap()
        .expect("admitted");
    let hello = client.recv_json(Duration::from_secs(5)).await.unwrap();
    assert_eq!(hello["type"], "connected", "{hello}");
    client
}

async fn change(
    app: &TestApp,
    access: &str,
    current: &str,
    new: &str,
) -> integration_tests::client::TestResponse {
    app.post("/api/password")
        .bearer(access)
        .json(&json!({"currentPassword": current, "newPassword": new}))
        .send()
        .await
}

pub async fn a_password_change_ends_every_other_session_and_keeps_the_callers(backend: Backend) {
    let app = spawn_app(TestOptions::new(backend)).await;
    let mine = app.signed_in("alice").await;
    let r = app.login("alice", PASSWORD).await;
    let (other_access, other_refresh) = (r.access_token(), r.refresh_cookie().unwrap());
    let bob = app.signed_in("bob").await;
    let mut my_socket = socket(&app, &mine.access).await;
    let mut other_socket = socket(&app, &other_access).await;
    let mut bobs_socket = socket(&app, &bob.access).await;

    let r = change(&app, &mine.access, PASSWORD, NEW).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Within 1 s: the contract's error message, then the close.
    let started = std::time::Instant::now();
    let error = other_socket
        .recv_json(Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        (&error["type"], &error["payload"]["code"]),
        (&json!("error"), &json!("session_revoked")),
        "{error}"
    );
    let code = other_socket
        .expect_close(Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(code, Some(4003));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    for socket in [&mut my_socket, &mut bobs_socket] {
        socket.send_json(&json!({"type": "ping"})).await.unwrap();
        let pong = socket.recv_json(Duration::from_secs(5)).await.unwrap();
        assert_eq!(pong["type"], "pong", "{pong}");
    }

    // The other session is over; the caller's lives on.
    app.refresh(&other_refresh)
        .await
        .assert_problem(401, "session_revoked");
    app.protected(&other_access)
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(app.protected(&mine.access).await.status, 200);
    let r = app.refresh(&mine.refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .get("/api/sessions")
        .bearer(&r.access_token())
        .send()
        .await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(1), "{}", r.text);

    // Only the new password logs in; bob is untouched.
    app.login("alice", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(app.login("alice", NEW).await.status, 200);
    assert_eq!(app.protected(&bob.access).await.status, 200);
    my_socket.close().await;
    bobs_socket.close().await;
}

pub async fn wrong_current_passwords_count_towards_the_login_throttle(backend: Backend) {
    let app = spawn_app(TestOptions {
        login_max_failures: 3,
        ..TestOptions::new(backend)
    })
    .await;
    let carol = app.signed_in("carol").await;
    // One failed login and two wrong current passwords: one counter.
    app.login("carol", "not the password")
        .await
        .assert_problem(401, "invalid_credentials");
    for _ in 0..2 {
        change(&app, &carol.access, "not the password", NEW)
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let r = change(&app, &carol.access, PASSWORD, NEW).await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    app.login("carol", PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
    // Nothing changed: the old password is still the password (once the window has passed).
    app.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(app.login("carol", PASSWORD).await.status, 200);
    app.login("carol", NEW)
        .await
        .assert_problem(401, "invalid_credentials");
}

pub async fn a_password_change_needs_a_token_and_a_good_new_password(backend: Backend) {
    let app = spawn_app(TestOptions::new(backend)).await;
    let dave = app.signed_in("dave").await;
    change(&app, &dave.access, PASSWORD, "short")
        .await
        .assert_problem(400, "weak_password");
    change(&app, &dave.access, PASSWORD, &"x".repeat(1025))
        .await
        .assert_problem(400, "weak_password");
    let r = app
        .post("/api/password")
        .json(&json!({"currentPassword": PASSWORD, "newPassword": NEW}))
        .send()
        .await;
    r.assert_problem(401, "invalid_token");
    change(&app, "not.a.token", PASSWORD, NEW)
        .await
        .assert_problem(401, "invalid_token");
    app.post("/api/password")
        .bearer(&dave.access)
        .json(&json!({"currentPassword": PASSWORD}))
        .send()
        .await
        .assert_problem(400, "bad_request");
    // Still the old password.
    assert_eq!(app.login("dave", PASSWORD).await.status, 200);
}

//! `POST /api/password` and `DELETE /api/account` (contract v2) on both
//! databases: a password change ends the other sessions with their sockets
//! (4003 within 1 s) and keeps the caller's; a deletion ends every session
//! and removes the user's rows, keeping the audit trail; both check the
//! password through the login throttle.

use std::time::Duration;

use adapters::persistence::{AuditFilter, SeaAuditLog, SeaSessionStore, SeaUserRepository};
use application::ports::{SecurityEventKind, SessionStore as _, UserRepository as _};
use authd::Config;
use domain::{SessionId, Timestamp, UserId};
use integration_tests::app::{Backend, TestApp, spawn_app};
use integration_tests::client::PASSWORD;
use integration_tests::ws_client::WsClient;
use serde_json::json;

const NEW: &str = "a brand new passphrase";

integration_tests::on_both!(
    std::future::ready;
    a_password_change_ends_every_other_session_and_keeps_the_callers,
    wrong_current_passwords_count_towards_the_login_throttle,
    a_password_change_needs_a_token_and_a_good_new_password,
    deleting_the_account_ends_every_session_removes_the_rows_and_frees_the_name,
    an_account_is_deleted_only_with_its_password
);

async fn socket(app: &TestApp, access: &str) -> WsClient {
    WsClient::connected(app.ws_addr, access).await
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
    let app = spawn_app(backend, Config::default()).await;
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
    let app = spawn_app(
        backend,
        Config {
            login_max_failures: 3,
            ..Config::default()
        },
    )
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
    let app = spawn_app(backend, Config::default()).await;
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

async fn delete_account(
    app: &TestApp,
    access: &str,
    password: &str,
) -> integration_tests::client::TestResponse {
    app.delete("/api/account")
        .bearer(access)
        .json(&json!({"password": password}))
        .send()
        .await
}

fn claim(access: &str, name: &str) -> uuid::Uuid {
    use base64::Engine as _;
    let payload = access.split('.').nth(1).expect("a JWS");
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON");
    uuid::Uuid::parse_str(payload[name].as_str().expect("a claim")).expect("a UUID")
}

/// Rows of `table` whose `column` is `value`.
async fn rows_where(app: &TestApp, table: &str, column: &str, value: sea_orm::Value) -> i64 {
    use sea_orm::ConnectionTrait as _;
    use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait as _, Query};
    let query = Query::select()
        .expr(Expr::col(Asterisk).count())
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new(column)).eq(value))
        .to_owned();
    let db = app.running.database.connection();
    let row = db
        .query_one_raw(db.get_database_backend().build(&query))
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

pub async fn deleting_the_account_ends_every_session_removes_the_rows_and_frees_the_name(
    backend: Backend,
) {
    let app = spawn_app(backend, Config::default()).await;
    let first = app.signed_in("erin").await;
    let r = app.login("erin", PASSWORD).await;
    let second = (r.access_token(), r.refresh_cookie().unwrap());
    // Last: a success would clear the throttle row.
    app.login("erin", "not the password")
        .await
        .assert_problem(401, "invalid_credentials");
    let frank = app.signed_in("frank").await;
    let mut sockets = vec![
        socket(&app, &first.access).await,
        socket(&app, &second.0).await,
    ];
    let mut franks_socket = socket(&app, &frank.access).await;
    let user = claim(&first.access, "sub");
    let sessions = [claim(&first.access, "sid"), claim(&second.0, "sid")];
    let failures_before = rows_where(&app, "login_failures", "username", "erin".into()).await;
    assert_eq!(failures_before, 1, "the failed login left a throttle row");

    let r = delete_account(&app, &first.access, PASSWORD).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let started = std::time::Instant::now();
    for socket in &mut sockets {
        let error = socket.recv_json(Duration::from_secs(1)).await.unwrap();
        assert_eq!(error["payload"]["code"], "session_revoked", "{error}");
        let code = socket.expect_close(Duration::from_secs(1)).await.unwrap();
        assert_eq!(code, Some(4003));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // Every token of the account is refused; the user is gone.
    app.protected(&first.access)
        .await
        .assert_problem(401, "invalid_token");
    app.protected(&second.0)
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(app.refresh(&first.refresh).await.status, 401);
    assert_eq!(app.refresh(&second.1).await.status, 401);
    app.login("erin", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");

    // The rows: user, sessions, tokens, throttle rows gone; the revocations
    // remembered (a process that starts now still refuses the tokens).
    let db = app.running.database.clone();
    let id = UserId::from_uuid(user);
    assert!(
        SeaUserRepository::new(db.clone())
            .find_by_id(id)
            .await
            .unwrap()
            .is_none()
    );
    let store = SeaSessionStore::new(db.clone());
    for sid in sessions {
        assert!(
            store
                .find(SessionId::from_uuid(sid))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            rows_where(&app, "refresh_tokens", "session_id", sid.into()).await,
            0
        );
    }
    assert_eq!(
        rows_where(&app, "sessions", "user_id", user.into()).await,
        0
    );
    assert_eq!(
        rows_where(&app, "login_failures", "username", "erin".into()).await,
        0
    );
    let revoked = store
        .revoked_since(Timestamp::from_unix_millis(0))
        .await
        .unwrap();
    for sid in sessions {
        assert!(
            revoked.contains(&SessionId::from_uuid(sid)),
            "{sid} not remembered"
        );
    }

    // The audit trail keeps the account's events and records the deletion.
    let events = SeaAuditLog::new(db)
        .recent(&AuditFilter {
            user: Some(id),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let kinds: Vec<SecurityEventKind> = events.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds.first(),
        Some(&SecurityEventKind::AccountDeleted),
        "{kinds:?}"
    );
    assert_eq!(events[0].event.sessions_revoked, 2);
    assert!(
        kinds.contains(&SecurityEventKind::LoginSucceeded),
        "{kinds:?}"
    );

    // The name is free again, for a new user.
    let r = app.register("erin", PASSWORD).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(r.json()["id"], json!(user.to_string()));
    assert_eq!(app.login("erin", PASSWORD).await.status, 200);
    // Frank is untouched.
    assert_eq!(app.protected(&frank.access).await.status, 200);
    franks_socket
        .send_json(&json!({"type": "ping"}))
        .await
        .unwrap();
    assert_eq!(
        franks_socket
            .recv_json(Duration::from_secs(5))
            .await
            .unwrap()["type"],
        "pong"
    );
    franks_socket.close().await;
}

pub async fn an_account_is_deleted_only_with_its_password(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            login_max_failures: 2,
            ..Config::default()
        },
    )
    .await;
    let grace = app.signed_in("grace").await;
    for _ in 0..2 {
        delete_account(&app, &grace.access, "not the password")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let r = delete_account(&app, &grace.access, PASSWORD).await;
    r.assert_problem(429, "rate_limited");
    app.delete("/api/account")
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .assert_problem(401, "invalid_token");
    app.delete("/api/account")
        .bearer(&grace.access)
        .send()
        .await
        .assert_problem(400, "bad_request");
    // Still there.
    assert_eq!(app.protected(&grace.access).await.status, 200);
    app.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(app.login("grace", PASSWORD).await.status, 200);
}

//! `POST /api/password/reset` with the link of a reset mail: the new
//! password, every session ended (sockets closed `4003`), the login
//! throttle cleared, two-factor login kept; the token's single use, its
//! lifetime, a weak password costing no token, and the token voided by a
//! password change or a newer reset.

use std::time::Duration;

use application::ports::{Clock as _, SecurityEventKind};
use authd::Config;
use integration_tests::app::{Backend, TestResponse};
use integration_tests::client::PASSWORD;
use integration_tests::smtp::ReceivedMail;
use integration_tests::totp::code_at;
use integration_tests::ws_client::WsClient;
use serde_json::json;

use super::{
    MailApp, NEW_PASSWORD, audited, forgot, link_token, mail_app, mail_app_with, register, reset,
    verify,
};

integration_tests::on_both!(
    needs "python-aiosmtpd" => "needs Python aiosmtpd (pip install aiosmtpd)";
    std::future::ready;
    a_reset_ends_every_session_and_clears_the_throttle,
    two_factor_login_stays_on_after_a_reset,
    links_expire,
    a_password_change_or_a_newer_reset_voids_a_reset_link
);

/// `POST /api/login` as `name` through a trusted proxy, for the client `ip`.
async fn login_from(app: &MailApp, ip: &str, name: &str, password: &str) -> TestResponse {
    app.post("/api/login")
        .header("x-forwarded-for", ip)
        .json(&json!({"username": name, "password": password}))
        .send()
        .await
}

/// Asks for a reset of the account at `email`; returns the mail that came.
async fn reset_mail(app: &MailApp, email: &str) -> ReceivedMail {
    let r = forgot(app, email).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let mail = app.next_mail().await;
    assert_eq!(mail.rcpt_tos, [email]);
    assert_eq!(mail.header("Subject"), Some("Reset your password"));
    mail
}

/// [`reset_mail`]'s token.
async fn reset_token(app: &MailApp, email: &str) -> String {
    link_token(&reset_mail(app, email).await, "reset")
}

pub async fn a_reset_ends_every_session_and_clears_the_throttle(backend: Backend) {
    let app = mail_app_with(
        backend,
        Config {
            login_max_failures: 3,
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            ..Config::default()
        },
    )
    .await;
    let alice = app.verified_user("alice", "alice@example.org").await;
    let r = app.login("alice", PASSWORD).await;
    let (other_access, other_refresh) = (r.access_token(), r.refresh_cookie().unwrap());
    let bob = app.signed_in("bob").await;
    let mut sockets = [
        WsClient::connected(app.ws_addr, &alice.access).await,
        WsClient::connected(app.ws_addr, &other_access).await,
    ];
    let mut bobs_socket = WsClient::connected(app.ws_addr, &bob.access).await;
    // The throttle is shut for alice from two addresses.
    for ip in ["10.0.0.1", "10.0.0.2"] {
        for _ in 0..3 {
            login_from(&app, ip, "alice", "wrong password")
                .await
                .assert_problem(401, "invalid_credentials");
        }
        login_from(&app, ip, "alice", PASSWORD)
            .await
            .assert_problem(429, "rate_limited");
    }

    let mail = reset_mail(&app, "alice@example.org").await;
    assert!(
        mail.text.as_deref().unwrap().contains("30 minutes"),
        "the link's lifetime: {:?}",
        mail.text
    );
    let token = link_token(&mail, "reset");
    // A weak password costs no token.
    reset(&app, &token, "short")
        .await
        .assert_problem(400, "weak_password");
    let r = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "");

    // Every session of alice's is over, sockets first (within a second).
    for socket in &mut sockets {
        let error = socket.recv_json(Duration::from_secs(2)).await.unwrap();
        assert_eq!(error["payload"]["code"], "session_revoked", "{error}");
        assert_eq!(
            socket.expect_close(Duration::from_secs(2)).await.unwrap(),
            Some(4003)
        );
    }
    for refresh in [&alice.refresh, &other_refresh] {
        app.refresh(refresh)
            .await
            .assert_problem(401, "session_revoked");
    }
    for access in [&alice.access, &other_access] {
        app.protected(access)
            .await
            .assert_problem(401, "invalid_token");
    }
    // Bob is untouched.
    bobs_socket
        .send_json(&json!({"type": "ping"}))
        .await
        .unwrap();
    let pong = bobs_socket.recv_json(Duration::from_secs(5)).await.unwrap();
    assert_eq!(pong["type"], "pong", "{pong}");
    assert_eq!(app.protected(&bob.access).await.status, 200);

    // The throttle forgot alice's failures at both addresses.
    login_from(&app, "10.0.0.1", "alice", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    let r = login_from(&app, "10.0.0.1", "alice", NEW_PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = login_from(&app, "10.0.0.2", "alice", NEW_PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Used once.
    reset(&app, &token, "yet another passphrase")
        .await
        .assert_problem(400, "invalid_token_in_mail");
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status, 200);

    let requested = audited(
        &app,
        SecurityEventKind::PasswordResetRequested,
        &alice.user_id,
    )
    .await;
    assert_eq!(requested.len(), 1, "{requested:?}");
    let done = audited(&app, SecurityEventKind::PasswordReset, &alice.user_id).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].sessions_revoked, 2, "{done:?}");
    app.no_more_mail("one reset, one mail").await;
}

pub async fn two_factor_login_stays_on_after_a_reset(backend: Backend) {
    let app = mail_app(backend).await;
    let alice = app.verified_user("alice", "alice@example.org").await;
    let now = || app.clock.now().unix_seconds();
    let r = app
        .post("/api/mfa/totp")
        .bearer(&alice.access)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await;
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let r = app
        .post("/api/mfa/totp/confirm")
        .bearer(&alice.access)
        .json(&json!({"code": code_at(&secret, now())}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // An mfaToken from before the reset ends with it.
    let before = app.login("alice", PASSWORD).await;
    before.assert_problem(403, "mfa_required");

    let token = reset_token(&app, "alice@example.org").await;
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status, 204);

    app.clock.advance(Duration::from_secs(30));
    app.post("/api/login/mfa")
        .json(&json!({"mfaToken": before.json()["mfaToken"], "code": code_at(&secret, now())}))
        .send()
        .await
        .assert_problem(401, "mfa_token_invalid");
    let r = app.login("alice", NEW_PASSWORD).await;
    r.assert_problem(403, "mfa_required");
    app.clock.advance(Duration::from_secs(30));
    let r = app
        .post("/api/login/mfa")
        .json(&json!({"mfaToken": r.json()["mfaToken"], "code": code_at(&secret, now())}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let status = app
        .get("/api/mfa/totp")
        .bearer(&r.access_token())
        .send()
        .await;
    assert_eq!(status.json()["enabled"], true, "{}", status.text);
}

pub async fn links_expire(backend: Backend) {
    let app = mail_app(backend).await;
    app.verified_user("alice", "alice@example.org").await;
    let late = reset_token(&app, "alice@example.org").await;
    let r = register(&app, "bob", Some("bob@example.org")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let bobs = link_token(&app.next_mail().await, "verify");

    // PASSWORD_RESET_EXPIRY's default, and a little.
    app.clock.advance(Duration::from_secs(30 * 60 + 1));
    reset(&app, &late, NEW_PASSWORD)
        .await
        .assert_problem(400, "invalid_token_in_mail");
    assert_eq!(app.login("alice", PASSWORD).await.status, 200);
    // A fresh one works.
    let fresh = reset_token(&app, "alice@example.org").await;
    assert_eq!(reset(&app, &fresh, NEW_PASSWORD).await.status, 204);

    // EMAIL_VERIFY_EXPIRY's default.
    app.clock.advance(Duration::from_secs(24 * 3600));
    verify(&app, &bobs)
        .await
        .assert_problem(400, "invalid_token_in_mail");
    let bob = app.login("bob", PASSWORD).await.access_token();
    assert_eq!(
        super::address_of(&app, &bob).await,
        (json!(null), json!(false)),
        "an expired link leaves no pending address"
    );
}

pub async fn a_password_change_or_a_newer_reset_voids_a_reset_link(backend: Backend) {
    let app = mail_app(backend).await;
    let alice = app.verified_user("alice", "alice@example.org").await;
    let token = reset_token(&app, "alice@example.org").await;
    let r = app
        .post("/api/password")
        .bearer(&alice.access)
        .json(&json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    reset(&app, &token, "a reset after the change")
        .await
        .assert_problem(400, "invalid_token_in_mail");
    assert_eq!(app.login("alice", NEW_PASSWORD).await.status, 200);

    // Of two links, only the newer one works.
    let older = reset_token(&app, "alice@example.org").await;
    let newer = reset_token(&app, "alice@example.org").await;
    reset(&app, &older, "the older link's password")
        .await
        .assert_problem(400, "invalid_token_in_mail");
    assert_eq!(reset(&app, &newer, PASSWORD).await.status, 204);
    assert_eq!(app.login("alice", PASSWORD).await.status, 200);
    let done = audited(&app, SecurityEventKind::PasswordReset, &alice.user_id).await;
    assert_eq!(done.len(), 1, "{done:?}");
}

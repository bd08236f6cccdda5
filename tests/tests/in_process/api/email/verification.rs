//! An address given at registration or by `PUT /api/account/email`, and
//! proved by the link in its mail: what the mail holds, single use, the old
//! address kept until the new one is verified, the newer link voiding the
//! older, `email_taken` (case-insensitively), the password and a second
//! factor asked for a change, the login throttle on its password and five
//! verification mails an hour at most.

use std::time::Duration;

use application::ports::SecurityEventKind;
use authd::Config;
use integration_tests::app::Backend;
use integration_tests::client::PASSWORD;
use integration_tests::totp::code_at;
use serde_json::json;

use super::{
    FROM, address_of, audited, forgot, link_token, mail_app, mail_app_with, outbox, put_email,
    register, verify,
};

integration_tests::on_both!(
    needs "python-aiosmtpd" => "needs Python aiosmtpd (pip install aiosmtpd)";
    std::future::ready;
    registering_with_an_address_mails_a_link_that_verifies_it_once,
    a_bad_address_creates_no_account_and_sends_nothing,
    the_old_address_stays_until_the_new_one_is_verified,
    an_address_verified_on_another_account_is_taken,
    a_change_from_a_session_without_the_second_factor_needs_a_code,
    changes_are_throttled_and_five_mails_an_hour_at_most
);

pub async fn registering_with_an_address_mails_a_link_that_verifies_it_once(backend: Backend) {
    let app = mail_app(backend).await;
    let r = register(&app, "alice", Some("Alice.Smith@Example.org")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let alice_id = r.json()["id"].as_str().unwrap().to_owned();

    let mail = app.next_mail().await;
    assert_eq!(mail.rcpt_tos, ["Alice.Smith@Example.org"], "as given");
    assert_eq!(mail.header("To"), Some("Alice.Smith@Example.org"));
    assert_eq!(mail.header("From"), Some(FROM));
    assert_eq!(mail.mail_from, "no-reply@localhost");
    assert_eq!(mail.header("Subject"), Some("Confirm your email address"));
    assert!(
        mail.header("Message-ID")
            .is_some_and(|id| id.starts_with('<') && id.ends_with("@localhost>")),
        "{:?}",
        mail.headers
    );
    assert!(
        mail.header("Content-Type")
            .is_some_and(|t| t.starts_with("multipart/alternative")),
        "{:?}",
        mail.headers
    );
    let token = link_token(&mail, "verify");
    assert!(
        mail.text.as_deref().unwrap().contains("24 hours"),
        "the link's lifetime: {:?}",
        mail.text
    );
    // Delivered, so gone from the outbox.
    assert!(outbox(&app).await.is_empty());

    let r = app.login("alice", PASSWORD).await;
    let access = r.access_token();
    assert_eq!(
        address_of(&app, &access).await,
        (json!("Alice.Smith@Example.org"), json!(false)),
        "shown while it waits for verification"
    );

    let r = verify(&app, &token).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "");
    assert_eq!(
        address_of(&app, &access).await,
        (json!("Alice.Smith@Example.org"), json!(true))
    );

    // Single use; and tokens that never were.
    verify(&app, &token)
        .await
        .assert_problem(400, "invalid_token_in_mail");
    for forged in [
        "not-a-token",
        "",
        &"A".repeat(43),
        &format!("{}x", &token[..42]),
    ] {
        verify(&app, forged)
            .await
            .assert_problem(400, "invalid_token_in_mail");
    }
    // A verification token is no reset token.
    super::reset(&app, &token, super::NEW_PASSWORD)
        .await
        .assert_problem(400, "invalid_token_in_mail");
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        200,
        "the password is unchanged"
    );

    let sent = audited(&app, SecurityEventKind::EmailVerificationSent, &alice_id).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].username.as_deref(), Some("alice"));
    let verified = audited(&app, SecurityEventKind::EmailVerified, &alice_id).await;
    assert_eq!(verified.len(), 1, "{verified:?}");
    assert!(verified[0].client.ip.is_some(), "{verified:?}");
    app.no_more_mail("one registration, one mail").await;
}

pub async fn a_bad_address_creates_no_account_and_sends_nothing(backend: Backend) {
    let app = mail_app(backend).await;
    let long = format!("{}@example.com", "a".repeat(243));
    for bad in [
        "not-an-address",
        "a@b",
        "@example.org",
        "a b@example.org",
        "a@b@example.org",
        "a@example..org",
        "a\u{7}@example.org",
        long.as_str(),
    ] {
        register(&app, "alice", Some(bad))
            .await
            .assert_problem(400, "invalid_email");
    }
    app.login("alice", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    // A registration refused for another reason sends nothing either.
    app.post("/api/register")
        .json(&json!({"username": "alice", "password": "short", "email": "alice@example.org"}))
        .send()
        .await
        .assert_problem(400, "weak_password");
    app.no_more_mail("no account, no mail").await;
    // The name is still free.
    let r = register(&app, "alice", None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let access = app.login("alice", PASSWORD).await.access_token();
    assert_eq!(address_of(&app, &access).await, (json!(null), json!(false)));
}

pub async fn the_old_address_stays_until_the_new_one_is_verified(backend: Backend) {
    let app = mail_app(backend).await;
    let alice = app.verified_user("alice", "old@example.org").await;
    let change = |email: &str, password: &str| {
        let body = json!({"email": email, "password": password});
        let access = alice.access.clone();
        let app = &app;
        async move { put_email(app, &access, &body).await }
    };

    // Refusals send nothing.
    app.request(reqwest::Method::PUT, "/api/account/email")
        .json(&json!({"email": "new@example.org", "password": PASSWORD}))
        .send()
        .await
        .assert_problem(401, "invalid_token");
    change("new@example.org", "wrong password")
        .await
        .assert_problem(401, "invalid_credentials");
    change("new@", PASSWORD)
        .await
        .assert_problem(400, "invalid_email");
    app.no_more_mail("refused changes").await;

    let r = change("first@example.org", PASSWORD).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let first = app.next_mail().await;
    assert_eq!(first.rcpt_tos, ["first@example.org"]);
    let first = link_token(&first, "verify");
    assert_eq!(
        address_of(&app, &alice.access).await,
        (json!("old@example.org"), json!(true)),
        "the verified address stays the account's"
    );
    let r = change("second@example.org", PASSWORD).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let second = app.next_mail().await;
    assert_eq!(second.rcpt_tos, ["second@example.org"]);
    let second = link_token(&second, "verify");

    // The newer request voids the older link.
    verify(&app, &first)
        .await
        .assert_problem(400, "invalid_token_in_mail");
    assert_eq!(
        address_of(&app, &alice.access).await,
        (json!("old@example.org"), json!(true))
    );
    // Until then the old address is the one a reset goes to; a pending one
    // gets none.
    assert_eq!(forgot(&app, "second@example.org").await.status, 202);
    assert_eq!(forgot(&app, "old@example.org").await.status, 202);
    let mail = app.next_mail().await;
    assert_eq!(mail.rcpt_tos, ["old@example.org"]);
    let old_reset = link_token(&mail, "reset");
    app.no_more_mail("no reset to a pending address").await;

    let r = verify(&app, &second).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        address_of(&app, &alice.access).await,
        (json!("second@example.org"), json!(true))
    );
    verify(&app, &second)
        .await
        .assert_problem(400, "invalid_token_in_mail");
    // The old address is no longer the account's: its reset link is dead,
    // and it gets no new one.
    super::reset(&app, &old_reset, super::NEW_PASSWORD)
        .await
        .assert_problem(400, "invalid_token_in_mail");
    assert_eq!(forgot(&app, "old@example.org").await.status, 202);
    app.no_more_mail("no reset to a replaced address").await;
    let sent = audited(
        &app,
        SecurityEventKind::EmailVerificationSent,
        &alice.user_id,
    )
    .await;
    assert_eq!(sent.len(), 3, "at registration and two changes: {sent:?}");
}

pub async fn an_address_verified_on_another_account_is_taken(backend: Backend) {
    let app = mail_app(backend).await;
    app.verified_user("alice", "Alice@Example.org").await;
    let bob = app.signed_in("bob").await;
    for taken in [
        "Alice@Example.org",
        "alice@example.org",
        "ALICE@EXAMPLE.ORG",
    ] {
        put_email(
            &app,
            &bob.access,
            &json!({"email": taken, "password": PASSWORD}),
        )
        .await
        .assert_problem(409, "email_taken");
    }
    app.no_more_mail("nothing to a taken address").await;

    // Only a verified address is taken: a pending one may be asked for by
    // another account, and the first to verify it keeps it.
    let r = register(&app, "carol", Some("shared@example.org")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let carols = link_token(&app.next_mail().await, "verify");
    let r = put_email(
        &app,
        &bob.access,
        &json!({"email": "Shared@Example.org", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let mail = app.next_mail().await;
    assert_eq!(mail.rcpt_tos, ["Shared@Example.org"]);
    let bobs = link_token(&mail, "verify");
    assert_eq!(verify(&app, &bobs).await.status, 204);
    assert_eq!(
        address_of(&app, &bob.access).await,
        (json!("Shared@Example.org"), json!(true))
    );
    // Carol's link is for an address that is now bob's.
    verify(&app, &carols)
        .await
        .assert_problem(400, "invalid_token_in_mail");
    let carol = app.login("carol", PASSWORD).await.access_token();
    assert_eq!(
        address_of(&app, &carol).await.1,
        json!(false),
        "carol's address was not verified"
    );
    put_email(
        &app,
        &carol,
        &json!({"email": "shared@EXAMPLE.org", "password": PASSWORD}),
    )
    .await
    .assert_problem(409, "email_taken");
    app.no_more_mail("nothing more").await;
}

pub async fn a_change_from_a_session_without_the_second_factor_needs_a_code(backend: Backend) {
    let app = mail_app(backend).await;
    let alice = app.signed_in("alice").await;
    let r = app
        .post("/api/mfa/totp")
        .bearer(&alice.access)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    let now = || application::ports::Clock::now(&app.clock).unix_seconds();
    let r = app
        .post("/api/mfa/totp/confirm")
        .bearer(&alice.access)
        .json(&json!({"code": code_at(&secret, now())}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let codes = r.json()["recoveryCodes"].clone();

    // This session began with the password alone.
    let body = |extra: serde_json::Value| {
        let mut body = json!({"email": "alice@example.org", "password": PASSWORD});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    put_email(&app, &alice.access, &body(json!({})))
        .await
        .assert_problem(401, "invalid_mfa_code");
    put_email(&app, &alice.access, &body(json!({"code": "000000"})))
        .await
        .assert_problem(401, "invalid_mfa_code");
    put_email(
        &app,
        &alice.access,
        &body(json!({"code": "000000", "recoveryCode": codes[0]})),
    )
    .await
    .assert_problem(400, "bad_request");
    app.no_more_mail("no code, no mail").await;
    // The next step's code: the confirmation used this one.
    app.clock.advance(std::time::Duration::from_secs(30));
    let r = put_email(
        &app,
        &alice.access,
        &body(json!({"code": code_at(&secret, now())})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(app.next_mail().await.rcpt_tos, ["alice@example.org"]);

    // A session that began with both factors needs only the password.
    let r = app.login("alice", PASSWORD).await;
    r.assert_problem(403, "mfa_required");
    app.clock.advance(std::time::Duration::from_secs(30));
    let r = app
        .post("/api/login/mfa")
        .json(&json!({"mfaToken": r.json()["mfaToken"], "code": code_at(&secret, now())}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = put_email(&app, &r.access_token(), &body(json!({}))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let mail = app.next_mail().await;
    assert_eq!(mail.rcpt_tos, ["alice@example.org"]);
    assert_eq!(verify(&app, &link_token(&mail, "verify")).await.status, 204);
    app.no_more_mail("one mail per change").await;
}

pub async fn changes_are_throttled_and_five_mails_an_hour_at_most(backend: Backend) {
    let app = mail_app_with(
        backend,
        Config {
            login_max_failures: 3,
            ..Config::default()
        },
    )
    .await;
    // The registration's verification mail is the first of the hour.
    let alice = app.verified_user("alice", "a0@example.org").await;
    let change = |access: String, email: String, password: &'static str| {
        let app = &app;
        async move { put_email(app, &access, &json!({"email": email, "password": password})).await }
    };

    // Wrong passwords count towards the login throttle.
    for _ in 0..3 {
        change(
            alice.access.clone(),
            "a1@example.org".into(),
            "wrong password",
        )
        .await
        .assert_problem(401, "invalid_credentials");
    }
    let r = change(alice.access.clone(), "a1@example.org".into(), PASSWORD).await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    app.no_more_mail("throttled changes").await;
    // Past the throttle's window, and so past the access token's lifetime.
    app.clock.advance(Duration::from_secs(15 * 60 + 1));
    let access = app.login("alice", PASSWORD).await.access_token();

    for i in 1..=4 {
        let r = change(access.clone(), format!("a{i}@example.org"), PASSWORD).await;
        assert_eq!(r.status, 202, "change {i}: {}", r.text);
        assert_eq!(
            app.next_mail().await.rcpt_tos,
            [format!("a{i}@example.org")]
        );
    }
    let r = change(access.clone(), "a5@example.org".into(), PASSWORD).await;
    r.assert_problem(429, "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
    app.no_more_mail("a sixth verification mail within the hour")
        .await;
    let sent = audited(
        &app,
        SecurityEventKind::EmailVerificationSent,
        &alice.user_id,
    )
    .await;
    assert_eq!(sent.len(), 5, "{sent:?}");

    app.clock.advance(Duration::from_secs(3600));
    let access = app.login("alice", PASSWORD).await.access_token();
    let r = change(access.clone(), "a5@example.org".into(), PASSWORD).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let mail = app.next_mail().await;
    assert_eq!(mail.rcpt_tos, ["a5@example.org"]);
    assert_eq!(verify(&app, &link_token(&mail, "verify")).await.status, 204);
    assert_eq!(
        address_of(&app, &access).await,
        (json!("a5@example.org"), json!(true))
    );
}

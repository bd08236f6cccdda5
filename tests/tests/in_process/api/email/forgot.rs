//! `POST /api/password/forgot`: the same answer for a verified address, an
//! unknown one and one waiting for verification, a mail only to the first;
//! at most three reset mails an hour per account; the mail goes to the
//! verified address as stored, whatever case the request wrote it in.

use std::collections::BTreeMap;
use std::time::Duration;

use application::ports::SecurityEventKind;
use integration_tests::app::{Backend, TestResponse};
use serde_json::json;

use super::{audit, audited, forgot, link_token, mail_app, register, reset};

integration_tests::on_both!(
    needs "python-aiosmtpd" => "needs Python aiosmtpd (pip install aiosmtpd)";
    std::future::ready;
    unknown_and_unverified_addresses_are_answered_like_a_known_one,
    at_most_three_reset_mails_an_hour,
    the_mail_goes_to_the_verified_address_as_stored
);

/// Headers that differ between any two answers.
const PER_REQUEST: [&str; 2] = ["date", "x-request-id"];

/// An answer as a client can tell it apart: status, headers (but the
/// per-request ones), body.
fn seen(r: &TestResponse) -> (u16, BTreeMap<String, Vec<String>>, String) {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &r.headers {
        if !PER_REQUEST.contains(&name.as_str()) {
            headers
                .entry(name.as_str().to_owned())
                .or_default()
                .push(value.to_str().unwrap_or("<binary>").to_owned());
        }
    }
    (r.status.as_u16(), headers, r.text.clone())
}

pub async fn unknown_and_unverified_addresses_are_answered_like_a_known_one(backend: Backend) {
    let app = mail_app(backend).await;
    let alice = app.verified_user("alice", "known@example.org").await;
    let r = register(&app, "bob", Some("pending@example.org")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let bob_id = r.json()["id"].as_str().unwrap().to_owned();
    app.next_mail().await;

    let known = forgot(&app, "known@example.org").await;
    let (status, headers, body) = seen(&known);
    assert_eq!(status, 202, "{}", known.text);
    assert_eq!(body, "", "{headers:?}");
    for other in [
        "unknown@example.org",
        "pending@example.org",
        "KNOWN@example.org.evil.test",
    ] {
        let answer = forgot(&app, other).await;
        assert_eq!(
            seen(&answer),
            (status, headers.clone(), body.clone()),
            "{other} answered unlike known@example.org"
        );
    }
    let mail = app.next_mail().await;
    assert_eq!(mail.rcpt_tos, ["known@example.org"]);
    link_token(&mail, "reset");
    app.no_more_mail("nothing to an unknown or unverified address")
        .await;

    let requested: Vec<_> = audit(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == SecurityEventKind::PasswordResetRequested)
        .collect();
    assert_eq!(requested.len(), 1, "{requested:?}");
    assert_eq!(
        requested[0].user.map(|u| u.to_string()),
        Some(alice.user_id)
    );
    assert!(
        audited(&app, SecurityEventKind::PasswordResetRequested, &bob_id)
            .await
            .is_empty()
    );

    // Only a body that is no address is refused.
    for bad in [
        json!({"email": "not-an-address"}),
        json!({}),
        json!({"email": 1}),
    ] {
        app.post("/api/password/forgot")
            .json(&bad)
            .send()
            .await
            .assert_problem(400, "bad_request");
    }
}

pub async fn at_most_three_reset_mails_an_hour(backend: Backend) {
    let app = mail_app(backend).await;
    let alice = app.verified_user("alice", "alice@example.org").await;
    let asks = (0..5).map(|_| forgot(&app, "alice@example.org"));
    for r in futures_util::future::join_all(asks).await {
        assert_eq!(r.status, 202, "{}", r.text);
    }
    for _ in 0..3 {
        let mail = app.next_mail().await;
        assert_eq!(mail.rcpt_tos, ["alice@example.org"]);
        link_token(&mail, "reset");
    }
    app.no_more_mail("a fourth and a fifth reset mail within the hour")
        .await;
    let requested = audited(
        &app,
        SecurityEventKind::PasswordResetRequested,
        &alice.user_id,
    )
    .await;
    assert_eq!(requested.len(), 3, "{requested:?}");

    // Still none in the same hour, one again after it.
    assert_eq!(forgot(&app, "alice@example.org").await.status, 202);
    app.no_more_mail("a sixth within the hour").await;
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(forgot(&app, "alice@example.org").await.status, 202);
    let mail = app.next_mail().await;
    let newest = link_token(&mail, "reset");
    app.no_more_mail("one after the hour").await;
    assert_eq!(reset(&app, &newest, super::NEW_PASSWORD).await.status, 204);
}

pub async fn the_mail_goes_to_the_verified_address_as_stored(backend: Backend) {
    let app = mail_app(backend).await;
    app.verified_user("bob", "Bob.Smith@Example.org").await;
    assert_eq!(forgot(&app, "bob.smith@EXAMPLE.ORG").await.status, 202);
    let mail = app.next_mail().await;
    // The local part of an address may be case-sensitive (RFC 5321, 2.4):
    // the link goes to the mailbox that proved it, not to one the
    // requester spelt.
    assert_eq!(mail.rcpt_tos, ["Bob.Smith@Example.org"]);
    assert_eq!(mail.header("To"), Some("Bob.Smith@Example.org"));
    let token = link_token(&mail, "reset");
    assert_eq!(reset(&app, &token, super::NEW_PASSWORD).await.status, 204);
}

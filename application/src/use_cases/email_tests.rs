//! Email addresses, their verification, password resets and the outbox,
//! on fakes.

use std::time::Duration;

use domain::email::MailTokenRefusal;

use super::fakes::{World, secret};
use super::tests::{client, login, world_with_alice};
use super::*;
use crate::ports::{DeliveryError, SecurityEventKind};

const BASE: &str = "https://auth.example.com";

fn claims(w: &World, s: &LoginOutcome) -> domain::AccessClaims {
    w.tokens.claims_of(&s.access.token).expect("issued here")
}

/// The caller's address change, with the right password.
async fn change(w: &World, caller: &domain::AccessClaims, address: &str) -> Result<(), EmailError> {
    w.emails
        .change_address(
            caller,
            address,
            secret("correct horse"),
            None,
            BASE,
            &client(),
        )
        .await
}

/// Sends what is queued and returns the token of the last mail sent.
async fn deliver_and_read_token(w: &World) -> String {
    let done = w.outbox.deliver_due().await.unwrap();
    assert!(done.sent >= 1, "{done:?}");
    let sent = w.mailbox.sent.lock().unwrap();
    let text = &sent.last().unwrap().text;
    text.lines()
        .find_map(|l| l.strip_prefix("Token: "))
        .expect("a Token: line")
        .to_owned()
}

async fn alice_with_verified(address: &str) -> (World, LoginOutcome) {
    let w = world_with_alice().await;
    let s = login(&w).await;
    w.emails
        .change_address(
            &claims(&w, &s),
            address,
            secret("correct horse"),
            None,
            BASE,
            &client(),
        )
        .await
        .unwrap();
    let token = deliver_and_read_token(&w).await;
    w.emails.verify(&token, &client()).await.unwrap();
    (w, s)
}

#[tokio::test]
async fn an_address_is_the_accounts_once_verified_and_a_token_works_once() {
    let w = world_with_alice().await;
    let s = login(&w).await;
    let caller = claims(&w, &s);
    change(&w, &caller, "Alice@Example.com").await.unwrap();
    assert_eq!(
        w.account.view(&caller).await.unwrap().email,
        Some(("Alice@Example.com".into(), false))
    );
    let token = deliver_and_read_token(&w).await;
    {
        let sent = w.mailbox.sent.lock().unwrap();
        let mail = sent.last().unwrap();
        assert_eq!(mail.to, "Alice@Example.com");
        assert!(mail.text.contains(&format!("{BASE}/?verify={token}")));
        assert!(mail.html.contains(&format!("{BASE}/?verify={token}")));
    }
    w.emails.verify(&token, &client()).await.unwrap();
    assert_eq!(
        w.account.view(&caller).await.unwrap().email,
        Some(("Alice@Example.com".into(), true))
    );
    assert!(matches!(
        w.emails.verify(&token, &client()).await,
        Err(EmailError::InvalidToken(MailTokenRefusal::Used))
    ));
    assert!(matches!(
        w.emails.verify("not-a-token", &client()).await,
        Err(EmailError::InvalidToken(MailTokenRefusal::Unknown))
    ));
    let kinds = w.events.kinds();
    assert!(kinds.contains(&SecurityEventKind::EmailVerificationSent));
    assert!(kinds.contains(&SecurityEventKind::EmailVerified));

    // A change: the old address stays until the new one is verified, and a
    // second request replaces the first.
    change(&w, &caller, "a2@example.com").await.unwrap();
    let first = deliver_and_read_token(&w).await;
    change(&w, &caller, "a3@example.com").await.unwrap();
    let second = deliver_and_read_token(&w).await;
    assert_eq!(
        w.account.view(&caller).await.unwrap().email,
        Some(("Alice@Example.com".into(), true))
    );
    assert!(matches!(
        w.emails.verify(&first, &client()).await,
        Err(EmailError::InvalidToken(MailTokenRefusal::Superseded))
    ));
    w.emails.verify(&second, &client()).await.unwrap();
    assert_eq!(
        w.account.view(&caller).await.unwrap().email,
        Some(("a3@example.com".into(), true))
    );
}

#[tokio::test]
async fn a_change_needs_the_password_and_an_address_nobody_has() {
    let (w, s) = alice_with_verified("alice@example.com").await;
    let caller = claims(&w, &s);
    assert!(matches!(
        w.emails
            .change_address(
                &caller,
                "b@example.com",
                secret("wrong horse"),
                None,
                BASE,
                &client()
            )
            .await,
        Err(EmailError::Account(AccountError::InvalidCredentials))
    ));
    assert!(matches!(
        change(&w, &caller, "no-at-sign").await,
        Err(EmailError::InvalidEmail(_))
    ));
    w.registration
        .register("bob", secret("battery staple"))
        .await
        .unwrap();
    let bob = w
        .logins
        .login("bob", secret("battery staple"), &client())
        .await
        .unwrap()
        .done()
        .unwrap();
    assert!(matches!(
        w.emails
            .change_address(
                &claims(&w, &bob),
                "ALICE@example.com",
                secret("battery staple"),
                None,
                BASE,
                &client()
            )
            .await,
        Err(EmailError::Taken)
    ));
}

#[tokio::test]
async fn a_reset_sets_the_password_ends_every_session_and_is_single_use() {
    let (w, s) = alice_with_verified("alice@example.com").await;
    let address = domain::email::EmailAddress::parse("ALICE@example.com").unwrap();
    w.emails.forgot(&address, BASE, &client()).await.unwrap();
    let token = deliver_and_read_token(&w).await;
    assert!(
        w.mailbox
            .sent
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .text
            .contains("/?reset=")
    );

    assert!(matches!(
        w.emails.reset(&token, secret("short"), &client()).await,
        Err(EmailError::WeakPassword(_))
    ));
    w.emails
        .reset(&token, secret("a new good password"), &client())
        .await
        .expect("a weak password cost no token");
    assert!(
        w.store.families.lock().unwrap()[&s.session.id]
            .session
            .is_revoked(),
        "every family ends"
    );
    assert!(
        w.logins
            .login("alice", secret("correct horse"), &client())
            .await
            .is_err()
    );
    login_with(&w, "a new good password").await;
    assert!(matches!(
        w.emails
            .reset(&token, secret("another good one"), &client())
            .await,
        Err(EmailError::InvalidToken(MailTokenRefusal::Used))
    ));
    assert!(w.events.kinds().contains(&SecurityEventKind::PasswordReset));
}

async fn login_with(w: &World, password: &str) -> LoginOutcome {
    w.logins
        .login("alice", secret(password), &client())
        .await
        .expect("login")
        .done()
        .expect("one factor")
}

#[tokio::test]
async fn a_reset_token_dies_with_a_password_change_a_newer_reset_or_its_lifetime() {
    let (w, s) = alice_with_verified("alice@example.com").await;
    let address = domain::email::EmailAddress::parse("alice@example.com").unwrap();
    w.emails.forgot(&address, BASE, &client()).await.unwrap();
    let changed = deliver_and_read_token(&w).await;
    w.account
        .change_password(
            &claims(&w, &s),
            secret("correct horse"),
            secret("changed horse"),
            None,
            &client(),
        )
        .await
        .unwrap();
    assert!(matches!(
        w.emails
            .reset(&changed, secret("a new good password"), &client())
            .await,
        Err(EmailError::InvalidToken(MailTokenRefusal::PasswordChanged))
    ));

    w.emails.forgot(&address, BASE, &client()).await.unwrap();
    let older = deliver_and_read_token(&w).await;
    w.emails.forgot(&address, BASE, &client()).await.unwrap();
    let newer = deliver_and_read_token(&w).await;
    assert!(matches!(
        w.emails
            .reset(&older, secret("a new good password"), &client())
            .await,
        Err(EmailError::InvalidToken(MailTokenRefusal::Superseded))
    ));
    w.clock.advance(Duration::from_secs(30 * 60));
    assert!(matches!(
        w.emails
            .reset(&newer, secret("a new good password"), &client())
            .await,
        Err(EmailError::InvalidToken(MailTokenRefusal::Expired))
    ));
}

#[tokio::test]
async fn a_reset_token_is_bound_to_the_address_it_was_sent_to() {
    let (w, s) = alice_with_verified("alice@example.com").await;
    let address = domain::email::EmailAddress::parse("alice@example.com").unwrap();
    w.emails.forgot(&address, BASE, &client()).await.unwrap();
    let reset = deliver_and_read_token(&w).await;
    w.emails
        .change_address(
            &claims(&w, &s),
            "new@example.com",
            secret("correct horse"),
            None,
            BASE,
            &client(),
        )
        .await
        .unwrap();
    let verify = deliver_and_read_token(&w).await;
    w.emails.verify(&verify, &client()).await.unwrap();
    assert!(matches!(
        w.emails
            .reset(&reset, secret("a new good password"), &client())
            .await,
        Err(EmailError::InvalidToken(MailTokenRefusal::Superseded))
    ));
}

#[tokio::test]
async fn three_reset_mails_an_hour_and_none_to_an_unknown_address() {
    let (w, _) = alice_with_verified("alice@example.com").await;
    let before = w.mailbox.sent.lock().unwrap().len();
    let nobody = domain::email::EmailAddress::parse("nobody@example.com").unwrap();
    w.emails.forgot(&nobody, BASE, &client()).await.unwrap();
    let address = domain::email::EmailAddress::parse("alice@example.com").unwrap();
    for _ in 0..5 {
        w.emails.forgot(&address, BASE, &client()).await.unwrap();
    }
    w.outbox.deliver_due().await.unwrap();
    assert_eq!(w.mailbox.sent.lock().unwrap().len() - before, 3);
    w.clock.advance(Duration::from_secs(3601));
    w.emails.forgot(&address, BASE, &client()).await.unwrap();
    w.outbox.deliver_due().await.unwrap();
    assert_eq!(w.mailbox.sent.lock().unwrap().len() - before, 4);
}

#[tokio::test]
async fn the_outbox_retries_what_may_pass_and_gives_up_what_cannot() {
    let w = world_with_alice().await;
    let s = login(&w).await;
    *w.mailbox.fail.lock().unwrap() = Some(DeliveryError::Transient);
    w.emails
        .change_address(
            &claims(&w, &s),
            "a@example.com",
            secret("correct horse"),
            None,
            BASE,
            &client(),
        )
        .await
        .unwrap();
    let done = w.outbox.deliver_due().await.unwrap();
    assert_eq!(done.deferred, 1);
    assert_eq!(
        w.outbox.deliver_due().await.unwrap().claimed(),
        0,
        "not due yet"
    );
    *w.mailbox.fail.lock().unwrap() = None;
    w.clock.advance(Duration::from_secs(5));
    assert_eq!(w.outbox.deliver_due().await.unwrap().sent, 1);
    assert_eq!(w.mail.queued(), 0);

    *w.mailbox.fail.lock().unwrap() = Some(DeliveryError::Permanent);
    w.emails
        .change_address(
            &claims(&w, &s),
            "b@example.com",
            secret("correct horse"),
            None,
            BASE,
            &client(),
        )
        .await
        .unwrap();
    assert_eq!(w.outbox.deliver_due().await.unwrap().failed, 1);
    assert_eq!(w.events.last().kind, SecurityEventKind::MailFailed);
    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        w.outbox.deliver_due().await.unwrap().claimed(),
        0,
        "given up"
    );
}

#[tokio::test]
async fn five_verification_mails_an_hour() {
    let w = world_with_alice().await;
    let s = login(&w).await;
    let change = |n: usize| {
        let caller = claims(&w, &s);
        let w = &w;
        async move { change(w, &caller, &format!("a{n}@example.com")).await }
    };
    for n in 0..5 {
        change(n).await.unwrap();
    }
    assert!(matches!(
        change(5).await,
        Err(EmailError::RateLimited { .. })
    ));
    w.clock.advance(Duration::from_secs(3601));
    change(6).await.unwrap();
}

//! Passkeys on fakes: registration after the password, single-use
//! ceremonies, the login rules (`domain::passkey`) and the throttle.

use std::time::Duration;

use domain::AuthMethods;
use domain::passkey::CEREMONY_TTL;
use serde_json::json;

use super::fakes::{World, secret};
use super::tests::{client, login, world_with_alice};
use super::*;
use crate::ports::{LoginMethod, SecurityEventKind};

fn claims(w: &World, s: &LoginOutcome) -> domain::AccessClaims {
    w.tokens.claims_of(&s.access.token).expect("issued here")
}

/// Registration options for Alice: (registrationId, its challenge).
async fn options(w: &World, caller: &domain::AccessClaims) -> (String, String) {
    let o = w
        .passkeys
        .registration_options(caller, secret("correct horse"), &client())
        .await
        .expect("options");
    let challenge = o.public_key["challenge"].as_str().unwrap().to_owned();
    (o.id.expose().to_owned(), challenge)
}

/// Alice with the passkey `cred` (counter 0, not backup-eligible unless `synced`).
async fn alice_with_passkey(cred: &str, synced: bool) -> (World, domain::AccessClaims) {
    let w = world_with_alice().await;
    let caller = claims(&w, &login(&w).await);
    let (id, challenge) = options(&w, &caller).await;
    let credential = json!({"challenge": challenge, "id": cred, "backupEligible": synced});
    w.passkeys
        .register(&caller, &id, &credential.to_string(), None, &client())
        .await
        .expect("registered");
    (w, caller)
}

fn handle_of(w: &World, caller: &domain::AccessClaims) -> String {
    let handles = w.passkey_table.handles.lock().unwrap();
    data_encoding::HEXLOWER.encode(&handles[&caller.sub])
}

/// A passkey login with `cred` at `counter`, its user handle Alice's.
async fn passkey_login(
    w: &World,
    cred: &str,
    counter: u32,
    handle: &str,
) -> Result<LoginOutcome, PasskeyLoginError> {
    let o = w.passkeys.login_options().await.expect("options");
    let credential = json!({
        "challenge": o.public_key["challenge"], "id": cred, "counter": counter, "userHandle": handle
    });
    w.passkeys
        .login(o.id.expose(), &credential.to_string(), &client())
        .await
}

#[tokio::test]
async fn a_registered_passkey_logs_in_with_its_methods_and_is_audited() {
    let (w, caller) = alice_with_passkey("c1", false).await;
    let listed = w.passkeys.list(&caller).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "Passkey");
    assert_eq!(listed[0].last_used_at, None);
    assert!(w.events.kinds().contains(&SecurityEventKind::PasskeyAdded));

    let handle = handle_of(&w, &caller);
    let out = passkey_login(&w, "c1", 1, &handle).await.expect("login");
    assert_eq!(out.session.methods, AuthMethods::HardwareKey);
    assert_eq!(claims(&w, &out).amr, AuthMethods::HardwareKey);
    let event = w.events.last();
    assert_eq!(event.kind, SecurityEventKind::LoginSucceeded);
    assert_eq!(event.method, Some(LoginMethod::Passkey));
    assert_eq!(event.user, Some(caller.sub));
    let used = &w.passkeys.list(&caller).await.unwrap()[0];
    assert_eq!((used.counter, used.last_used_at.is_some()), (1, true));

    let (w, caller) = alice_with_passkey("c2", true).await;
    let out = passkey_login(&w, "c2", 0, &handle_of(&w, &caller)).await;
    assert_eq!(out.unwrap().session.methods, AuthMethods::SyncedKey);
}

#[tokio::test]
async fn registration_needs_the_password_and_a_ceremony_of_ones_own_used_once() {
    let w = world_with_alice().await;
    let caller = claims(&w, &login(&w).await);
    let wrong = w
        .passkeys
        .registration_options(&caller, secret("wrong"), &client())
        .await;
    assert!(
        matches!(wrong, Err(PasskeyError::InvalidCredentials)),
        "{wrong:?}"
    );

    let (id, challenge) = options(&w, &caller).await;
    let credential = json!({"challenge": challenge, "id": "c1"}).to_string();
    // Another user's session cannot finish it, nor take it away.
    w.registration
        .register("bob", secret("correct horse"))
        .await
        .unwrap();
    let bob = claims(
        &w,
        &w.logins
            .login("bob", secret("correct horse"), &client())
            .await
            .unwrap()
            .done()
            .unwrap(),
    );
    let foreign = w
        .passkeys
        .register(&bob, &id, &credential, None, &client())
        .await;
    assert!(
        matches!(foreign, Err(PasskeyError::NotFound)),
        "{foreign:?}"
    );
    w.passkeys
        .register(&caller, &id, &credential, Some("Laptop"), &client())
        .await
        .expect("the owner's");
    let again = w
        .passkeys
        .register(&caller, &id, &credential, None, &client())
        .await;
    assert!(
        matches!(again, Err(PasskeyError::NotFound)),
        "used: {again:?}"
    );

    // The same credential id again: 409, even by a fresh ceremony.
    let (id, challenge) = options(&w, &caller).await;
    let credential = json!({"challenge": challenge, "id": "c1"}).to_string();
    let exists = w
        .passkeys
        .register(&caller, &id, &credential, None, &client())
        .await;
    assert!(matches!(exists, Err(PasskeyError::Exists(_))), "{exists:?}");

    // Expired after five minutes.
    let (id, challenge) = options(&w, &caller).await;
    w.clock.advance(CEREMONY_TTL);
    let credential = json!({"challenge": challenge, "id": "c3"}).to_string();
    let late = w
        .passkeys
        .register(&caller, &id, &credential, None, &client())
        .await;
    assert!(matches!(late, Err(PasskeyError::NotFound)), "{late:?}");
}

#[tokio::test]
async fn a_login_id_is_used_once_and_expires() {
    let (w, caller) = alice_with_passkey("c1", false).await;
    let handle = handle_of(&w, &caller);
    let o = w.passkeys.login_options().await.unwrap();
    let credential = json!({
        "challenge": o.public_key["challenge"], "id": "c1", "counter": 1, "userHandle": handle
    })
    .to_string();
    w.passkeys
        .login(o.id.expose(), &credential, &client())
        .await
        .expect("first");
    let replay = w
        .passkeys
        .login(o.id.expose(), &credential, &client())
        .await;
    assert!(
        matches!(replay, Err(PasskeyLoginError::Invalid(_))),
        "{replay:?}"
    );

    let o = w.passkeys.login_options().await.unwrap();
    w.clock.advance(CEREMONY_TTL + Duration::from_secs(1));
    let credential = json!({
        "challenge": o.public_key["challenge"], "id": "c1", "counter": 2, "userHandle": handle
    })
    .to_string();
    let late = w
        .passkeys
        .login(o.id.expose(), &credential, &client())
        .await;
    assert!(
        matches!(late, Err(PasskeyLoginError::Invalid(_))),
        "{late:?}"
    );
}

#[tokio::test]
async fn a_counter_that_does_not_grow_is_refused_and_audited_as_a_clone() {
    let (w, caller) = alice_with_passkey("c1", false).await;
    let handle = handle_of(&w, &caller);
    passkey_login(&w, "c1", 5, &handle).await.expect("5");
    let clone = passkey_login(&w, "c1", 5, &handle).await;
    assert!(
        matches!(clone, Err(PasskeyLoginError::Invalid(_))),
        "{clone:?}"
    );
    assert_eq!(
        w.events.last().kind,
        SecurityEventKind::PasskeyCloneSuspected
    );
    assert!(passkey_login(&w, "c1", 4, &handle).await.is_err());
    passkey_login(&w, "c1", 6, &handle).await.expect("6 grew");
}

#[tokio::test]
async fn another_users_handle_a_deleted_passkey_and_failures_are_refused_and_throttled() {
    let (w, caller) = alice_with_passkey("c1", false).await;
    let handle = handle_of(&w, &caller);
    let wrong_user = passkey_login(&w, "c1", 1, "00ff").await;
    assert!(
        matches!(wrong_user, Err(PasskeyLoginError::Invalid(_))),
        "{wrong_user:?}"
    );
    assert_eq!(w.events.last().kind, SecurityEventKind::LoginFailed);
    assert_eq!(w.events.last().user, Some(caller.sub));

    // Failures of a known credential take the login throttle's slots: at
    // the limit even a good assertion is refused.
    let policy = domain::ThrottlePolicy::default();
    let limit = policy.max_failures;
    for _ in 1..limit {
        assert!(passkey_login(&w, "c1", 1, "00ff").await.is_err());
    }
    let throttled = passkey_login(&w, "c1", 1, &handle).await;
    assert!(
        matches!(throttled, Err(PasskeyLoginError::RateLimited { .. })),
        "{throttled:?}"
    );
    w.clock.advance(policy.window);

    let id = w.passkeys.list(&caller).await.unwrap()[0].id;
    w.passkeys
        .remove(&caller, id, &client())
        .await
        .expect("removed");
    assert_eq!(w.events.last().kind, SecurityEventKind::PasskeyRemoved);
    let gone = passkey_login(&w, "c1", 2, &handle).await;
    assert!(
        matches!(gone, Err(PasskeyLoginError::Invalid(_))),
        "{gone:?}"
    );
    let again = w.passkeys.remove(&caller, id, &client()).await;
    assert!(matches!(again, Err(PasskeyError::NotFound)), "{again:?}");
}

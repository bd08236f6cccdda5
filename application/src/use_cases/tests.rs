//! Logout, sessions, revocations, the token cache and the audit events, on
//! fakes (registration and login: `login_tests`; rotation: `refresh_tests`).

use std::time::Duration;

use domain::SessionId;
use uuid::Uuid;

use super::fakes::{World, secret};
use super::*;
use crate::ports::InvalidToken;
use crate::{AuthConfig, ClientInfo};

pub(super) fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("test-agent".into()),
        key: None,
    }
}

pub(super) async fn world_with_alice() -> World {
    let w = World::new(AuthConfig::default());
    w.registration
        .register("Alice", secret("correct horse"))
        .await
        .expect("register");
    w
}

pub(super) async fn login(w: &World) -> LoginOutcome {
    w.logins
        .login("alice", secret("correct horse"), &client())
        .await
        .expect("login")
        .done()
        .expect("one factor")
}

/// Logs out of the session of `s` with its refresh token.
async fn log_out(w: &World, s: &LoginOutcome) {
    w.sessions
        .logout(
            Some(s.refresh.secret.expose()),
            None,
            LogoutScope::ThisSession,
            &client(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn logout_revokes_all_families_or_just_this_one() {
    let w = world_with_alice().await;
    let a = login(&w).await;
    let b = login(&w).await;
    let c = login(&w).await;

    let revoked = w
        .sessions
        .logout(
            Some(a.refresh.secret.expose()),
            None,
            LogoutScope::ThisSession,
            &client(),
        )
        .await
        .unwrap();
    assert_eq!(revoked, vec![a.session.id]);
    assert_eq!(
        w.access.verify(&a.access.token).unwrap_err(),
        InvalidToken::Revoked
    );
    w.access
        .verify(&b.access.token)
        .expect("other sessions live on");

    let mut revoked = w
        .sessions
        .logout(
            None,
            Some(&b.access.token),
            LogoutScope::AllSessions,
            &client(),
        )
        .await
        .unwrap();
    revoked.sort();
    let mut expected = vec![b.session.id, c.session.id];
    expected.sort();
    assert_eq!(revoked, expected);
    assert!(w.access.verify(&c.access.token).is_err());
    assert!(matches!(
        w.sessions
            .refresh(Some(c.refresh.secret.expose()), &client())
            .await,
        Err(RefreshError::SessionRevoked)
    ));

    assert!(
        w.sessions
            .logout(None, None, LogoutScope::AllSessions, &client())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        w.sessions
            .logout(
                Some("junk"),
                Some("junk"),
                LogoutScope::AllSessions,
                &client()
            )
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_by_their_owner_only() {
    let w = world_with_alice().await;
    w.registration
        .register("mallory", secret("correct horse"))
        .await
        .unwrap();
    let a = login(&w).await;
    w.clock.advance(Duration::from_secs(1));
    let b = login(&w).await;
    let m = w
        .logins
        .login("mallory", secret("correct horse"), &client())
        .await
        .unwrap()
        .done()
        .unwrap();
    let caller = w.access.verify(&b.access.token).unwrap();

    let list = w.sessions.list(&caller).await.unwrap();
    let ids: Vec<(SessionId, bool)> = list.iter().map(|v| (v.session.id, v.current)).collect();
    assert_eq!(ids, vec![(b.session.id, true), (a.session.id, false)]);

    let err = w
        .sessions
        .revoke(&caller, m.session.id, &client())
        .await
        .unwrap_err();
    assert!(matches!(err, RevokeSessionError::NotFound));
    let err = w
        .sessions
        .revoke(
            &caller,
            SessionId::from_uuid(Uuid::from_u128(99)),
            &client(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RevokeSessionError::NotFound));

    w.sessions
        .revoke(&caller, a.session.id, &client())
        .await
        .expect("own session");
    assert!(w.bus.published.lock().unwrap().contains(&a.session.id));
    assert!(matches!(
        w.sessions.revoke(&caller, a.session.id, &client()).await,
        Err(RevokeSessionError::NotFound)
    ));
    assert_eq!(w.sessions.list(&caller).await.unwrap().len(), 1);
}

#[tokio::test]
async fn revocations_heard_on_the_bus_and_at_start_are_enforced() {
    let w = world_with_alice().await;
    let a = login(&w).await;
    // Another process revoked it: only the bus tells us.
    use crate::ports::RevocationBus;
    w.bus.publish(&[a.session.id]).await.unwrap();
    assert_eq!(
        w.access.verify(&a.access.token).unwrap_err(),
        InvalidToken::Revoked
    );

    // A new process warms its cache from storage.
    let b = login(&w).await;
    log_out(&w, &b).await;
    let fresh = w.another_process(AuthConfig::default());
    assert!(
        fresh.access.verify(&b.access.token).is_ok(),
        "it started after the announcement"
    );
    assert!(fresh.revocations.warm().await.unwrap() >= 1);
    assert!(fresh.access.is_session_revoked(&b.session.id));
    assert_eq!(
        fresh.access.verify(&b.access.token).unwrap_err(),
        InvalidToken::Revoked
    );
}

#[tokio::test]
async fn prune_works_in_batches_until_done() {
    let w = world_with_alice().await;
    for _ in 0..5 {
        let s = login(&w).await;
        log_out(&w, &s).await;
    }
    w.clock.advance(Duration::from_secs(61));
    let pruned = w
        .housekeeping
        .prune(Duration::from_secs(60), 2)
        .await
        .unwrap();
    assert_eq!(pruned.sessions, 5);
    assert!(w.store.families.lock().unwrap().is_empty());
}

#[tokio::test]
async fn prune_removes_only_long_ended_sessions() {
    let w = world_with_alice().await;
    let a = login(&w).await;
    let b = login(&w).await;
    log_out(&w, &a).await;
    w.logins
        .login("alice", secret("wrong password"), &client())
        .await
        .unwrap_err();
    let pruned = w
        .housekeeping
        .prune(Duration::from_secs(3600), 100)
        .await
        .unwrap();
    assert_eq!(pruned, crate::Pruned::default());
    w.clock.advance(Duration::from_secs(3601));
    let pruned = w
        .housekeeping
        .prune(Duration::from_secs(3600), 100)
        .await
        .unwrap();
    assert_eq!(
        pruned,
        crate::Pruned {
            sessions: 1,
            login_windows: 1,
            mfa_tokens: 0,
            passkey_ceremonies: 0,
            dpop_jtis: 0,
            mail_rows: 0,
            audit_events: 0,
        }
    );
    assert!(w.store.families.lock().unwrap().contains_key(&b.session.id));
}

#[tokio::test]
async fn verified_tokens_are_cached_but_expiry_and_revocation_still_apply() {
    let w = world_with_alice().await;
    let out = login(&w).await;
    for _ in 0..3 {
        w.access.verify(&out.access.token).expect("valid");
    }
    assert_eq!(
        w.tokens
            .verifications
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one signature check"
    );
    // Cached, yet no leeway for the WebSocket side at exp, 30 s for REST.
    w.clock.advance(Duration::from_secs(900));
    assert_eq!(
        w.access
            .verify_with_leeway(&out.access.token, 0)
            .unwrap_err(),
        InvalidToken::Expired
    );
    w.access
        .verify(&out.access.token)
        .expect("within the REST leeway");
    w.clock.advance(Duration::from_secs(30));
    assert_eq!(
        w.access.verify(&out.access.token).unwrap_err(),
        InvalidToken::Expired
    );

    let fresh = login(&w).await;
    w.access.verify(&fresh.access.token).expect("cached now");
    w.sessions
        .logout(
            None,
            Some(&fresh.access.token),
            LogoutScope::ThisSession,
            &client(),
        )
        .await
        .unwrap();
    assert_eq!(
        w.access.verify(&fresh.access.token).unwrap_err(),
        InvalidToken::Revoked
    );
}

#[tokio::test]
async fn a_zero_sized_cache_verifies_every_time() {
    let w = World::new(AuthConfig {
        token_cache_size: 0,
        ..AuthConfig::default()
    });
    w.registration
        .register("alice", secret("correct horse"))
        .await
        .unwrap();
    let out = login(&w).await;
    for _ in 0..3 {
        w.access.verify(&out.access.token).expect("valid");
    }
    assert_eq!(
        w.tokens
            .verifications
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}

#[tokio::test]
async fn logins_report_their_outcome_with_the_user_name_and_client() {
    use crate::ports::SecurityEventKind as K;
    let w = world_with_alice().await;
    let ok = login(&w).await;
    let e = w.events.last();
    assert_eq!(e.kind, K::LoginSucceeded);
    assert_eq!((e.user, e.session), (Some(ok.user.id), Some(ok.session.id)));
    assert_eq!(e.client, client());
    assert_eq!(e.username.as_deref(), Some("alice"));

    w.logins
        .login("ALICE", secret("wrong password"), &client())
        .await
        .unwrap_err();
    let e = w.events.last();
    assert_eq!(e.kind, K::LoginFailed);
    assert_eq!(e.user, Some(ok.user.id), "a wrong password names the user");
    assert_eq!(e.username.as_deref(), Some("alice"));
    // A name that matches no user (perhaps a password typed in the wrong
    // field) is kept as its keyed pseudonym, never as typed.
    w.logins
        .login("Hunter2-Secret", secret("wrong password"), &client())
        .await
        .unwrap_err();
    let e = w.events.last();
    assert_eq!((e.kind, e.user), (K::LoginFailed, None));
    let kept = e.username.expect("a pseudonym");
    assert!(kept.starts_with('#') && !kept.contains("hunter2"), "{kept}");
    assert_eq!(
        kept,
        w.config.seal_key.pseudonym("hunter2-secret"),
        "attempts on one name group together"
    );

    for _ in 0..5 {
        let _ = w
            .logins
            .login("alice", secret("wrong password"), &client())
            .await;
    }
    assert_eq!(w.events.last().kind, K::LoginThrottled);
    assert!(
        w.events
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.kind.is_audited())
    );
}

#[tokio::test]
async fn logout_and_session_revocation_are_audited_and_old_events_pruned() {
    use crate::ports::SecurityEventKind as K;
    let w = world_with_alice().await;
    let a = login(&w).await;
    let b = login(&w).await;
    let caller = w.access.verify(&a.access.token).unwrap();
    w.sessions
        .revoke(&caller, b.session.id, &client())
        .await
        .unwrap();
    let e = w.events.last();
    assert_eq!((e.kind, e.session), (K::SessionRevoked, Some(b.session.id)));
    w.sessions
        .logout(
            Some(a.refresh.secret.expose()),
            None,
            LogoutScope::AllSessions,
            &client(),
        )
        .await
        .unwrap();
    let e = w.events.last();
    assert_eq!((e.kind, e.user), (K::Logout, Some(a.user.id)));
    assert_eq!(e.sessions_revoked, 1, "b was already revoked");

    let stored = w.events.0.lock().unwrap().len() as u64;
    w.clock.advance(Duration::from_secs(89 * 86_400));
    let pruned = w
        .housekeeping
        .prune(Duration::from_secs(3600), 2)
        .await
        .unwrap();
    assert_eq!(pruned.audit_events, 0, "within AUDIT_RETENTION");
    w.clock.advance(Duration::from_secs(2 * 86_400));
    let pruned = w
        .housekeeping
        .prune(Duration::from_secs(3600), 2)
        .await
        .unwrap();
    assert_eq!(pruned.audit_events, stored, "batches until none is left");
    assert!(w.events.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_dropped_process_frees_its_adapters() {
    // The bus keeps a subscriber; it must not keep the bus, the store or
    // anything else of the process alive (a cycle leaked a database pool
    // per process in the integration tests: PostgreSQL ran out of clients).
    let w = world_with_alice().await;
    login(&w).await;
    let store = std::sync::Arc::downgrade(&w.store);
    let bus = std::sync::Arc::downgrade(&w.bus);
    drop(w);
    assert!(
        store.upgrade().is_none(),
        "the session store outlived its process"
    );
    assert!(bus.upgrade().is_none(), "the bus outlived its process");
}

/// Security review 2, finding 6: a token whose lifetime is longer than the
/// configured `ACCESS_TOKEN_EXPIRY` plus the leeway (signed before a
/// restart with a shorter lifetime) is refused, even when nothing else is
/// wrong with it; up to the bound it is accepted.
#[tokio::test]
async fn a_token_that_lives_longer_than_the_configured_lifetime_is_refused() {
    use crate::ports::AccessTokenSigner as _;
    let w = world_with_alice().await;
    let issued = login(&w).await;
    let mut claims = w
        .tokens
        .claims_of(&issued.access.token)
        .expect("issued here");
    // ACCESS_TOKEN_EXPIRY is 15 min here; the leeway 30 s.
    claims.exp = claims.iat + 900 + 30;
    let longest = w.tokens.sign(&claims).await.unwrap();
    assert!(w.access.verify(&longest).is_ok(), "at the bound");
    claims.exp += 1;
    let longer = w.tokens.sign(&claims).await.unwrap();
    assert_eq!(
        w.access.verify(&longer).unwrap_err(),
        InvalidToken::Lifetime
    );
    // Cached claims are held to it too.
    assert_eq!(
        w.access.verify(&longer).unwrap_err(),
        InvalidToken::Lifetime
    );
}

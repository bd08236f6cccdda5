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
    }
}

pub(super) async fn world_with_alice() -> World {
    let w = World::new(AuthConfig::default());
    w.service
        .register("Alice", secret("correct horse"))
        .await
        .expect("register");
    w
}

pub(super) async fn login(w: &World) -> LoginOutcome {
    w.service
        .login("alice", secret("correct horse"), &client())
        .await
        .expect("login")
}

/// Logs out of the session of `s` with its refresh token.
async fn log_out(w: &World, s: &LoginOutcome) {
    w.service
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
        .service
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
        w.service.verify_access(&a.access.token).unwrap_err(),
        InvalidToken::Revoked
    );
    w.service
        .verify_access(&b.access.token)
        .expect("other sessions live on");

    let mut revoked = w
        .service
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
    assert!(w.service.verify_access(&c.access.token).is_err());
    assert!(matches!(
        w.service
            .refresh(Some(c.refresh.secret.expose()), &client())
            .await,
        Err(RefreshError::SessionRevoked)
    ));

    assert!(
        w.service
            .logout(None, None, LogoutScope::AllSessions, &client())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        w.service
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
    w.service
        .register("mallory", secret("correct horse"))
        .await
        .unwrap();
    let a = login(&w).await;
    w.clock.advance(Duration::from_secs(1));
    let b = login(&w).await;
    let m = w
        .service
        .login("mallory", secret("correct horse"), &client())
        .await
        .unwrap();
    let caller = w.service.verify_access(&b.access.token).unwrap();

    let list = w.service.list_sessions(&caller).await.unwrap();
    let ids: Vec<(SessionId, bool)> = list.iter().map(|v| (v.session.id, v.current)).collect();
    assert_eq!(ids, vec![(b.session.id, true), (a.session.id, false)]);

    let err = w
        .service
        .revoke_session(&caller, m.session.id, &client())
        .await
        .unwrap_err();
    assert!(matches!(err, RevokeSessionError::NotFound));
    let err = w
        .service
        .revoke_session(
            &caller,
            SessionId::from_uuid(Uuid::from_u128(99)),
            &client(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RevokeSessionError::NotFound));

    w.service
        .revoke_session(&caller, a.session.id, &client())
        .await
        .expect("own session");
    assert!(w.bus.published.lock().unwrap().contains(&a.session.id));
    assert!(matches!(
        w.service
            .revoke_session(&caller, a.session.id, &client())
            .await,
        Err(RevokeSessionError::NotFound)
    ));
    assert_eq!(w.service.list_sessions(&caller).await.unwrap().len(), 1);
}

#[tokio::test]
async fn revocations_heard_on_the_bus_and_at_start_are_enforced() {
    let w = world_with_alice().await;
    let a = login(&w).await;
    // Another process revoked it: only the bus tells us.
    use crate::ports::RevocationBus;
    w.bus.publish(&[a.session.id]).await.unwrap();
    assert_eq!(
        w.service.verify_access(&a.access.token).unwrap_err(),
        InvalidToken::Revoked
    );

    // A new process warms its cache from storage.
    let b = login(&w).await;
    log_out(&w, &b).await;
    let fresh = crate::AuthService::new(w.service.ports.clone(), AuthConfig::default());
    assert!(
        fresh.verify_access(&b.access.token).is_ok(),
        "it started after the announcement"
    );
    assert!(fresh.warm_revocations().await.unwrap() >= 1);
    assert!(fresh.is_session_revoked(&b.session.id));
    assert_eq!(
        fresh.verify_access(&b.access.token).unwrap_err(),
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
    let pruned = w.service.prune(Duration::from_secs(60), 2).await.unwrap();
    assert_eq!(pruned.sessions, 5);
    assert!(w.sessions.families.lock().unwrap().is_empty());
}

#[tokio::test]
async fn prune_removes_only_long_ended_sessions() {
    let w = world_with_alice().await;
    let a = login(&w).await;
    let b = login(&w).await;
    log_out(&w, &a).await;
    w.service
        .login("alice", secret("wrong password"), &client())
        .await
        .unwrap_err();
    let pruned = w
        .service
        .prune(Duration::from_secs(3600), 100)
        .await
        .unwrap();
    assert_eq!(pruned, crate::Pruned::default());
    w.clock.advance(Duration::from_secs(3601));
    let pruned = w
        .service
        .prune(Duration::from_secs(3600), 100)
        .await
        .unwrap();
    assert_eq!(
        pruned,
        crate::Pruned {
            sessions: 1,
            login_windows: 1,
            mfa_tokens: 0,
            audit_events: 0,
        }
    );
    assert!(
        w.sessions
            .families
            .lock()
            .unwrap()
            .contains_key(&b.session.id)
    );
}

#[tokio::test]
async fn verified_tokens_are_cached_but_expiry_and_revocation_still_apply() {
    let w = world_with_alice().await;
    let out = login(&w).await;
    for _ in 0..3 {
        w.service.verify_access(&out.access.token).expect("valid");
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
        w.service
            .verify_access_with_leeway(&out.access.token, 0)
            .unwrap_err(),
        InvalidToken::Expired
    );
    w.service
        .verify_access(&out.access.token)
        .expect("within the REST leeway");
    w.clock.advance(Duration::from_secs(30));
    assert_eq!(
        w.service.verify_access(&out.access.token).unwrap_err(),
        InvalidToken::Expired
    );

    let fresh = login(&w).await;
    w.service
        .verify_access(&fresh.access.token)
        .expect("cached now");
    w.service
        .logout(
            None,
            Some(&fresh.access.token),
            LogoutScope::ThisSession,
            &client(),
        )
        .await
        .unwrap();
    assert_eq!(
        w.service.verify_access(&fresh.access.token).unwrap_err(),
        InvalidToken::Revoked
    );
}

#[tokio::test]
async fn a_zero_sized_cache_verifies_every_time() {
    let w = World::new(AuthConfig {
        token_cache_size: 0,
        ..AuthConfig::default()
    });
    w.service
        .register("alice", secret("correct horse"))
        .await
        .unwrap();
    let out = login(&w).await;
    for _ in 0..3 {
        w.service.verify_access(&out.access.token).expect("valid");
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

    w.service
        .login("ALICE", secret("wrong password"), &client())
        .await
        .unwrap_err();
    let e = w.events.last();
    assert_eq!(e.kind, K::LoginFailed);
    assert_eq!(e.user, Some(ok.user.id), "a wrong password names the user");
    assert_eq!(e.username.as_deref(), Some("alice"));
    // A name that matches no user (perhaps a password typed in the wrong
    // field) is kept as its keyed pseudonym, never as typed.
    w.service
        .login("Hunter2-Secret", secret("wrong password"), &client())
        .await
        .unwrap_err();
    let e = w.events.last();
    assert_eq!((e.kind, e.user), (K::LoginFailed, None));
    let kept = e.username.expect("a pseudonym");
    assert!(kept.starts_with('#') && !kept.contains("hunter2"), "{kept}");
    assert_eq!(
        kept,
        w.service.config().seal_key.pseudonym("hunter2-secret"),
        "attempts on one name group together"
    );

    for _ in 0..5 {
        let _ = w
            .service
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
    let caller = w.service.verify_access(&a.access.token).unwrap();
    w.service
        .revoke_session(&caller, b.session.id, &client())
        .await
        .unwrap();
    let e = w.events.last();
    assert_eq!((e.kind, e.session), (K::SessionRevoked, Some(b.session.id)));
    w.service
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
    let pruned = w.service.prune(Duration::from_secs(3600), 2).await.unwrap();
    assert_eq!(pruned.audit_events, 0, "within AUDIT_RETENTION");
    w.clock.advance(Duration::from_secs(2 * 86_400));
    let pruned = w.service.prune(Duration::from_secs(3600), 2).await.unwrap();
    assert_eq!(pruned.audit_events, stored, "batches until none is left");
    assert!(w.events.0.lock().unwrap().is_empty());
}

//! Every rule of the contract's "Tokens" and "Families" sections, on fakes.

use std::time::Duration;

use domain::{PasswordHash, SessionId, User, UserId, Username};
use uuid::Uuid;

use super::fakes::{World, secret};
use super::*;
use crate::ports::{InvalidToken, SessionStore, UserRepository};
use crate::{AuthConfig, ClientInfo};

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("test-agent".into()),
    }
}

async fn world_with_alice() -> World {
    let w = World::new(AuthConfig::default());
    w.service
        .register("Alice", secret("correct horse"))
        .await
        .expect("register");
    w
}

async fn login(w: &World) -> LoginOutcome {
    w.service
        .login("alice", secret("correct horse"), &client())
        .await
        .expect("login")
}

#[tokio::test]
async fn register_parses_and_refuses_by_policy() {
    let w = world_with_alice().await;
    assert!(matches!(
        w.service.register("ALICE", secret("another one")).await,
        Err(RegisterError::UsernameTaken)
    ));
    assert!(matches!(
        w.service.register("a b", secret("long enough")).await,
        Err(RegisterError::InvalidUsername(_))
    ));
    assert!(matches!(
        w.service.register("bob", secret("short")).await,
        Err(RegisterError::WeakPassword(_))
    ));
    let long = "p".repeat(1025);
    assert!(matches!(
        w.service.register("bob", secret(&long)).await,
        Err(RegisterError::WeakPassword(_))
    ));
    let user = w
        .service
        .register("bob", secret(&"p".repeat(1024)))
        .await
        .expect("1024 chars is fine");
    assert_eq!(user.username.as_str(), "bob");
    assert!(
        w.hasher
            .verifications
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
    );
}

#[tokio::test]
async fn closed_registration_still_allows_the_admin_command() {
    let w = World::new(AuthConfig {
        allow_registration: false,
        ..AuthConfig::default()
    });
    assert!(matches!(
        w.service.register("carol", secret("long enough")).await,
        Err(RegisterError::Closed)
    ));
    w.service
        .add_user("carol", secret("long enough"))
        .await
        .expect("admin add");
}

#[tokio::test]
async fn login_issues_claims_and_a_cookie_lifetime() {
    let w = world_with_alice().await;
    let out = login(&w).await;
    let claims = w.service.verify_access(&out.access.token).expect("valid");
    assert_eq!(claims.iss, "auth");
    assert_eq!(claims.aud, "api");
    assert_eq!(claims.sub, out.user.id);
    assert_eq!(claims.sid, out.session.id);
    assert_eq!(claims.username, "Alice");
    assert_eq!(claims.exp, claims.iat + 900);
    assert_eq!(claims.nbf, claims.iat);
    assert_eq!(out.access.expires_in, 900);
    assert_eq!(out.refresh.max_age, 7 * 24 * 3600);
    assert_eq!(out.session.user_agent.as_deref(), Some("test-agent"));
    assert_eq!(out.session.ip.as_deref(), Some("203.0.113.7"));
}

#[tokio::test]
async fn unknown_users_cost_a_verification_too() {
    let w = world_with_alice().await;
    for name in ["nobody", "x", "bad name!"] {
        let before = w
            .hasher
            .verifications
            .load(std::sync::atomic::Ordering::SeqCst);
        let err = w
            .service
            .login(name, secret("correct horse"), &client())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials), "{name}");
        assert_eq!(
            w.hasher
                .verifications
                .load(std::sync::atomic::Ordering::SeqCst),
            before + 1,
            "{name}"
        );
    }
    let err = w
        .service
        .login("alice", secret("wrong password"), &client())
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::InvalidCredentials));
}

#[tokio::test]
async fn throttle_blocks_even_the_right_password_until_the_window_passes() {
    let w = world_with_alice().await;
    for _ in 0..5 {
        let err = w
            .service
            .login("alice", secret("wrong password"), &client())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }
    let err = w
        .service
        .login("ALICE", secret("correct horse"), &client())
        .await
        .unwrap_err();
    let LoginError::RateLimited { retry_after } = err else {
        panic!("expected rate limiting, got {err:?}")
    };
    assert!(retry_after <= Duration::from_secs(900) && retry_after > Duration::from_secs(890));
    // Another client address is not affected.
    let other = ClientInfo {
        ip: Some("198.51.100.1".into()),
        user_agent: None,
    };
    w.service
        .login("alice", secret("correct horse"), &other)
        .await
        .expect("other client");
    w.clock.advance(Duration::from_secs(901));
    login(&w).await;
}

#[tokio::test]
async fn imported_hashes_are_upgraded_after_login() {
    let w = World::new(AuthConfig::default());
    let user = User {
        id: UserId::from_uuid(Uuid::from_u128(7)),
        username: Username::parse("legacy").unwrap(),
        password_hash: PasswordHash::new("legacy$password123"),
        created_at: w.service.now(),
    };
    w.users.insert(&user).await.unwrap();
    let out = w
        .service
        .login("legacy", secret("password123"), &client())
        .await
        .expect("login");
    assert_eq!(out.user.password_hash.as_str(), "plain$password123");
    let stored = w.users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash.as_str(), "plain$password123");
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_is_then_the_grace_parent() {
    let w = world_with_alice().await;
    let first = login(&w).await;
    w.clock.advance(Duration::from_secs(60));
    let second = w
        .service
        .refresh(Some(first.refresh.secret.expose()), &client())
        .await
        .expect("rotates");
    assert!(!second.grace_replay);
    assert_ne!(
        second.refresh.secret.expose(),
        first.refresh.secret.expose()
    );
    assert_eq!(second.session.id, first.session.id);
    let signed_before = w
        .tokens
        .signatures
        .load(std::sync::atomic::Ordering::SeqCst);

    // A parallel tab presents the parent 5 s later: same current token, fresh access token.
    w.clock.advance(Duration::from_secs(5));
    let replay = w
        .service
        .refresh(Some(first.refresh.secret.expose()), &client())
        .await
        .expect("grace");
    assert!(replay.grace_replay);
    assert_eq!(
        replay.refresh.secret.expose(),
        second.refresh.secret.expose()
    );
    assert_eq!(replay.refresh.expires_at, second.refresh.expires_at);
    assert_eq!(
        w.tokens
            .signatures
            .load(std::sync::atomic::Ordering::SeqCst),
        signed_before + 1
    );
    let family = w.sessions.families.lock().unwrap()[&first.session.id].clone();
    assert_eq!(family.tokens.len(), 2, "the grace mints nothing");

    // The successor keeps working.
    w.service
        .refresh(Some(second.refresh.secret.expose()), &client())
        .await
        .expect("rotates again");
}

#[tokio::test]
async fn replay_after_the_grace_revokes_the_family_everywhere() {
    let w = world_with_alice().await;
    let first = login(&w).await;
    let second = w
        .service
        .refresh(Some(first.refresh.secret.expose()), &client())
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(10));
    let err = w
        .service
        .refresh(Some(first.refresh.secret.expose()), &client())
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::Reused));
    assert_eq!(*w.bus.published.lock().unwrap(), vec![first.session.id]);
    // Its access tokens stop working, and so does the current refresh token.
    assert_eq!(
        w.service.verify_access(&second.access.token).unwrap_err(),
        InvalidToken::Revoked
    );
    let err = w
        .service
        .refresh(Some(second.refresh.secret.expose()), &client())
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::SessionRevoked));
}

#[tokio::test]
async fn a_family_keeps_one_seal_and_only_inside_the_grace() {
    let w = world_with_alice().await;
    let mut token = login(&w).await.refresh.secret;
    for _ in 0..4 {
        token = w
            .service
            .refresh(Some(token.expose()), &client())
            .await
            .unwrap()
            .refresh
            .secret;
        assert_eq!(
            w.sessions.seal_count(),
            1,
            "only the current token's parent"
        );
    }
    assert_eq!(w.service.erase_stale_seals().await.unwrap(), 0);
    w.clock.advance(Duration::from_secs(11));
    assert_eq!(w.service.erase_stale_seals().await.unwrap(), 1);
    assert_eq!(w.sessions.seal_count(), 0);
}

#[tokio::test]
async fn a_grace_replay_whose_seal_does_not_open_is_refused_and_revokes_nothing() {
    let w = world_with_alice().await;
    let t0 = login(&w).await.refresh.secret;
    let t1 = w
        .service
        .refresh(Some(t0.expose()), &client())
        .await
        .unwrap()
        .refresh
        .secret;
    // A process with another REFRESH_SEAL_KEY_PATH key cannot open the seal.
    let foreign = crate::AuthService::new(
        w.service.ports.clone(),
        AuthConfig {
            seal_key: crate::SealKey::from_bytes([9; crate::SealKey::LEN]),
            ..AuthConfig::default()
        },
    );
    let err = foreign.refresh(Some(t0.expose()), &client()).await;
    assert!(matches!(err, Err(RefreshError::Invalid)), "{err:?}");
    // An erased seal (the grace ended on another process's clock): the same.
    let later = w.service.now().plus(Duration::from_secs(1));
    SessionStore::erase_seals(w.sessions.as_ref(), later)
        .await
        .unwrap();
    let err = w.service.refresh(Some(t0.expose()), &client()).await;
    assert!(matches!(err, Err(RefreshError::Invalid)), "{err:?}");
    assert!(
        w.bus.published.lock().unwrap().is_empty(),
        "nothing revoked"
    );
    w.service
        .refresh(Some(t1.expose()), &client())
        .await
        .expect("the current token still rotates");
}

#[tokio::test]
async fn a_grandparent_is_reuse_inside_the_grace() {
    let w = world_with_alice().await;
    let t0 = login(&w).await.refresh.secret;
    let t1 = w
        .service
        .refresh(Some(t0.expose()), &client())
        .await
        .unwrap()
        .refresh
        .secret;
    w.service
        .refresh(Some(t1.expose()), &client())
        .await
        .unwrap();
    let err = w
        .service
        .refresh(Some(t0.expose()), &client())
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::Reused));
}

#[tokio::test]
async fn missing_and_invalid_tokens() {
    let w = world_with_alice().await;
    assert!(matches!(
        w.service.refresh(None, &client()).await,
        Err(RefreshError::Missing)
    ));
    assert!(matches!(
        w.service.refresh(Some(""), &client()).await,
        Err(RefreshError::Missing)
    ));
    assert!(matches!(
        w.service.refresh(Some("junk"), &client()).await,
        Err(RefreshError::Invalid)
    ));
    let unknown = "A".repeat(42) + "A";
    assert!(matches!(
        w.service.refresh(Some(&unknown), &client()).await,
        Err(RefreshError::Invalid)
    ));
}

#[tokio::test]
async fn idle_timeout_and_absolute_lifetime() {
    let mut config = AuthConfig::default();
    config.token_policy.refresh_ttl = Duration::from_secs(100);
    config.token_policy.session_max_age = Duration::from_secs(250);
    let w = World::new(config);
    w.service
        .register("alice", secret("correct horse"))
        .await
        .unwrap();

    let idle = login(&w).await;
    w.clock.advance(Duration::from_secs(100));
    assert!(matches!(
        w.service
            .refresh(Some(idle.refresh.secret.expose()), &client())
            .await,
        Err(RefreshError::Expired)
    ));

    let mut token = login(&w).await.refresh.secret;
    let mut max_ages = Vec::new();
    for _ in 0..3 {
        w.clock.advance(Duration::from_secs(80));
        let r = w
            .service
            .refresh(Some(token.expose()), &client())
            .await
            .expect("within both limits");
        max_ages.push(r.refresh.max_age);
        token = r.refresh.secret;
    }
    // Cookie lifetimes: 100, then cut to what is left of the 250 s session.
    assert_eq!(max_ages, vec![100, 90, 10]);
    w.clock.advance(Duration::from_secs(10));
    assert!(matches!(
        w.service.refresh(Some(token.expose()), &client()).await,
        Err(RefreshError::Expired)
    ));
}

#[tokio::test]
async fn access_tokens_end_no_later_than_their_session() {
    let mut config = AuthConfig::default();
    config.token_policy.session_max_age = Duration::from_secs(20);
    let w = World::new(config);
    w.service
        .register("alice", secret("correct horse"))
        .await
        .unwrap();
    let out = login(&w).await;
    let claims = w.service.verify_access(&out.access.token).expect("valid");
    assert_eq!(claims.exp, claims.iat + 20, "capped at the session's end");
    assert_eq!(out.access.expires_in, 20);
    assert_eq!(out.access.expires_at, claims.exp);
    // A refresh 15 s in gets what is left: 5 s.
    w.clock.advance(Duration::from_secs(15));
    let r = w
        .service
        .refresh(Some(out.refresh.secret.expose()), &client())
        .await
        .expect("refresh");
    assert_eq!(r.access.expires_in, 5);
    // Past the session's end (and the leeway) the token from login is refused.
    w.clock.advance(Duration::from_secs(6 + 30));
    assert!(w.service.verify_access(&out.access.token).is_err());
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
    w.service
        .logout(
            Some(b.refresh.secret.expose()),
            None,
            LogoutScope::ThisSession,
            &client(),
        )
        .await
        .unwrap();
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
    w.service
        .logout(
            Some(a.refresh.secret.expose()),
            None,
            LogoutScope::ThisSession,
            &client(),
        )
        .await
        .unwrap();
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
async fn refreshes_report_rotation_grace_reuse_and_refusals() {
    use crate::ports::SecurityEventKind as K;
    let w = world_with_alice().await;
    let first = login(&w).await;
    let t0 = first.refresh.secret.expose().to_owned();
    let second = w.service.refresh(Some(&t0), &client()).await.unwrap();
    assert_eq!(w.events.last().kind, K::RefreshRotated);
    w.service.refresh(Some(&t0), &client()).await.unwrap();
    assert_eq!(w.events.last().kind, K::RefreshGraceReplay);

    w.service
        .refresh(Some(second.refresh.secret.expose()), &client())
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(11));
    let thief = ClientInfo {
        ip: Some("198.51.100.9".into()),
        user_agent: Some("curl/8".into()),
    };
    assert!(matches!(
        w.service.refresh(Some(&t0), &thief).await,
        Err(RefreshError::Reused)
    ));
    let e = w.events.last();
    assert_eq!(e.kind, K::ReuseDetected);
    assert!(e.kind.is_audited());
    assert_eq!(e.session, Some(first.session.id), "the family is named");
    assert_eq!(e.user, Some(first.user.id));
    assert_eq!(e.client, thief, "the presenter's address and agent");
    assert_eq!(e.sessions_revoked, 1);

    let _ = w.service.refresh(Some(&t0), &client()).await;
    assert_eq!(w.events.last().kind, K::RefreshRevoked);
    let _ = w.service.refresh(Some("junk"), &client()).await;
    assert_eq!(w.events.last().kind, K::RefreshInvalid);
    assert!(!K::RefreshRotated.is_audited() && !K::RefreshInvalid.is_audited());
    let kinds = w.events.kinds();
    assert_eq!(
        kinds.iter().filter(|k| **k == K::ReuseDetected).count(),
        1,
        "{kinds:?}"
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

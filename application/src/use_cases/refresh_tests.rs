//! Refresh-token rotation, the grace and its seals, reuse, lifetimes, and
//! what refreshes report, on fakes.

use std::time::Duration;

use super::fakes::{World, secret};
use super::tests::{client, login, world_with_alice};
use super::*;
use crate::ports::{InvalidToken, SessionStore};
use crate::{AuthConfig, ClientInfo};

#[tokio::test]
async fn refresh_rotates_and_the_old_token_is_then_the_grace_parent() {
    let w = world_with_alice().await;
    let first = login(&w).await;
    w.clock.advance(Duration::from_secs(60));
    let second = w
        .sessions
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
        .sessions
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
    let family = w.store.families.lock().unwrap()[&first.session.id].clone();
    assert_eq!(family.tokens.len(), 2, "the grace mints nothing");

    // The successor keeps working.
    w.sessions
        .refresh(Some(second.refresh.secret.expose()), &client())
        .await
        .expect("rotates again");
}

#[tokio::test]
async fn replay_after_the_grace_revokes_the_family_everywhere() {
    let w = world_with_alice().await;
    let first = login(&w).await;
    let second = w
        .sessions
        .refresh(Some(first.refresh.secret.expose()), &client())
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(10));
    let err = w
        .sessions
        .refresh(Some(first.refresh.secret.expose()), &client())
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::Reused));
    assert_eq!(*w.bus.published.lock().unwrap(), vec![first.session.id]);
    // Its access tokens stop working, and so does the current refresh token.
    assert_eq!(
        w.access.verify(&second.access.token).unwrap_err(),
        InvalidToken::Revoked
    );
    let err = w
        .sessions
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
            .sessions
            .refresh(Some(token.expose()), &client())
            .await
            .unwrap()
            .refresh
            .secret;
        assert_eq!(w.store.seal_count(), 1, "only the current token's parent");
    }
    assert_eq!(w.housekeeping.erase_stale_seals().await.unwrap(), 0);
    w.clock.advance(Duration::from_secs(11));
    assert_eq!(w.housekeeping.erase_stale_seals().await.unwrap(), 1);
    assert_eq!(w.store.seal_count(), 0);
}

#[tokio::test]
async fn a_grace_replay_whose_seal_does_not_open_is_refused_and_revokes_nothing() {
    let w = world_with_alice().await;
    let t0 = login(&w).await.refresh.secret;
    let t1 = w
        .sessions
        .refresh(Some(t0.expose()), &client())
        .await
        .unwrap()
        .refresh
        .secret;
    // A process with another REFRESH_SEAL_KEY_PATH key cannot open the seal.
    let foreign = w.another_process(AuthConfig {
        seal_key: crate::SealKey::from_bytes([9; crate::SealKey::LEN]),
        ..AuthConfig::default()
    });
    let err = foreign.sessions.refresh(Some(t0.expose()), &client()).await;
    assert!(matches!(err, Err(RefreshError::Invalid)), "{err:?}");
    // An erased seal (the grace ended on another process's clock): the same.
    let later = w.access.now().plus(Duration::from_secs(1));
    SessionStore::erase_seals(w.store.as_ref(), later)
        .await
        .unwrap();
    let err = w.sessions.refresh(Some(t0.expose()), &client()).await;
    assert!(matches!(err, Err(RefreshError::Invalid)), "{err:?}");
    assert!(
        w.bus.published.lock().unwrap().is_empty(),
        "nothing revoked"
    );
    w.sessions
        .refresh(Some(t1.expose()), &client())
        .await
        .expect("the current token still rotates");
}

#[tokio::test]
async fn a_grandparent_is_reuse_inside_the_grace() {
    let w = world_with_alice().await;
    let t0 = login(&w).await.refresh.secret;
    let t1 = w
        .sessions
        .refresh(Some(t0.expose()), &client())
        .await
        .unwrap()
        .refresh
        .secret;
    w.sessions
        .refresh(Some(t1.expose()), &client())
        .await
        .unwrap();
    let err = w
        .sessions
        .refresh(Some(t0.expose()), &client())
        .await
        .unwrap_err();
    assert!(matches!(err, RefreshError::Reused));
}

#[tokio::test]
async fn missing_and_invalid_tokens() {
    let w = world_with_alice().await;
    assert!(matches!(
        w.sessions.refresh(None, &client()).await,
        Err(RefreshError::Missing)
    ));
    assert!(matches!(
        w.sessions.refresh(Some(""), &client()).await,
        Err(RefreshError::Missing)
    ));
    assert!(matches!(
        w.sessions.refresh(Some("junk"), &client()).await,
        Err(RefreshError::Invalid)
    ));
    let unknown = "A".repeat(42) + "A";
    assert!(matches!(
        w.sessions.refresh(Some(&unknown), &client()).await,
        Err(RefreshError::Invalid)
    ));
}

#[tokio::test]
async fn idle_timeout_and_absolute_lifetime() {
    let mut config = AuthConfig::default();
    config.token_policy.refresh_ttl = Duration::from_secs(100);
    config.token_policy.session_max_age = Duration::from_secs(250);
    let w = World::new(config);
    w.registration
        .register("alice", secret("correct horse"))
        .await
        .unwrap();

    let idle = login(&w).await;
    w.clock.advance(Duration::from_secs(100));
    assert!(matches!(
        w.sessions
            .refresh(Some(idle.refresh.secret.expose()), &client())
            .await,
        Err(RefreshError::Expired)
    ));

    let mut token = login(&w).await.refresh.secret;
    let mut max_ages = Vec::new();
    for _ in 0..3 {
        w.clock.advance(Duration::from_secs(80));
        let r = w
            .sessions
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
        w.sessions.refresh(Some(token.expose()), &client()).await,
        Err(RefreshError::Expired)
    ));
}

#[tokio::test]
async fn access_tokens_end_no_later_than_their_session() {
    let mut config = AuthConfig::default();
    config.token_policy.session_max_age = Duration::from_secs(20);
    let w = World::new(config);
    w.registration
        .register("alice", secret("correct horse"))
        .await
        .unwrap();
    let out = login(&w).await;
    let claims = w.access.verify(&out.access.token).expect("valid");
    assert_eq!(claims.exp, claims.iat + 20, "capped at the session's end");
    assert_eq!(out.access.expires_in, 20);
    assert_eq!(out.access.expires_at, claims.exp);
    // A refresh 15 s in gets what is left: 5 s.
    w.clock.advance(Duration::from_secs(15));
    let r = w
        .sessions
        .refresh(Some(out.refresh.secret.expose()), &client())
        .await
        .expect("refresh");
    assert_eq!(r.access.expires_in, 5);
    // Past the session's end (and the leeway) the token from login is refused.
    w.clock.advance(Duration::from_secs(6 + 30));
    assert!(w.access.verify(&out.access.token).is_err());
}

#[tokio::test]
async fn refreshes_report_rotation_grace_reuse_and_refusals() {
    use crate::ports::SecurityEventKind as K;
    let w = world_with_alice().await;
    let first = login(&w).await;
    let t0 = first.refresh.secret.expose().to_owned();
    let second = w.sessions.refresh(Some(&t0), &client()).await.unwrap();
    assert_eq!(w.events.last().kind, K::RefreshRotated);
    w.sessions.refresh(Some(&t0), &client()).await.unwrap();
    assert_eq!(w.events.last().kind, K::RefreshGraceReplay);

    w.sessions
        .refresh(Some(second.refresh.secret.expose()), &client())
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(11));
    let thief = ClientInfo {
        ip: Some("198.51.100.9".into()),
        user_agent: Some("curl/8".into()),
        key: None,
    };
    assert!(matches!(
        w.sessions.refresh(Some(&t0), &thief).await,
        Err(RefreshError::Reused)
    ));
    let e = w.events.last();
    assert_eq!(e.kind, K::ReuseDetected);
    assert!(e.kind.is_audited());
    assert_eq!(e.session, Some(first.session.id), "the family is named");
    assert_eq!(e.user, Some(first.user.id));
    assert_eq!(e.client, thief, "the presenter's address and agent");
    assert_eq!(e.sessions_revoked, 1);

    let _ = w.sessions.refresh(Some(&t0), &client()).await;
    assert_eq!(w.events.last().kind, K::RefreshRevoked);
    let _ = w.sessions.refresh(Some("junk"), &client()).await;
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
async fn every_access_token_of_a_family_says_how_it_began() {
    let w = world_with_alice().await;
    let first = login(&w).await;
    let amr = |token: &str| w.tokens.claims_of(token).expect("signed here").amr;
    assert_eq!(amr(&first.access.token), domain::AuthMethods::Password);
    // A family begun with two factors (as a two-factor login will store it).
    w.store
        .families
        .lock()
        .unwrap()
        .get_mut(&first.session.id)
        .expect("stored")
        .session
        .methods = domain::AuthMethods::PasswordAndOtp;
    w.clock.advance(Duration::from_secs(60));
    let next = w
        .sessions
        .refresh(Some(first.refresh.secret.expose()), &client())
        .await
        .expect("rotates");
    assert_eq!(amr(&next.access.token), domain::AuthMethods::PasswordAndOtp);
}

//! Registration, login, the brute-force throttle and the hashing queue, on
//! fakes.

use std::time::Duration;

use domain::{PasswordHash, User, UserId, Username};
use uuid::Uuid;

use super::fakes::{World, secret};
use super::tests::{client, login, world_with_alice};
use super::*;
use crate::ports::UserRepository;
use crate::{AuthConfig, ClientInfo};

#[tokio::test]
async fn register_parses_and_refuses_by_policy() {
    let w = world_with_alice().await;
    assert!(matches!(
        w.registration
            .register("ALICE", secret("another one"))
            .await,
        Err(RegisterError::UsernameTaken)
    ));
    assert!(matches!(
        w.registration.register("a b", secret("long enough")).await,
        Err(RegisterError::InvalidUsername(_))
    ));
    assert!(matches!(
        w.registration.register("bob", secret("short")).await,
        Err(RegisterError::WeakPassword(_))
    ));
    let long = "p".repeat(1025);
    assert!(matches!(
        w.registration.register("bob", secret(&long)).await,
        Err(RegisterError::WeakPassword(_))
    ));
    let user = w
        .registration
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
        w.registration
            .register("carol", secret("long enough"))
            .await,
        Err(RegisterError::Closed)
    ));
    w.registration
        .accounts
        .add("carol", secret("long enough"))
        .await
        .expect("admin add");
}

#[tokio::test]
async fn login_issues_claims_and_a_cookie_lifetime() {
    let w = world_with_alice().await;
    let out = login(&w).await;
    let claims = w.access.verify(&out.access.token).expect("valid");
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
            .logins
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
        .logins
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
            .logins
            .login("alice", secret("wrong password"), &client())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }
    let err = w
        .logins
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
        key: None,
    };
    w.logins
        .login("alice", secret("correct horse"), &other)
        .await
        .expect("other client");
    w.clock.advance(Duration::from_secs(901));
    login(&w).await;
}

#[tokio::test]
async fn a_full_hashing_queue_sheds_logins_and_registrations_before_any_work() {
    use std::sync::atomic::Ordering::SeqCst;
    let w = world_with_alice().await;
    w.hasher.overloaded.store(true, SeqCst);
    let before = w.hasher.verifications.load(SeqCst);
    // More shed logins than the throttle allows: none of them counts.
    for _ in 0..10 {
        let err = w
            .logins
            .login("alice", secret("wrong password"), &client())
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::Overloaded(_)), "{err:?}");
    }
    let err = w
        .registration
        .register("bob", secret("correct horse"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegisterError::Overloaded(_)), "{err:?}");
    assert_eq!(w.hasher.verifications.load(SeqCst), before);
    w.hasher.overloaded.store(false, SeqCst);
    // No throttle slot was taken and bob was not created.
    login(&w).await;
    w.registration
        .register("bob", secret("correct horse"))
        .await
        .expect("bob after the load");
}

#[tokio::test]
async fn imported_hashes_are_upgraded_after_login() {
    let w = World::new(AuthConfig::default());
    let user = User {
        id: UserId::from_uuid(Uuid::from_u128(7)),
        username: Username::parse("legacy").unwrap(),
        password_hash: PasswordHash::new("legacy$password123"),
        created_at: w.access.now(),
    };
    w.users.insert(&user).await.unwrap();
    let out = w
        .logins
        .login("legacy", secret("password123"), &client())
        .await
        .expect("login")
        .done()
        .expect("one factor");
    assert_eq!(out.user.password_hash.as_str(), "plain$password123");
    let stored = w.users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash.as_str(), "plain$password123");
}

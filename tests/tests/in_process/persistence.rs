//! The persistence adapter on real databases: the same repository suite on
//! SQLite and PostgreSQL, concurrent rotation, migrations, a database restart
//! and the revocation buses.
//!
//! PostgreSQL tests start a throwaway server (see `integration_tests::postgres`);
//! without PostgreSQL binaries they fail when `CI` is set and are ignored
//! otherwise.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapters::persistence::{
    AuditFilter, Database, LocalRevocationBus, PgRevocationBus, SeaAuditLog, SeaLoginThrottle,
    SeaSessionStore, SeaUserRepository,
};
use application::ClientInfo;
use application::ports::{
    Clock, HealthCheck, InsertUserError, LoginThrottle, RefreshOutcome, RefreshRefusal,
    RevocationBus, SecurityEvent, SecurityEventKind, SessionStore, SuccessorToken, ThrottleKey,
    ThrottlePolicy, UserRepository,
};
use domain::{
    Family, PasswordHash, RevokeReason, RotationDecision, Session, SessionId, Timestamp, TokenHash,
    TokenPolicy, User, UserId, Username,
};
use integration_tests::postgres::{
    PostgresServer, fresh_migrated_postgres_url, fresh_postgres_url, fresh_sqlite_url,
};
use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// Access-token lifetime the buses under test reach back for.
const TTL: Duration = Duration::from_secs(900);

// ---------------------------------------------------------------- harness

async fn sqlite_db() -> Database {
    let db = Database::connect(&fresh_sqlite_url())
        .await
        .expect("open SQLite");
    db.migrate().await.expect("migrate SQLite");
    assert!(!db.is_postgres());
    db
}

async fn postgres_db() -> Database {
    let url = fresh_migrated_postgres_url().await;
    let db = Database::connect(&url).await.expect("connect PostgreSQL");
    db.migrate().await.expect("migrate PostgreSQL");
    assert!(db.is_postgres());
    db
}

/// Runs a suite function against a fresh SQLite and a fresh PostgreSQL database.
macro_rules! on_both {
    ($($suite:ident),* $(,)?) => {$(
        mod $suite {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$suite(super::sqlite_db().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
            async fn postgres() {
                super::$suite(super::postgres_db().await).await;
            }
        }
    )*};
}

on_both!(
    users_are_found_case_insensitively,
    same_name_in_other_case_is_a_duplicate,
    concurrent_inserts_of_one_name_leave_one_user,
    sessions_lifecycle,
    prune_deletes_ended_sessions_in_batches,
    throttle_counts_in_windows,
    concurrent_slots_all_count,
    refresh_outcomes_follow_the_domain_rule,
    fifty_concurrent_refreshes_mint_one_successor,
    fifty_concurrent_replays_after_the_grace_revoke_the_family,
    migrations_are_idempotent,
    health_check_answers,
    audit_log_filters_newest_first,
    audit_prune_deletes_the_oldest_in_batches,
    audit_rows_outlive_sessions_and_users,
    writes_beside_fifty_rotations_all_land,
);

fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + secs)
}

fn hash(n: u64) -> TokenHash {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b[8..16].copy_from_slice(&Uuid::new_v4().as_bytes()[..8]);
    TokenHash::from_bytes(b)
}

fn successor(n: u64) -> SuccessorToken {
    let hash = hash(n);
    let mut seal = [0u8; 32];
    seal[..8].copy_from_slice(&n.to_le_bytes());
    seal[31] = 0xA5;
    SuccessorToken { hash, seal }
}

fn user(name: &str) -> User {
    User {
        id: UserId::from_uuid(Uuid::new_v4()),
        username: Username::parse(name).expect("username"),
        password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
        created_at: t(0),
    }
}

async fn stored_user(db: &Database, name: &str) -> User {
    let u = user(name);
    SeaUserRepository::new(db.clone())
        .insert(&u)
        .await
        .expect("insert user");
    u
}

/// A new family of `owner` at `now`, stored; returns it with its first token.
async fn login(
    store: &SeaSessionStore,
    owner: UserId,
    now: Timestamp,
    policy: &TokenPolicy,
) -> Family {
    let session = Session::start(
        SessionId::from_uuid(Uuid::new_v4()),
        owner,
        now,
        policy.session_max_age,
        Some("test-agent/1.0".into()),
        Some("127.0.0.1".into()),
    );
    let family = Family::start(session, hash(0), policy);
    store
        .create(&family.session, &family.tokens[0])
        .await
        .expect("create session");
    family
}

/// `SELECT COUNT(*) FROM refresh_tokens WHERE <column> = <value>`.
async fn count_tokens(db: &Database, column: &str, value: sea_orm::Value) -> i64 {
    let query = Query::select()
        .expr(Expr::col(Asterisk).count())
        .from(Alias::new("refresh_tokens"))
        .and_where(Expr::col(Alias::new(column)).eq(value))
        .to_owned();
    let stmt = db.connection().get_database_backend().build(&query);
    let row = db
        .connection()
        .query_one_raw(stmt)
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("count value")
}

async fn count_rows(db: &Database, table: &str) -> i64 {
    let query = Query::select()
        .expr(Expr::col(Asterisk).count())
        .from(Alias::new(table))
        .to_owned();
    let stmt = db.connection().get_database_backend().build(&query);
    let row = db
        .connection()
        .query_one_raw(stmt)
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("count value")
}

// ---------------------------------------------------------------- users

async fn users_are_found_case_insensitively(db: Database) {
    let repo = SeaUserRepository::new(db.clone());
    let alice = stored_user(&db, "Alice.Smith").await;
    let found = repo
        .find_by_username(&Username::parse("aLICE.smith").unwrap())
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        found, alice,
        "the stored user comes back whole, display casing kept"
    );
    assert_eq!(
        repo.find_by_id(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        repo.find_by_username(&Username::parse("bob").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.find_by_id(UserId::from_uuid(Uuid::new_v4()))
            .await
            .unwrap(),
        None
    );

    let upgraded = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3aGFzaA");
    repo.update_password_hash(alice.id, &upgraded)
        .await
        .unwrap();
    let found = repo.find_by_id(alice.id).await.unwrap().expect("found");
    assert_eq!(found.password_hash, upgraded);
    assert_eq!(found.username.as_str(), "Alice.Smith");
}

async fn same_name_in_other_case_is_a_duplicate(db: Database) {
    let repo = SeaUserRepository::new(db.clone());
    stored_user(&db, "Carol").await;
    let err = repo.insert(&user("cAROL")).await.expect_err("duplicate");
    assert!(matches!(err, InsertUserError::Duplicate), "got {err:?}");
    // The same id twice is refused as well.
    let dave = user("dave");
    repo.insert(&dave).await.unwrap();
    let mut again = dave.clone();
    again.username = Username::parse("dave2").unwrap();
    assert!(repo.insert(&again).await.is_err());
}

async fn concurrent_inserts_of_one_name_leave_one_user(db: Database) {
    let repo = Arc::new(SeaUserRepository::new(db.clone()));
    let names = ["Racer", "racer", "RACER", "rAcEr", "RaCeR"];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let repo = repo.clone();
            let u = user(names[i % names.len()]);
            tokio::spawn(async move { repo.insert(&u).await })
        })
        .collect();
    let (mut ok, mut dup) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(InsertUserError::Duplicate) => dup += 1,
            Err(e) => panic!("a concurrent insert failed unexpectedly: {e:?}"),
        }
    }
    assert_eq!((ok, dup), (1, 19));
    assert_eq!(count_rows(&db, "users").await, 1);
}

// ---------------------------------------------------------------- sessions

async fn sessions_lifecycle(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy::default();
    let owner = stored_user(&db, "erin").await.id;
    let other = stored_user(&db, "frank").await.id;
    let a = login(&store, owner, t(10), &policy).await;
    let b = login(&store, owner, t(20), &policy).await;
    let c = login(&store, owner, t(30), &policy).await;
    let f = login(&store, other, t(40), &policy).await;

    assert_eq!(
        store.find(a.session.id).await.unwrap(),
        Some(a.session.clone())
    );
    assert_eq!(
        store
            .find(SessionId::from_uuid(Uuid::new_v4()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_by_token(&a.tokens[0].hash).await.unwrap(),
        Some(a.session.clone())
    );
    assert_eq!(store.find_by_token(&hash(99)).await.unwrap(), None);

    let live: Vec<_> = store
        .list_live(owner, t(50))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        live,
        vec![c.session.id, b.session.id, a.session.id],
        "newest first, only the owner's"
    );

    // Revoke one: live before => true; again => false.
    assert!(
        store
            .revoke(b.session.id, RevokeReason::UserRevoked, t(60))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke(b.session.id, RevokeReason::Logout, t(61))
            .await
            .unwrap()
    );
    let stored = store.find(b.session.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(t(60)));
    assert_eq!(
        stored.revoke_reason,
        Some(RevokeReason::UserRevoked),
        "the first revocation is kept"
    );
    let live: Vec<_> = store
        .list_live(owner, t(62))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![c.session.id, a.session.id]);

    // A session whose only token expired is not listed although the session itself is not over.
    let short = TokenPolicy {
        refresh_ttl: Duration::from_secs(5),
        ..policy
    };
    let s = login(&store, owner, t(70), &short).await;
    assert!(
        store
            .list_live(owner, t(74))
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == s.session.id)
    );
    assert!(
        !store
            .list_live(owner, t(75))
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == s.session.id)
    );

    // An expired session cannot be revoked (it was not live).
    let tiny = TokenPolicy {
        session_max_age: Duration::from_secs(5),
        ..policy
    };
    let e = login(&store, owner, t(80), &tiny).await;
    assert!(
        !store
            .revoke(e.session.id, RevokeReason::UserRevoked, t(85))
            .await
            .unwrap()
    );

    // Revoke all: every live session of the owner (not the ended one), none
    // of the other user's.
    let mut ids = store
        .revoke_all_for_user(owner, RevokeReason::Logout, t(90))
        .await
        .unwrap();
    ids.sort();
    let mut expected = vec![a.session.id, c.session.id, s.session.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(
        store
            .revoke_all_for_user(owner, RevokeReason::Logout, t(91))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_live(owner, t(92)).await.unwrap().is_empty());
    let ended = store.find(e.session.id).await.unwrap().unwrap();
    assert_eq!((ended.revoked_at, ended.revoke_reason), (None, None));
    assert_eq!(store.list_live(other, t(92)).await.unwrap().len(), 1);
    assert_eq!(
        store.find(f.session.id).await.unwrap().unwrap().revoked_at,
        None
    );

    let since: HashSet<_> = store
        .revoked_since(t(60))
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(since.len(), 4);
    assert!(since.contains(&b.session.id));
    let since: HashSet<_> = store
        .revoked_since(t(61))
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(since.len(), 3, "revoked at or after the instant only");

    // Client-supplied text that a column would refuse is stored cleaned, not a failure.
    let odd = Session::start(
        SessionId::from_uuid(Uuid::new_v4()),
        other,
        t(100),
        policy.session_max_age,
        Some(format!("agent\0{}", "a".repeat(2_000))),
        Some("x".repeat(100)),
    );
    let first = Family::start(odd.clone(), hash(7), &policy)
        .tokens
        .remove(0);
    store
        .create(&odd, &first)
        .await
        .expect("create with odd client text");
    let stored = store.find(odd.id).await.unwrap().unwrap();
    assert_eq!(stored.user_agent.as_deref().map(str::len), Some(512));
    assert!(!stored.user_agent.unwrap().contains('\0'));
    assert_eq!(stored.ip.map(|ip| ip.len()), Some(64));
}

async fn prune_deletes_ended_sessions_in_batches(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy {
        session_max_age: Duration::from_secs(100),
        ..TokenPolicy::default()
    };
    let owner = stored_user(&db, "grace").await.id;
    let mut ended = Vec::new();
    for i in 0..5 {
        // Expired at t(100 + i).
        ended.push(login(&store, owner, t(i), &policy).await);
    }
    let revoked = login(&store, owner, t(150), &policy).await;
    store
        .revoke(revoked.session.id, RevokeReason::Logout, t(160))
        .await
        .unwrap();
    let recent = login(&store, owner, t(170), &policy).await;
    store
        .revoke(recent.session.id, RevokeReason::Logout, t(300))
        .await
        .unwrap();
    let live = login(&store, owner, t(290), &policy).await;
    // Give one ended family a rotated token too.
    let now = t(10);
    let out = store
        .refresh(&ended[4].tokens[0].hash, &successor(1), now, &policy)
        .await
        .unwrap();
    assert!(matches!(out, RefreshOutcome::Rotated { .. }));
    assert_eq!(
        count_rows(&db, "refresh_tokens").await,
        9,
        "8 first tokens and one successor"
    );

    // Ended before t(200): the 5 expired + the one revoked at t(160); not the one revoked at t(300).
    assert_eq!(store.prune(t(200), 4).await.unwrap(), 4);
    assert_eq!(store.prune(t(200), 4).await.unwrap(), 2);
    assert_eq!(store.prune(t(200), 4).await.unwrap(), 0);
    for f in &ended {
        assert_eq!(store.find(f.session.id).await.unwrap(), None);
    }
    assert_eq!(store.find(revoked.session.id).await.unwrap(), None);
    assert!(store.find(recent.session.id).await.unwrap().is_some());
    assert!(store.find(live.session.id).await.unwrap().is_some());
    assert_eq!(count_rows(&db, "sessions").await, 2);
    assert_eq!(
        count_rows(&db, "refresh_tokens").await,
        2,
        "tokens went with their sessions"
    );
}

// ---------------------------------------------------------------- throttle

/// Contract v2 ("Brute force"): N simultaneous guesses for one key get at
/// most `LOGIN_MAX_FAILURES` password checks, also across processes (two
/// pools here, each with its own in-process write gate).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn throttle_slots_hold_under_concurrency_across_pools() {
    for url in [fresh_sqlite_url(), fresh_postgres_url().await] {
        let a = Database::connect(&url).await.unwrap();
        a.migrate().await.unwrap();
        let b = Database::connect(&url).await.unwrap();
        let policy = ThrottlePolicy {
            max_failures: 5,
            window: Duration::from_secs(60),
        };
        let throttles = [
            Arc::new(SeaLoginThrottle::new(a, policy)),
            Arc::new(SeaLoginThrottle::new(b, policy)),
        ];
        let key = ThrottleKey {
            username: "ivy".into(),
            client: "10.0.0.9".into(),
        };
        let takers = (0..40).map(|i| {
            let throttle = throttles[i % 2].clone();
            let key = key.clone();
            tokio::spawn(async move { throttle.take_slot(&key, t(1)).await.unwrap() })
        });
        let mut admitted = 0;
        for taker in takers.collect::<Vec<_>>() {
            if taker.await.unwrap().is_none() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 5, "{url}");
    }
}

async fn throttle_counts_in_windows(db: Database) {
    let policy = ThrottlePolicy {
        max_failures: 3,
        window: Duration::from_secs(60),
    };
    let throttle = SeaLoginThrottle::new(db.clone(), policy);
    let key = ThrottleKey {
        username: "henry".into(),
        client: "10.0.0.1".into(),
    };
    let other = ThrottleKey {
        username: "henry".into(),
        client: "10.0.0.2".into(),
    };

    // Each login takes a slot before its password is checked; a failure keeps it.
    assert_eq!(throttle.take_slot(&key, t(0)).await.unwrap(), None);
    assert_eq!(throttle.take_slot(&key, t(10)).await.unwrap(), None);
    assert_eq!(
        throttle.take_slot(&key, t(20)).await.unwrap(),
        None,
        "3 of 3"
    );
    assert_eq!(
        throttle.take_slot(&key, t(20)).await.unwrap(),
        Some(Duration::from_secs(40))
    );
    assert_eq!(
        throttle.take_slot(&key, t(59)).await.unwrap(),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        throttle.take_slot(&other, t(21)).await.unwrap(),
        None,
        "keys are independent"
    );
    // The window closes 60 s after its first attempt; the next opens a new one.
    assert_eq!(throttle.take_slot(&key, t(60)).await.unwrap(), None);
    assert_eq!(throttle.take_slot(&key, t(61)).await.unwrap(), None);
    assert_eq!(throttle.take_slot(&key, t(62)).await.unwrap(), None);
    assert_eq!(
        throttle.take_slot(&key, t(64)).await.unwrap(),
        Some(Duration::from_secs(56))
    );
    // A success clears the key.
    throttle.clear(&key).await.unwrap();
    assert_eq!(throttle.take_slot(&key, t(64)).await.unwrap(), None);
    throttle.clear(&key).await.unwrap();
    throttle.clear(&other).await.unwrap();

    // Prune deletes only closed windows.
    throttle.take_slot(&key, t(100)).await.unwrap();
    throttle.take_slot(&other, t(150)).await.unwrap();
    assert_eq!(throttle.prune(t(170)).await.unwrap(), 1);
    assert_eq!(count_rows(&db, "login_failures").await, 1);
    assert_eq!(throttle.prune(t(210)).await.unwrap(), 1);

    // Keys can be anything: long, NUL, non-ASCII. They still count, never fail.
    for odd in [
        "evil\0name".repeat(500),
        "caf\u{e9}".to_owned(),
        "x".repeat(300),
    ] {
        let key = ThrottleKey {
            username: odd,
            client: "10.0.0.3".into(),
        };
        for at in 0..3 {
            let taken = throttle.take_slot(&key, t(300 + at)).await;
            assert_eq!(taken.expect("odd key counted"), None);
        }
        assert!(throttle.take_slot(&key, t(303)).await.unwrap().is_some());
        throttle.clear(&key).await.unwrap();
        assert_eq!(throttle.take_slot(&key, t(303)).await.unwrap(), None);
    }
}

async fn concurrent_slots_all_count(db: Database) {
    let policy = ThrottlePolicy {
        max_failures: 30,
        window: Duration::from_secs(60),
    };
    let throttle = Arc::new(SeaLoginThrottle::new(db.clone(), policy));
    let key = ThrottleKey {
        username: "ivan".into(),
        client: "10.0.0.9".into(),
    };
    let tasks: Vec<_> = (0..29)
        .map(|_| {
            let (throttle, key) = (throttle.clone(), key.clone());
            tokio::spawn(async move { throttle.take_slot(&key, t(1)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().expect("take_slot"), None, "29 of 30");
    }
    assert_eq!(
        throttle.take_slot(&key, t(2)).await.unwrap(),
        None,
        "30 of 30"
    );
    assert!(
        throttle.take_slot(&key, t(2)).await.unwrap().is_some(),
        "no slot was lost"
    );
}

// ---------------------------------------------------------------- rotation

fn decision_of(outcome: &RefreshOutcome) -> &'static str {
    match outcome {
        RefreshOutcome::Rotated { .. } => "rotate",
        RefreshOutcome::GraceReplay { .. } => "grace",
        RefreshOutcome::ReuseDetected { .. } => "reuse",
        RefreshOutcome::Refused(refusal) => refusal_of(*refusal),
    }
}

fn refusal_of(refusal: RefreshRefusal) -> &'static str {
    match refusal {
        RefreshRefusal::Unknown => "unknown",
        RefreshRefusal::Expired => "expired",
        RefreshRefusal::SessionExpired => "session_expired",
        RefreshRefusal::Revoked => "revoked",
    }
}

fn name_of(d: RotationDecision) -> &'static str {
    match d {
        RotationDecision::Rotate { .. } => "rotate",
        RotationDecision::GraceReplay => "grace",
        RotationDecision::ReuseDetected => "reuse",
        RotationDecision::Refuse(refusal) => refusal_of(refusal),
    }
}

/// Presents `token` at `now` both to the store and to the in-memory reference
/// family, and checks that they agree on the decision and on the state after it.
async fn present(
    store: &SeaSessionStore,
    reference: &mut Family,
    token: &TokenHash,
    now: Timestamp,
    policy: &TokenPolicy,
    n: u64,
) -> RefreshOutcome {
    let succ = successor(n);
    let outcome = store
        .refresh(token, &succ, now, policy)
        .await
        .expect("refresh");
    let expected = reference.refresh(token, now, policy, succ.hash);
    assert_eq!(decision_of(&outcome), name_of(expected), "at {now:?}");
    match &outcome {
        RefreshOutcome::Rotated {
            session,
            successor: minted,
        } => {
            assert_eq!(session, &reference.session);
            assert_eq!(Some(minted), reference.current());
            assert_eq!(minted.parent, Some(*token));
        }
        RefreshOutcome::GraceReplay {
            session,
            current,
            seal,
        } => {
            assert_eq!(session, &reference.session);
            assert_eq!(Some(current), reference.current());
            // The seal stored when `token` was rotated: made with the successor's number.
            assert_eq!(
                seal.expect("the parent is sealed inside the grace")[31],
                0xA5
            );
        }
        RefreshOutcome::ReuseDetected { session } => {
            assert_eq!(session, &reference.session);
            assert_eq!(session.revoke_reason, Some(RevokeReason::ReuseDetected));
        }
        RefreshOutcome::Refused(_) => {}
    }
    if !matches!(outcome, RefreshOutcome::Refused(RefreshRefusal::Unknown)) {
        // Whatever happened, the stored family is the reference family.
        let stored = store
            .find(reference.session.id)
            .await
            .unwrap()
            .expect("session");
        assert_eq!(stored, reference.session);
    }
    outcome
}

async fn refresh_outcomes_follow_the_domain_rule(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy {
        refresh_ttl: Duration::from_secs(100),
        reuse_grace: Duration::from_secs(10),
        session_max_age: Duration::from_secs(1_000),
    };
    let owner = stored_user(&db, "judy").await.id;

    // Rotate, then grace replay of the parent, then reuse after the grace.
    let mut f = login(&store, owner, t(0), &policy).await;
    let t0 = f.tokens[0].hash;
    let out = present(&store, &mut f, &t0, t(1), &policy, 1).await;
    let RefreshOutcome::Rotated { successor: t1, .. } = out else {
        panic!("rotate")
    };
    let RefreshOutcome::GraceReplay { current, seal, .. } =
        present(&store, &mut f, &t0, t(5), &policy, 2).await
    else {
        panic!("grace")
    };
    assert_eq!(current.hash, t1.hash);
    assert_eq!(
        seal,
        Some(successor(1).seal),
        "the grace answer returns the seal stored at rotation"
    );
    assert_eq!(
        count_tokens(&db, "session_id", (*f.session.id.as_uuid()).into()).await,
        2,
        "grace minted nothing"
    );
    let t2 = match present(&store, &mut f, &t1.hash, t(6), &policy, 3).await {
        RefreshOutcome::Rotated { successor, .. } => successor,
        other => panic!("rotate, got {other:?}"),
    };
    // A grandparent is reuse even inside the grace.
    present(&store, &mut f, &t0, t(7), &policy, 4).await;
    assert!(f.session.is_revoked());
    // A revoked family stays revoked, even for its current token.
    assert!(matches!(
        present(&store, &mut f, &t2.hash, t(8), &policy, 5).await,
        RefreshOutcome::Refused(RefreshRefusal::Revoked)
    ));

    // Parent after the grace: reuse.
    let mut g = login(&store, owner, t(0), &policy).await;
    let g0 = g.tokens[0].hash;
    present(&store, &mut g, &g0, t(1), &policy, 6).await;
    assert!(matches!(
        present(&store, &mut g, &g0, t(11), &policy, 7).await,
        RefreshOutcome::ReuseDetected { .. }
    ));

    // Idle expiry of a token, then absolute expiry of the family.
    let mut h = login(&store, owner, t(0), &policy).await;
    let h0 = h.tokens[0].hash;
    assert!(matches!(
        present(&store, &mut h, &h0, t(100), &policy, 8).await,
        RefreshOutcome::Refused(RefreshRefusal::Expired)
    ));
    let mut k = login(&store, owner, t(0), &policy).await;
    let mut token = k.tokens[0].hash;
    for (i, at) in (90..1_000).step_by(90).enumerate() {
        match present(&store, &mut k, &token, t(at), &policy, 100 + i as u64).await {
            RefreshOutcome::Rotated { successor, .. } => token = successor.hash,
            other => panic!("rotate at {at}, got {other:?}"),
        }
    }
    assert!(matches!(
        present(&store, &mut k, &token, t(1_000), &policy, 200).await,
        RefreshOutcome::Refused(RefreshRefusal::SessionExpired)
    ));

    // Unknown token.
    let mut none = login(&store, owner, t(0), &policy).await;
    assert!(matches!(
        present(&store, &mut none, &hash(12345), t(1), &policy, 9).await,
        RefreshOutcome::Refused(RefreshRefusal::Unknown)
    ));
}

/// Presents `token` from `n` tasks at once, each with its own successor.
async fn concurrently(
    store: &SeaSessionStore,
    token: TokenHash,
    now: Timestamp,
    policy: TokenPolicy,
    n: u64,
) -> Vec<(SuccessorToken, RefreshOutcome)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n as usize));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let succ = successor(1_000 + i);
            tokio::spawn(async move {
                barrier.wait().await;
                let outcome = store.refresh(&token, &succ, now, &policy).await;
                (succ, outcome)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        let (succ, outcome) = task.await.expect("task");
        let outcome = outcome.unwrap_or_else(|e| panic!("a concurrent refresh failed: {e:?}"));
        results.push((succ, outcome));
    }
    results
}

async fn fifty_concurrent_refreshes_mint_one_successor(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy::default();
    let owner = stored_user(&db, "kate").await.id;
    let f = login(&store, owner, t(0), &policy).await;
    let presented = f.tokens[0].hash;

    let results = concurrently(&store, presented, t(1), policy, 50).await;
    let winners: Vec<_> = results
        .iter()
        .filter_map(|(succ, o)| match o {
            RefreshOutcome::Rotated { successor, .. } => Some((succ.clone(), successor.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation");
    let (winner_succ, winner_token) = &winners[0];
    assert_eq!(winner_token.hash, winner_succ.hash);
    for (_, outcome) in &results {
        match outcome {
            RefreshOutcome::Rotated { .. } => {}
            RefreshOutcome::GraceReplay {
                current,
                seal,
                session,
            } => {
                assert_eq!(
                    current, winner_token,
                    "every grace answer names the one successor"
                );
                assert_eq!(*seal, Some(winner_succ.seal));
                assert!(!session.is_revoked());
            }
            other => panic!("neither the successor nor the grace answer: {other:?}"),
        }
    }
    assert_eq!(
        count_tokens(&db, "parent_hash", presented.as_bytes().to_vec().into()).await,
        1,
        "one successor row"
    );
    assert_eq!(
        count_tokens(&db, "session_id", (*f.session.id.as_uuid()).into()).await,
        2
    );
    assert!(
        !store
            .find(f.session.id)
            .await
            .unwrap()
            .unwrap()
            .is_revoked()
    );
}

async fn fifty_concurrent_replays_after_the_grace_revoke_the_family(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy::default();
    let owner = stored_user(&db, "leo").await.id;
    let f = login(&store, owner, t(0), &policy).await;
    let parent = f.tokens[0].hash;
    assert!(matches!(
        store
            .refresh(&parent, &successor(1), t(1), &policy)
            .await
            .unwrap(),
        RefreshOutcome::Rotated { .. }
    ));

    let after_grace = t(1).plus(policy.reuse_grace);
    let results = concurrently(&store, parent, after_grace, policy, 50).await;
    let reuse = results
        .iter()
        .filter(|(_, o)| matches!(o, RefreshOutcome::ReuseDetected { .. }))
        .count();
    let revoked = results
        .iter()
        .filter(|(_, o)| matches!(o, RefreshOutcome::Refused(RefreshRefusal::Revoked)))
        .count();
    assert_eq!(
        (reuse, revoked),
        (1, 49),
        "one detects the reuse, the others find the family revoked"
    );
    let stored = store.find(f.session.id).await.unwrap().unwrap();
    assert_eq!(stored.revoke_reason, Some(RevokeReason::ReuseDetected));
    assert_eq!(stored.revoked_at, Some(after_grace));
    assert_eq!(
        count_tokens(&db, "session_id", (*f.session.id.as_uuid()).into()).await,
        2,
        "nothing minted"
    );
}

// ---------------------------------------------------------------- migrations, health

fn migration_count() -> i64 {
    use migration::MigratorTrait as _;
    i64::try_from(migration::Migrator::migrations().len()).expect("a few migrations")
}

async fn migrations_are_idempotent(db: Database) {
    // `db` is migrated already: again is a no-op, and the schema works afterwards.
    db.migrate().await.expect("second run");
    db.migrate().await.expect("third run");
    assert_eq!(count_rows(&db, "seaql_migrations").await, migration_count());
    for table in [
        "users",
        "sessions",
        "refresh_tokens",
        "login_failures",
        "audit_events",
    ] {
        assert_eq!(count_rows(&db, table).await, 0, "{table}");
    }
    stored_user(&db, "mallory").await;
}

async fn health_check_answers(db: Database) {
    db.ping().await.expect("ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn migrations_apply_to_an_empty_database_from_two_processes_at_once() {
    for url in [fresh_sqlite_url(), fresh_postgres_url().await] {
        let a = Database::connect(&url).await.unwrap();
        let b = Database::connect(&url).await.unwrap();
        let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
        ra.expect("first migrator");
        rb.expect("second migrator");
        assert_eq!(
            count_rows(&a, "seaql_migrations").await,
            migration_count(),
            "{url}"
        );
        stored_user(&b, "nina").await;
    }
}

#[tokio::test]
async fn sqlite_creates_directory_and_file() {
    let url = fresh_sqlite_url();
    let path = url.strip_prefix("sqlite://").unwrap();
    let nested = format!("{}/nested/deeper/auth.db", path.trim_end_matches(".db"));
    let db = Database::connect(&format!("sqlite://{nested}"))
        .await
        .expect("creates");
    db.migrate().await.unwrap();
    assert!(std::path::Path::new(&nested).is_file());
    // WAL mode and foreign keys are on.
    let mode = db
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mode.try_get_by_index::<String>(0).unwrap(), "wal");
    let fk = db
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA foreign_keys",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fk.try_get_by_index::<i32>(0).unwrap(), 1);
}

// ---------------------------------------------------------------- revocation buses

fn recorder() -> (
    Arc<Mutex<Vec<SessionId>>>,
    application::ports::RevocationListener,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (seen, Arc::new(move |id| sink.lock().unwrap().push(id)))
}

async fn wait_for(seen: &Mutex<Vec<SessionId>>, want: &[SessionId], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got: HashSet<_> = seen.lock().unwrap().iter().copied().collect();
        if want.iter().all(|id| got.contains(id)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "only {} of {} ids arrived within {within:?}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn ids(n: usize) -> Vec<SessionId> {
    (0..n)
        .map(|_| SessionId::from_uuid(Uuid::new_v4()))
        .collect()
}

#[tokio::test]
async fn local_bus_calls_listeners_synchronously() {
    let bus = LocalRevocationBus::new();
    let (seen_a, a) = recorder();
    let (seen_b, b) = recorder();
    bus.subscribe(a);
    bus.subscribe(b);
    let sent = ids(3);
    bus.publish(&sent).await.unwrap();
    assert_eq!(*seen_a.lock().unwrap(), sent);
    assert_eq!(*seen_b.lock().unwrap(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn pg_bus_reaches_other_instances_within_a_second() {
    let url = fresh_postgres_url().await;
    // The buses read `sessions` every second.
    Database::connect(&url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let a = PgRevocationBus::start(&url, TTL, Arc::new(adapters::system::SystemClock))
        .await
        .expect("bus a");
    let b = PgRevocationBus::start(&url, TTL, Arc::new(adapters::system::SystemClock))
        .await
        .expect("bus b");
    let (seen_a, la) = recorder();
    let (seen_b, lb) = recorder();
    a.subscribe(la);
    b.subscribe(lb);
    let sent = ids(3);
    a.publish(&sent).await.unwrap();
    let took = wait_for(&seen_b, &sent, Duration::from_secs(1)).await;
    eprintln!("revocation reached the other instance in {took:?}");
    wait_for(&seen_a, &sent, Duration::from_secs(1)).await;
    // Many ids go out in several notifications, each under the payload limit.
    let many = ids(450);
    b.publish(&many).await.unwrap();
    wait_for(&seen_a, &many, Duration::from_secs(1)).await;
    wait_for(&seen_b, &many, Duration::from_secs(1)).await;
    assert_eq!(seen_a.lock().unwrap().len(), 453, "each id once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn pool_and_bus_recover_from_a_database_restart() {
    let server = PostgresServer::start().await;
    let url = server.fresh_database_url().await;
    let db = Database::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let users = SeaUserRepository::new(db.clone());
    let bus = PgRevocationBus::start(&url, TTL, Arc::new(adapters::system::SystemClock))
        .await
        .unwrap();
    let (seen, listener) = recorder();
    bus.subscribe(listener);

    // In use before.
    let before = stored_user(&db, "oscar").await;
    let sent = ids(1);
    bus.publish(&sent).await.unwrap();
    wait_for(&seen, &sent, Duration::from_secs(1)).await;

    // Down: the health check says so quickly instead of hanging.
    server.stop().await;
    let start = Instant::now();
    assert!(db.ping().await.is_err(), "ping while the database is down");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the health check took {:?}",
        start.elapsed()
    );
    server.restart().await;

    // The same pool works again (dead connections are replaced).
    let found = users
        .find_by_id(before.id)
        .await
        .expect("query after restart");
    assert_eq!(found, Some(before));
    db.ping().await.expect("ping after restart");
    stored_user(&db, "peggy").await;

    // The same bus hears publishes again once its listener reconnected by itself.
    let start = Instant::now();
    loop {
        let probe = ids(1);
        bus.publish(&probe).await.expect("publish after restart");
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut arrived = false;
        while Instant::now() < deadline {
            if seen.lock().unwrap().contains(&probe[0]) {
                arrived = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if arrived {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the LISTEN connection did not recover"
        );
    }
    eprintln!(
        "the bus delivered again {:?} after the restart",
        start.elapsed()
    );
    // And then within a second, every time.
    let sent = ids(5);
    bus.publish(&sent).await.unwrap();
    wait_for(&seen, &sent, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn pg_bus_catches_up_on_revocations_missed_while_disconnected() {
    let url = fresh_postgres_url().await;
    let db = Database::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let store = SeaSessionStore::new(db.clone());
    let owner = stored_user(&db, "trent").await;
    let now = adapters::system::SystemClock.now();
    let family = login(&store, owner.id, now, &TokenPolicy::default()).await;
    let bus = PgRevocationBus::start(&url, TTL, Arc::new(adapters::system::SystemClock))
        .await
        .unwrap();
    let (seen, listener) = recorder();
    bus.subscribe(listener);

    // Revoked in storage with no announcement (as if the NOTIFY was lost),
    // then the listener's connection drops.
    assert!(
        store
            .revoke(family.session.id, RevokeReason::Logout, now)
            .await
            .unwrap()
    );
    let killed = db
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'authd-revocation-feed'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        killed.try_get_by_index::<i64>(0).unwrap(),
        1,
        "one LISTEN connection"
    );
    let took = wait_for(&seen, &[family.session.id], Duration::from_secs(5)).await;
    eprintln!("a missed revocation was caught up {took:?} after the listener was cut");
}

// ---------------------------------------------------------------- audit trail

fn client(ip: &str, agent: &str) -> ClientInfo {
    ClientInfo {
        ip: Some(ip.into()),
        user_agent: Some(agent.into()),
    }
}

fn kinds(rows: &[adapters::persistence::StoredAuditEvent]) -> Vec<SecurityEventKind> {
    rows.iter().map(|r| r.event.kind).collect()
}

async fn audit_log_filters_newest_first(db: Database) {
    use SecurityEventKind as K;
    let log = SeaAuditLog::new(db.clone());
    let (alice, bob) = (
        UserId::from_uuid(Uuid::new_v4()),
        UserId::from_uuid(Uuid::new_v4()),
    );
    let (s1, s2, s3) = (
        SessionId::from_uuid(Uuid::new_v4()),
        SessionId::from_uuid(Uuid::new_v4()),
        SessionId::from_uuid(Uuid::new_v4()),
    );
    let phone = client("203.0.113.7", "phone/1.0");
    let long_agent = format!("{}\0tail", "x".repeat(600));
    let events = [
        SecurityEvent::new(K::LoginSucceeded, t(0), &phone)
            .username("Alice")
            .user(alice)
            .session(s1),
        SecurityEvent::new(K::LoginFailed, t(1), &client("198.51.100.9", &long_agent))
            .username("Mal\0lory"),
        SecurityEvent::new(K::Logout, t(2), &phone)
            .user(alice)
            .session(s1)
            .revoked(2),
        // Same millisecond as the logout, written after it.
        SecurityEvent::new(K::ReuseDetected, t(2), &client("198.51.100.9", "curl/8"))
            .user(bob)
            .session(s2)
            .revoked(1),
        SecurityEvent::new(K::SessionRevoked, t(3), &ClientInfo::default())
            .user(alice)
            .session(s3)
            .revoked(1),
    ];
    for e in &events {
        log.append(e).await.expect("append");
    }

    let all = log.recent(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        kinds(&all),
        [
            K::SessionRevoked,
            K::ReuseDetected,
            K::Logout,
            K::LoginFailed,
            K::LoginSucceeded
        ],
        "newest first, ties in reverse order of writing"
    );
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    // Stored as given (the username is case-folded by the event itself).
    assert_eq!(all[4].event, events[0]);
    assert_eq!(all[4].event.username.as_deref(), Some("alice"));
    assert_eq!(all[2].event, events[2]);
    assert_eq!(all[1].event, events[3]);
    assert_eq!(all[0].event, events[4]);
    // Client text fit for the column: no NUL, the user agent cut at 512 characters.
    let failed = &all[3].event;
    assert_eq!(failed.username.as_deref(), Some("mallory"));
    assert_eq!(failed.user, None);
    assert_eq!(failed.client.ip.as_deref(), Some("198.51.100.9"));
    assert_eq!(
        failed.client.user_agent.as_deref(),
        Some("x".repeat(512).as_str())
    );

    let of = |filter: AuditFilter| {
        let log = log.clone();
        async move { kinds(&log.recent(&filter).await.unwrap()) }
    };
    assert_eq!(
        of(AuditFilter {
            user: Some(alice),
            ..AuditFilter::default()
        })
        .await,
        [K::SessionRevoked, K::Logout, K::LoginSucceeded]
    );
    assert_eq!(
        of(AuditFilter {
            session: Some(s2),
            ..AuditFilter::default()
        })
        .await,
        [K::ReuseDetected]
    );
    assert_eq!(
        of(AuditFilter {
            kind: Some(K::LoginFailed),
            ..AuditFilter::default()
        })
        .await,
        [K::LoginFailed]
    );
    assert_eq!(
        of(AuditFilter {
            since: Some(t(2)),
            ..AuditFilter::default()
        })
        .await,
        [K::SessionRevoked, K::ReuseDetected, K::Logout]
    );
    assert_eq!(
        of(AuditFilter {
            limit: 2,
            ..AuditFilter::default()
        })
        .await,
        [K::SessionRevoked, K::ReuseDetected]
    );
    assert_eq!(
        of(AuditFilter {
            user: Some(alice),
            session: Some(s1),
            kind: Some(K::Logout),
            since: Some(t(1)),
            limit: 10,
        })
        .await,
        [K::Logout]
    );
    assert_eq!(
        of(AuditFilter {
            user: Some(bob),
            kind: Some(K::Logout),
            ..AuditFilter::default()
        })
        .await,
        []
    );

    // The JSON line of `authd audit`.
    let line = all[1].to_json();
    assert_eq!(line["id"], all[1].id);
    assert_eq!(line["kind"], "reuse_detected");
    assert_eq!(line["at_ms"], t(2).unix_millis());
    assert_eq!(line["at"], "2027-01-15T08:00:02.000Z");
    assert_eq!(line["user_id"], bob.to_string());
    assert_eq!(line["session_id"], s2.to_string());
    assert_eq!(line["sessions_revoked"], 1);
    assert_eq!(line["client_ip"], "198.51.100.9");
    assert_eq!(line["user_agent"], "curl/8");
    assert_eq!(line["username"], serde_json::Value::Null);
}

async fn audit_prune_deletes_the_oldest_in_batches(db: Database) {
    let log = SeaAuditLog::new(db.clone());
    // Written out of time order: the prune goes by time, not by id.
    for s in [3, 0, 6, 1, 4, 2, 5] {
        let e = SecurityEvent::new(SecurityEventKind::LoginFailed, t(s), &ClientInfo::default())
            .username(&format!("user{s}"));
        log.append(&e).await.unwrap();
    }
    let left = |log: SeaAuditLog| async move {
        let mut at: Vec<i64> = log
            .recent(&AuditFilter::default())
            .await
            .unwrap()
            .iter()
            .map(|r| r.event.at.unix_seconds() - 1_800_000_000)
            .collect();
        at.sort_unstable();
        at
    };
    // Older than t(5): five rows, two per batch, the oldest first.
    assert_eq!(log.prune(t(5), 2).await.unwrap(), 2);
    assert_eq!(left(log.clone()).await, [2, 3, 4, 5, 6]);
    assert_eq!(log.prune(t(5), 2).await.unwrap(), 2);
    assert_eq!(left(log.clone()).await, [4, 5, 6]);
    assert_eq!(log.prune(t(5), 2).await.unwrap(), 1);
    assert_eq!(log.prune(t(5), 2).await.unwrap(), 0);
    assert_eq!(left(log.clone()).await, [5, 6], "newer rows stay");
    assert_eq!(count_rows(&db, "audit_events").await, 2);
}

async fn audit_rows_outlive_sessions_and_users(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let log = SeaAuditLog::new(db.clone());
    let policy = TokenPolicy::default();
    let owner = stored_user(&db, "victor").await;
    let family = login(&store, owner.id, t(0), &policy).await;
    let phone = client("192.0.2.1", "phone/1.0");
    log.append(
        &SecurityEvent::new(SecurityEventKind::LoginSucceeded, t(0), &phone)
            .username("victor")
            .user(owner.id)
            .session(family.session.id),
    )
    .await
    .unwrap();
    assert!(
        store
            .revoke(family.session.id, RevokeReason::ReuseDetected, t(5))
            .await
            .unwrap()
    );
    log.append(
        &SecurityEvent::new(SecurityEventKind::ReuseDetected, t(5), &phone)
            .user(owner.id)
            .session(family.session.id)
            .revoked(1),
    )
    .await
    .unwrap();

    // The session is pruned, then the user deleted (sessions cascade).
    assert_eq!(store.prune(t(1_000_000), 100).await.unwrap(), 1);
    let delete = Query::delete()
        .from_table(Alias::new("users"))
        .and_where(Expr::col(Alias::new("id")).eq(*owner.id.as_uuid()))
        .to_owned();
    let stmt = db.connection().get_database_backend().build(&delete);
    let res = db
        .connection()
        .execute_raw(stmt)
        .await
        .expect("delete the user");
    assert_eq!(res.rows_affected(), 1);
    assert_eq!(count_rows(&db, "users").await, 0);
    assert_eq!(count_rows(&db, "sessions").await, 0);

    let rows = log
        .recent(&AuditFilter {
            session: Some(family.session.id),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        kinds(&rows),
        [
            SecurityEventKind::ReuseDetected,
            SecurityEventKind::LoginSucceeded
        ]
    );
    assert!(rows.iter().all(|r| r.event.user == Some(owner.id)));
}

/// Single-statement writes (audit rows, throttle counts, a revocation) racing
/// fifty rotations of one token: every write lands, exactly one rotation
/// wins, and nothing deadlocks (on SQLite they all queue for the one writer).
async fn writes_beside_fifty_rotations_all_land(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let log = SeaAuditLog::new(db.clone());
    let throttle = Arc::new(SeaLoginThrottle::new(
        db.clone(),
        ThrottlePolicy {
            max_failures: 100,
            window: Duration::from_secs(60),
        },
    ));
    let policy = TokenPolicy::default();
    let owner = stored_user(&db, "wendy").await.id;
    let rotated = login(&store, owner, t(0), &policy).await;
    let other = login(&store, owner, t(0), &policy).await;
    let key = ThrottleKey {
        username: "wendy".into(),
        client: "10.0.0.1".into(),
    };
    let phone = client("192.0.2.9", "phone/2.0");
    let writes: Vec<_> = (0..40)
        .map(|i| {
            let (log, throttle, key, phone) =
                (log.clone(), throttle.clone(), key.clone(), phone.clone());
            tokio::spawn(async move {
                let event = SecurityEvent::new(SecurityEventKind::LoginFailed, t(1), &phone)
                    .username("wendy");
                log.append(&event).await.expect("append");
                if i % 2 == 0 {
                    throttle.take_slot(&key, t(1)).await.expect("take_slot");
                }
            })
        })
        .collect();
    let revoke = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .revoke(other.session.id, RevokeReason::Logout, t(1))
                .await
        })
    };
    let results = concurrently(&store, rotated.tokens[0].hash, t(1), policy, 50).await;
    for w in writes {
        w.await.expect("write task");
    }
    assert!(
        revoke.await.expect("revoke task").expect("revoke"),
        "the live session was revoked"
    );
    let rotations = results
        .iter()
        .filter(|(_, o)| matches!(o, RefreshOutcome::Rotated { .. }))
        .count();
    assert_eq!(rotations, 1);
    assert_eq!(count_rows(&db, "audit_events").await, 40);
    let blocked = SeaLoginThrottle::new(
        db.clone(),
        ThrottlePolicy {
            max_failures: 20,
            window: Duration::from_secs(60),
        },
    );
    assert!(
        blocked.take_slot(&key, t(2)).await.unwrap().is_some(),
        "20 slots counted"
    );
    let not_yet = SeaLoginThrottle::new(
        db,
        ThrottlePolicy {
            max_failures: 21,
            window: Duration::from_secs(60),
        },
    );
    assert_eq!(
        not_yet.take_slot(&key, t(2)).await.unwrap(),
        None,
        "exactly 20"
    );
}

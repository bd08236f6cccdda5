//! Latency of the store on the local PostgreSQL: one refresh (the rotation
//! transaction: lock, re-read, decide, update, insert, touch) and one user
//! lookup by name. Run with `cargo bench -p integration-tests --bench store`;
//! the medians are in `target/criterion/<name>/new/estimates.json`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: a failed step ends the run"
)]

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use adapters::persistence::{Database, SeaSessionStore, SeaUserRepository};
use application::ports::{RefreshOutcome, SessionStore, SuccessorToken, UserRepository};
use criterion::{Criterion, criterion_group, criterion_main};
use domain::{
    Family, PasswordHash, Session, SessionId, Timestamp, TokenHash, TokenPolicy, User, UserId,
    Username,
};
use uuid::Uuid;

fn token(n: u64) -> TokenHash {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b[8..24].copy_from_slice(Uuid::new_v4().as_bytes());
    TokenHash::from_bytes(b)
}

fn store_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = rt.block_on(integration_tests::postgres::fresh_postgres_url());
    let db = rt.block_on(async {
        let db = Database::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        db
    });
    let users = SeaUserRepository::new(db.clone());
    let sessions = SeaSessionStore::new(db);
    let policy = TokenPolicy::default();
    let now = Timestamp::from_unix_millis(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    );

    // 1,000 users, so that the lookup goes through the index of a real table.
    let mut target = None;
    rt.block_on(async {
        for i in 0..1_000 {
            let user = User {
                id: UserId::from_uuid(Uuid::new_v4()),
                username: Username::parse(&format!("User{i:04}")).unwrap(),
                password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
                created_at: now,
            };
            users.insert(&user).await.expect("insert");
            if i == 500 {
                target = Some(user);
            }
        }
    });
    let target = target.expect("a target user");
    let lookup = Username::parse("user0500").unwrap();

    let session = Session::start(
        SessionId::from_uuid(Uuid::new_v4()),
        target.id,
        now,
        policy.session_max_age,
        None,
        None,
    );
    let family = Family::start(session, token(0), &policy);
    rt.block_on(sessions.create(&family.session, &family.tokens[0]))
        .expect("create session");
    let current = Cell::new(family.tokens[0].hash);
    let counter = Cell::new(1u64);

    let mut group = c.benchmark_group("postgres");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("refresh_rotation", |b| {
        b.iter(|| {
            let n = counter.get();
            counter.set(n + 1);
            let successor = SuccessorToken {
                hash: token(n),
                seal: [7; 32],
            };
            let outcome = rt
                .block_on(sessions.refresh(&current.get(), &successor, now, &policy))
                .expect("refresh");
            assert!(
                matches!(outcome, RefreshOutcome::Rotated { .. }),
                "{outcome:?}"
            );
            current.set(successor.hash);
        });
    });
    group.bench_function("find_user_by_name", |b| {
        b.iter(|| {
            let user = rt
                .block_on(users.find_by_username(black_box(&lookup)))
                .expect("lookup");
            assert!(user.is_some());
        });
    });
    group.finish();
}

criterion_group!(benches, store_benches);
criterion_main!(benches);

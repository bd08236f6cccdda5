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
use integration_tests::app::Backend;
use integration_tests::postgres::{
    PostgresServer, fresh_migrated_postgres_url, fresh_postgres_url, fresh_sqlite_url,
};
use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

/// Access-token lifetime the buses under test reach back for.
const TTL: Duration = Duration::from_secs(900);

mod audit;
mod buses;
mod mail_store;
mod mfa;
mod migrations;
mod rotation;
mod sessions;
mod signing_keys;
mod throttle;
mod users;

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

/// A fresh, migrated database of `backend` (the suites' `on_both!` argument).
pub(crate) async fn database(backend: Backend) -> Database {
    match backend {
        Backend::Sqlite => sqlite_db().await,
        Backend::Postgres => postgres_db().await,
    }
}

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
    let mut query = count_of("refresh_tokens");
    query.and_where(Expr::col(Alias::new(column)).eq(value));
    count(db, &query).await
}

/// `SELECT COUNT(*) FROM <table>`.
async fn count_rows(db: &Database, table: &str) -> i64 {
    count(db, &count_of(table)).await
}

fn count_of(table: &str) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .expr(Expr::col(Asterisk).count())
        .from(Alias::new(table))
        .to_owned()
}

async fn count(db: &Database, query: &sea_orm::sea_query::SelectStatement) -> i64 {
    let stmt = db.connection().get_database_backend().build(query);
    let row = db
        .connection()
        .query_one_raw(stmt)
        .await
        .expect("count")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("count value")
}

//! Persistence: SeaORM repositories for PostgreSQL and SQLite (one code path),
//! and the revocation bus (PostgreSQL `LISTEN/NOTIFY`, or in-process), both
//! under a read of recent revocations every second.
//!
//! The rule that a replayed refresh token revokes its family lives in
//! `domain::decide_refresh`; [`SeaSessionStore`]'s `refresh` applies it in one
//! transaction with the family locked (see `session_store.rs`).

mod audit_log;
mod database;
mod dpop_replay_store;
mod entities;
mod local_revocation_bus;
mod login_throttle;
mod mail_store;
mod mfa_store;
mod passkey_store;
mod pg_revocation_bus;
mod polling_revocation_bus;
mod revocation_feed;
mod session_store;
mod signing_key_store;
mod user_repository;

pub use audit_log::{AuditFilter, SeaAuditLog, StoredAuditEvent};
pub use database::Database;
pub use dpop_replay_store::SeaDpopReplayStore;
pub use local_revocation_bus::LocalRevocationBus;
pub use login_throttle::SeaLoginThrottle;
pub use mail_store::SeaMailStore;
pub use mfa_store::SeaMfaStore;
pub use passkey_store::SeaPasskeyStore;
pub use pg_revocation_bus::{FEED_APPLICATION_NAME, PgRevocationBus, REVOCATION_CHANNEL};
pub use polling_revocation_bus::PollingRevocationBus;
pub use revocation_feed::{READ_EVERY, READ_TIMEOUT};
pub use session_store::SeaSessionStore;
pub use signing_key_store::SeaSigningKeyStore;
pub use user_repository::SeaUserRepository;

use application::ports::StorageUnavailable;

/// Context for storage errors that also says, for the HTTP edge, when the
/// database could not be reached ([`StorageUnavailable`]).
trait StoreContext<T> {
    /// `.context(what)`, with [`StorageUnavailable`] beneath it when the
    /// error is a lost or unobtainable connection.
    fn store_context(self, what: &'static str) -> anyhow::Result<T>;
}

impl<T> StoreContext<T> for Result<T, sea_orm::DbErr> {
    fn store_context(self, what: &'static str) -> anyhow::Result<T> {
        self.map_err(|e| store_error(e, what))
    }
}

/// `e` with the context `what`, and [`StorageUnavailable`] beneath it when
/// the database could not be reached.
fn store_error(e: sea_orm::DbErr, what: &'static str) -> anyhow::Error {
    if unreachable(&e) {
        anyhow::Error::new(StorageUnavailable(Box::new(e))).context(what)
    } else {
        anyhow::Error::new(e).context(what)
    }
}

/// Whether `e` says the database cannot be reached (rather than that a
/// statement failed): no connection within the acquire timeout, a broken
/// or closed one, or a statement the server cut off because it is going
/// away or not taking connections (PostgreSQL's class `57P`: a fast
/// shutdown or restart, `pg_terminate_backend`, a crash; and class `08`,
/// connection exceptions). The soak found the `57P01` of a restart
/// answered `500`.
fn unreachable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.as_ref() {
                Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
                Sqlx::Database(db) => db.code().is_some_and(|code| server_going_away(&code)),
                _ => false,
            }
        }
        _ => false,
    }
}

/// SQLSTATEs of a server that ended the connection or takes none now.
fn server_going_away(code: &str) -> bool {
    code.starts_with("57P") || code.starts_with("08")
}

/// Client-supplied text fit for a column: no NUL (PostgreSQL refuses it), at
/// most `max` characters.
fn clean(value: &str, max: usize) -> String {
    value.chars().filter(|c| *c != '\0').take(max).collect()
}

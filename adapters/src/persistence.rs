//! Persistence: SeaORM repositories for PostgreSQL and SQLite (one code path),
//! and the revocation bus (PostgreSQL `LISTEN/NOTIFY`, or in-process).
//!
//! The rule that a replayed refresh token revokes its family lives in
//! `domain::decide_refresh`; [`SeaSessionStore`]'s `refresh` applies it in one
//! transaction with the family locked (see `session_store.rs`).

mod audit_log;
mod database;
mod entities;
mod local_revocation_bus;
mod login_throttle;
mod pg_revocation_bus;
mod session_store;
mod user_repository;

pub use audit_log::{AuditFilter, SeaAuditLog, StoredAuditEvent};
pub use database::Database;
pub use local_revocation_bus::LocalRevocationBus;
pub use login_throttle::SeaLoginThrottle;
pub use pg_revocation_bus::{PgRevocationBus, REVOCATION_CHANNEL};
pub use session_store::SeaSessionStore;
pub use user_repository::SeaUserRepository;

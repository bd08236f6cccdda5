//! The database schema of the auth service, as sea-orm-migration migrations.
//!
//! Every instant is a `BIGINT` of Unix milliseconds (`domain::Timestamp`):
//! exact and identical on PostgreSQL and SQLite. Token hashes are 32-byte blobs.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_users;
mod m20261126_000002_create_sessions;
mod m20261126_000003_create_refresh_tokens;
mod m20261126_000004_create_login_failures;
mod m20261126_000005_create_audit_events;
mod m20261202_000006_seal_index;
mod m20261203_000007_create_signing_keys;
mod m20261204_000008_create_revoked_sessions;
mod m20261204_000009_create_mfa;
mod m20261207_000010_enrolment_wrong_codes;
mod m20261207_000011_create_passkeys;
mod m20261207_000012_dpop;
mod m20261207_000013_email;

/// Applies the migrations in order (`Migrator::up(db, None)`).
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_users::Migration),
            Box::new(m20261126_000002_create_sessions::Migration),
            Box::new(m20261126_000003_create_refresh_tokens::Migration),
            Box::new(m20261126_000004_create_login_failures::Migration),
            Box::new(m20261126_000005_create_audit_events::Migration),
            Box::new(m20261202_000006_seal_index::Migration),
            Box::new(m20261203_000007_create_signing_keys::Migration),
            Box::new(m20261204_000008_create_revoked_sessions::Migration),
            Box::new(m20261204_000009_create_mfa::Migration),
            Box::new(m20261207_000010_enrolment_wrong_codes::Migration),
            Box::new(m20261207_000011_create_passkeys::Migration),
            Box::new(m20261207_000012_dpop::Migration),
            Box::new(m20261207_000013_email::Migration),
        ]
    }
}

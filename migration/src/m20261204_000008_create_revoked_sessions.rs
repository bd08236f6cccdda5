//! Revocations that outlive their session rows: when an account is deleted
//! its sessions go with it, but every process must still learn, and a
//! process that starts later must still load, that their access tokens are
//! void until they expire. One row per session id, pruned once no token of
//! it can be valid (the revocation horizon).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, uuid};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevokedSessions::Table)
                    .if_not_exists()
                    .col(uuid(RevokedSessions::SessionId).primary_key())
                    .col(big_integer(RevokedSessions::RevokedAt))
                    .to_owned(),
            )
            .await?;
        // revoked_since and prune scan by revocation time.
        manager
            .create_index(
                Index::create()
                    .name("idx_revoked_sessions_revoked_at")
                    .table(RevokedSessions::Table)
                    .col(RevokedSessions::RevokedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(RevokedSessions::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

/// Table and columns.
#[derive(DeriveIden, Clone, Copy)]
pub enum RevokedSessions {
    Table,
    SessionId,
    RevokedAt,
}

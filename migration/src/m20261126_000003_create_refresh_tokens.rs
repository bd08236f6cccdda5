//! Refresh tokens: only their SHA-256 hash is stored.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, blob, blob_null, uuid};

use crate::m20261126_000002_create_sessions::Sessions;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .if_not_exists()
                    // The hash is the token's identity: a refresh looks it up by primary key.
                    .col(blob(RefreshTokens::Hash).primary_key())
                    .col(uuid(RefreshTokens::SessionId))
                    .col(blob_null(RefreshTokens::ParentHash))
                    .col(big_integer(RefreshTokens::IssuedAt))
                    .col(big_integer(RefreshTokens::ExpiresAt))
                    .col(big_integer_null(RefreshTokens::RotatedAt))
                    // The successor sealed under the presented token (grace replays).
                    .col(blob_null(RefreshTokens::SuccessorSeal))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_tokens_session_id")
                            .from(RefreshTokens::Table, RefreshTokens::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A refresh reads the family's unrotated token: (session_id, rotated_at IS NULL).
        manager
            .create_index(
                Index::create()
                    .name("idx_refresh_tokens_session_id")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .col(RefreshTokens::RotatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(RefreshTokens::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

/// Table and columns.
#[derive(DeriveIden)]
pub enum RefreshTokens {
    Table,
    Hash,
    SessionId,
    ParentHash,
    IssuedAt,
    ExpiresAt,
    RotatedAt,
    SuccessorSeal,
}

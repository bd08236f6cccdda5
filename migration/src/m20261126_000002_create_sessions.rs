//! Sessions (token families): one per login.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, string_len_null, text_null, uuid};

use crate::m20261126_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(uuid(Sessions::Id).primary_key())
                    .col(uuid(Sessions::UserId))
                    .col(big_integer(Sessions::CreatedAt))
                    .col(big_integer(Sessions::LastUsedAt))
                    .col(big_integer(Sessions::ExpiresAt))
                    .col(big_integer_null(Sessions::RevokedAt))
                    .col(string_len_null(Sessions::RevokeReason, 32))
                    .col(text_null(Sessions::UserAgent))
                    .col(string_len_null(Sessions::Ip, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sessions_user_id")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // list_live and revoke_all_for_user look sessions up by user.
        index(manager, "idx_sessions_user_id", Sessions::UserId).await?;
        // revoked_since and prune scan by revocation time.
        index(manager, "idx_sessions_revoked_at", Sessions::RevokedAt).await?;
        // prune also scans by absolute expiry.
        index(manager, "idx_sessions_expires_at", Sessions::ExpiresAt).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).if_exists().to_owned())
            .await
    }
}

async fn index(manager: &SchemaManager<'_>, name: &str, col: Sessions) -> Result<(), DbErr> {
    manager
        .create_index(
            Index::create()
                .name(name)
                .table(Sessions::Table)
                .col(col)
                .if_not_exists()
                .to_owned(),
        )
        .await
}

/// Table and columns.
#[derive(DeriveIden, Clone, Copy)]
pub enum Sessions {
    Table,
    Id,
    UserId,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
    RevokeReason,
    UserAgent,
    Ip,
}

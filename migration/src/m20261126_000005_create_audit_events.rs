//! The security audit trail: logins, logouts, revocations and reuse
//! detections, kept for `AUDIT_RETENTION`.
//!
//! No foreign keys on purpose: the trail must outlive pruned sessions and
//! deleted users. The id is an auto-increment `BIGINT` (`bigserial` on
//! PostgreSQL, `INTEGER PRIMARY KEY AUTOINCREMENT` on SQLite): rows are only
//! appended, and the id orders the events of one millisecond the way they
//! were written.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_pk_auto, integer, text, text_null, uuid_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditEvents::Id))
                    .col(big_integer(AuditEvents::At))
                    .col(text(AuditEvents::Kind))
                    .col(uuid_null(AuditEvents::UserId))
                    .col(text_null(AuditEvents::Username))
                    .col(uuid_null(AuditEvents::SessionId))
                    .col(integer(AuditEvents::SessionsRevoked))
                    .col(text_null(AuditEvents::ClientIp))
                    .col(text_null(AuditEvents::UserAgent))
                    .to_owned(),
            )
            .await?;
        // Pruning deletes the oldest; unfiltered listings read newest first.
        index(manager, "idx_audit_events_at", &[AuditEvents::At]).await?;
        // Investigations by user or by session (token family), newest first.
        index(
            manager,
            "idx_audit_events_user_id",
            &[AuditEvents::UserId, AuditEvents::At],
        )
        .await?;
        index(
            manager,
            "idx_audit_events_session_id",
            &[AuditEvents::SessionId, AuditEvents::At],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(AuditEvents::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

async fn index(manager: &SchemaManager<'_>, name: &str, cols: &[AuditEvents]) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(AuditEvents::Table).if_not_exists();
    for col in cols {
        index.col(*col);
    }
    manager.create_index(index.to_owned()).await
}

/// Table and columns.
#[derive(DeriveIden, Clone, Copy)]
pub enum AuditEvents {
    Table,
    Id,
    At,
    Kind,
    UserId,
    Username,
    SessionId,
    SessionsRevoked,
    ClientIp,
    UserAgent,
}

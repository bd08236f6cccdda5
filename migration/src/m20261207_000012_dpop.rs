//! Sender-constrained sessions (contract v3, "DPoP"): the client key a
//! family is bound to, and the proof ids (`jti`) already used at a login or
//! a refresh, which every process must refuse again within the proofs'
//! window (stored as SHA-256 hashes, pruned when their window has passed),
//! and the reason of an audit event (why a proof was refused).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, binary, string_len_null};

use crate::m20261126_000002_create_sessions::Sessions;
use crate::m20261126_000005_create_audit_events::AuditEvents;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DpopJtis::Table)
                    .if_not_exists()
                    .col(binary(DpopJtis::JtiHash).primary_key())
                    .col(big_integer(DpopJtis::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_dpop_jtis_expires_at")
                    .table(DpopJtis::Table)
                    .col(DpopJtis::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .add_column(string_len_null(AuditReason::Reason, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(string_len_null(SessionsJkt::Jkt, 64))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(SessionsJkt::Jkt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .drop_column(AuditReason::Reason)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(DpopJtis::Table).if_exists().to_owned())
            .await
    }
}

/// A proof id used at a login or a refresh.
#[derive(DeriveIden, Clone, Copy)]
pub enum DpopJtis {
    Table,
    /// SHA-256 over the key's thumbprint and the `jti`.
    JtiHash,
    /// When the proof's window has passed, Unix ms.
    ExpiresAt,
}

/// The thumbprint of a bound family's key.
#[derive(DeriveIden)]
enum SessionsJkt {
    Jkt,
}

/// Why something was refused (a DPoP proof's failed check).
#[derive(DeriveIden)]
enum AuditReason {
    Reason,
}

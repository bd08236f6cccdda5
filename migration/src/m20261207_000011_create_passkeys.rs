//! Passkeys (contract v3, "Passkeys"): each user's opaque WebAuthn user
//! handle, the registered credentials, the ceremonies between their two
//! steps (so that options from one process can be finished at another),
//! and the full `amr` of a session (a passkey's is neither `pwd` nor
//! `pwd otp`).
//!
//! Ceremony ids are stored only as SHA-256 hashes. Everything of a user
//! goes with the user (ON DELETE CASCADE).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, binary, boolean, string_len, string_len_null, uuid, uuid_null,
};

use crate::m20261126_000001_create_users::Users;
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
                    .table(PasskeyUsers::Table)
                    .if_not_exists()
                    .col(uuid(PasskeyUsers::UserId).primary_key())
                    .col(binary(PasskeyUsers::Handle).unique_key())
                    .foreign_key(&mut owned_by(
                        PasskeyUsers::Table,
                        PasskeyUsers::UserId,
                        "fk_passkey_users_user_id",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .if_not_exists()
                    .col(uuid(Passkeys::Id).primary_key())
                    .col(uuid(Passkeys::UserId))
                    .col(binary(Passkeys::CredentialId).unique_key())
                    .col(binary(Passkeys::PublicKey))
                    .col(big_integer(Passkeys::Counter))
                    .col(boolean(Passkeys::BackupEligible))
                    .col(boolean(Passkeys::BackupState))
                    .col(string_len(Passkeys::Name, 256))
                    .col(big_integer(Passkeys::CreatedAt))
                    .col(big_integer_null(Passkeys::LastUsedAt))
                    .foreign_key(&mut owned_by(
                        Passkeys::Table,
                        Passkeys::UserId,
                        "fk_passkeys_user_id",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_passkeys_user_id")
                    .table(Passkeys::Table)
                    .col(Passkeys::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PasskeyCeremonies::Table)
                    .if_not_exists()
                    .col(binary(PasskeyCeremonies::IdHash).primary_key())
                    .col(string_len(PasskeyCeremonies::Kind, 16))
                    .col(uuid_null(PasskeyCeremonies::UserId))
                    .col(binary(PasskeyCeremonies::State))
                    .col(big_integer(PasskeyCeremonies::ExpiresAt))
                    .foreign_key(&mut owned_by(
                        PasskeyCeremonies::Table,
                        PasskeyCeremonies::UserId,
                        "fk_passkey_ceremonies_user_id",
                    ))
                    .to_owned(),
            )
            .await?;
        // Pruning deletes the expired ones.
        manager
            .create_index(
                Index::create()
                    .name("idx_passkey_ceremonies_expires_at")
                    .table(PasskeyCeremonies::Table)
                    .col(PasskeyCeremonies::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .add_column(string_len_null(AuditMethod::Method, 16))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(string_len_null(SessionsAmr::Amr, 32))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(SessionsAmr::Amr)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .drop_column(AuditMethod::Method)
                    .to_owned(),
            )
            .await?;
        for table in [
            PasskeyCeremonies::Table.into_iden(),
            Passkeys::Table.into_iden(),
            PasskeyUsers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// A foreign key from `table.column` to the user, deleted with the user
/// (the email migration's tables use it too).
pub(crate) fn owned_by<T: IntoIden + Copy + 'static>(
    table: T,
    column: T,
    name: &str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

/// A user's WebAuthn user handle (`user.id`): random, made at the first
/// registration.
#[derive(DeriveIden, Clone, Copy)]
pub enum PasskeyUsers {
    Table,
    UserId,
    Handle,
}

/// A registered passkey.
#[derive(DeriveIden, Clone, Copy)]
pub enum Passkeys {
    Table,
    Id,
    UserId,
    /// The WebAuthn credential id, unique over every user.
    CredentialId,
    /// The relying-party library's encoding of the public key and what
    /// registration fixed about it.
    PublicKey,
    /// The signature counter of the last use.
    Counter,
    BackupEligible,
    BackupState,
    Name,
    CreatedAt,
    LastUsedAt,
}

/// A ceremony between its options and its finish: single use, 5 minutes.
#[derive(DeriveIden, Clone, Copy)]
pub enum PasskeyCeremonies {
    Table,
    IdHash,
    /// `registration` or `login`.
    Kind,
    /// The user registering (none for a login).
    UserId,
    /// The relying-party library's encoding of the ceremony's server state.
    State,
    ExpiresAt,
}

/// The `amr` of a session, space-separated (`hwk mfa`); null for the
/// sessions before it, whose `mfa` column says which of the two they are.
#[derive(DeriveIden)]
enum SessionsAmr {
    Amr,
}

/// How a login event's user authenticated: `password`, `totp`, `passkey`.
#[derive(DeriveIden)]
enum AuditMethod {
    Method,
}

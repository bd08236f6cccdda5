//! Two-factor login (contract: "Two-factor login"): a user's TOTP secret,
//! their recovery codes, the `mfaToken`s of logins waiting for a code, and
//! whether a session began with two factors.
//!
//! The secret is stored sealed under a key derived from the server secret
//! (never in the database); recovery codes and `mfaToken`s only as SHA-256
//! hashes. Everything of a user goes with the user (ON DELETE CASCADE).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, binary, boolean, integer, string_len_null, text_null, uuid,
};

use crate::m20261126_000001_create_users::Users;
use crate::m20261126_000002_create_sessions::Sessions;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TotpSecrets::Table)
                    .if_not_exists()
                    .col(uuid(TotpSecrets::UserId).primary_key())
                    .col(binary(TotpSecrets::SealedSecret))
                    .col(big_integer(TotpSecrets::CreatedAt))
                    .col(big_integer_null(TotpSecrets::ConfirmedAt))
                    .col(big_integer_null(TotpSecrets::LastStep))
                    .foreign_key(&mut owned_by(
                        TotpSecrets::Table,
                        TotpSecrets::UserId,
                        "fk_totp_secrets_user_id",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .if_not_exists()
                    .col(uuid(RecoveryCodes::UserId))
                    .col(binary(RecoveryCodes::CodeHash))
                    .col(big_integer_null(RecoveryCodes::UsedAt))
                    .primary_key(
                        Index::create()
                            .col(RecoveryCodes::UserId)
                            .col(RecoveryCodes::CodeHash),
                    )
                    .foreign_key(&mut owned_by(
                        RecoveryCodes::Table,
                        RecoveryCodes::UserId,
                        "fk_recovery_codes_user_id",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MfaTokens::Table)
                    .if_not_exists()
                    .col(binary(MfaTokens::TokenHash).primary_key())
                    .col(uuid(MfaTokens::UserId))
                    .col(string_len_null(MfaTokens::ClientIp, 64))
                    .col(text_null(MfaTokens::UserAgent))
                    .col(big_integer(MfaTokens::ExpiresAt))
                    .col(integer(MfaTokens::WrongCodes))
                    .foreign_key(&mut owned_by(
                        MfaTokens::Table,
                        MfaTokens::UserId,
                        "fk_mfa_tokens_user_id",
                    ))
                    .to_owned(),
            )
            .await?;
        // Pruning deletes the expired ones.
        manager
            .create_index(
                Index::create()
                    .name("idx_mfa_tokens_expires_at")
                    .table(MfaTokens::Table)
                    .col(MfaTokens::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(boolean(SessionsMfa::Mfa).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(SessionsMfa::Mfa)
                    .to_owned(),
            )
            .await?;
        for table in [
            MfaTokens::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            TotpSecrets::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

fn owned_by<T: IntoIden + Copy + 'static>(
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

/// A user's TOTP secret: pending until confirmed.
#[derive(DeriveIden, Clone, Copy)]
pub enum TotpSecrets {
    Table,
    UserId,
    SealedSecret,
    CreatedAt,
    ConfirmedAt,
    LastStep,
}

/// A user's recovery codes, hashed; each works once.
#[derive(DeriveIden, Clone, Copy)]
pub enum RecoveryCodes {
    Table,
    UserId,
    CodeHash,
    UsedAt,
}

/// Logins waiting for their second factor.
#[derive(DeriveIden, Clone, Copy)]
pub enum MfaTokens {
    Table,
    TokenHash,
    UserId,
    ClientIp,
    UserAgent,
    ExpiresAt,
    WrongCodes,
}

/// The column added to `sessions`.
#[derive(DeriveIden, Clone, Copy)]
enum SessionsMfa {
    Mfa,
}

//! Email (contract v3, "Email"): each account's verified address, the
//! tokens sent by mail, and the outbox of mails not yet delivered.
//!
//! Mail tokens are stored only as SHA-256 hashes, an outbox mail only
//! sealed (its bodies hold a token). Addresses and tokens go with their
//! user (ON DELETE CASCADE); the outbox does not point at users.
//!
//! The lengths below are those of `domain::email` at the time of writing
//! (254 characters an address); a migration is history and does not follow
//! later changes of the domain.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, binary, integer, string_len, string_len_null, uuid,
};

use crate::m20261207_000011_create_passkeys::owned_by;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EmailAddresses::Table)
                    .if_not_exists()
                    .col(uuid(EmailAddresses::UserId).primary_key())
                    .col(string_len(EmailAddresses::Address, 254))
                    .col(string_len(EmailAddresses::AddressCanonical, 254))
                    .col(big_integer(EmailAddresses::VerifiedAt))
                    .foreign_key(&mut owned_by(
                        EmailAddresses::Table,
                        EmailAddresses::UserId,
                        "fk_email_addresses_user_id",
                    ))
                    .to_owned(),
            )
            .await?;
        // A verified address belongs to one account: this index decides,
        // also between two verifications at once.
        manager
            .create_index(
                Index::create()
                    .name("idx_email_addresses_address_canonical")
                    .table(EmailAddresses::Table)
                    .col(EmailAddresses::AddressCanonical)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailTokens::Table)
                    .if_not_exists()
                    .col(binary(MailTokens::TokenHash).primary_key())
                    .col(uuid(MailTokens::UserId))
                    .col(string_len(MailTokens::Purpose, 16))
                    .col(string_len(MailTokens::Address, 254))
                    .col(string_len_null(MailTokens::PasswordStamp, 128))
                    .col(big_integer(MailTokens::IssuedAt))
                    .col(big_integer(MailTokens::ExpiresAt))
                    .col(big_integer_null(MailTokens::UsedAt))
                    .foreign_key(&mut owned_by(
                        MailTokens::Table,
                        MailTokens::UserId,
                        "fk_mail_tokens_user_id",
                    ))
                    .to_owned(),
            )
            .await?;
        // The newest token of a user and purpose, and the reset mails of
        // the last hour.
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_tokens_user_purpose_issued_at")
                    .table(MailTokens::Table)
                    .col(MailTokens::UserId)
                    .col(MailTokens::Purpose)
                    .col(MailTokens::IssuedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // Pruning deletes the expired ones.
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_tokens_expires_at")
                    .table(MailTokens::Table)
                    .col(MailTokens::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MailOutbox::Table)
                    .if_not_exists()
                    .col(string_len(MailOutbox::Id, 128).primary_key())
                    .col(binary(MailOutbox::Sealed))
                    .col(big_integer(MailOutbox::QueuedAt))
                    .col(big_integer(MailOutbox::NextAttemptAt))
                    .col(integer(MailOutbox::Attempts))
                    .col(big_integer_null(MailOutbox::ClaimedUntil))
                    .col(big_integer_null(MailOutbox::GivenUpAt))
                    .col(string_len_null(MailOutbox::LastError, 500))
                    .to_owned(),
            )
            .await?;
        // The senders' claim: the due mails, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_outbox_next_attempt_at")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::NextAttemptAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MailOutbox::Table.into_iden(),
            MailTokens::Table.into_iden(),
            EmailAddresses::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// An account's verified address (one at most).
#[derive(DeriveIden, Clone, Copy)]
pub enum EmailAddresses {
    Table,
    UserId,
    /// As the user gave it.
    Address,
    /// Lower-cased (unique: one account per verified address).
    AddressCanonical,
    /// Unix ms.
    VerifiedAt,
}

/// A token sent by mail: single use, bound to the address it went to.
#[derive(DeriveIden, Clone, Copy)]
pub enum MailTokens {
    Table,
    /// SHA-256 of the token.
    TokenHash,
    UserId,
    /// `verify` or `reset`.
    Purpose,
    /// The address it was sent to, as given.
    Address,
    /// For a reset: a digest of the password hash it was issued under.
    PasswordStamp,
    IssuedAt,
    ExpiresAt,
    UsedAt,
}

/// A mail waiting for delivery, claimed by one sender at a time. No foreign
/// key to `users`: a mail queued for an account deleted since may still go
/// (its token went with the account, so its link does nothing).
#[derive(DeriveIden, Clone, Copy)]
pub enum MailOutbox {
    Table,
    /// The mail's id (its `Message-ID`).
    Id,
    /// The sealed mail; emptied when given up.
    Sealed,
    QueuedAt,
    NextAttemptAt,
    /// Attempts so far (each claim counts one).
    Attempts,
    /// The claiming sender's lease; null when unclaimed.
    ClaimedUntil,
    GivenUpAt,
    /// The last failure (no bodies), for the operator.
    LastError,
}

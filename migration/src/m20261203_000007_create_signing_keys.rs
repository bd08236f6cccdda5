//! The signing-key set, shared by every API and WebSocket process: each
//! key's algorithm, its times (see `domain::signing_keys`), its public key,
//! and its private key sealed under a key that is not in the database.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, binary, string_len, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .if_not_exists()
                    .col(string_len(SigningKeys::Kid, 64).primary_key())
                    .col(string_len(SigningKeys::Alg, 16))
                    .col(big_integer(SigningKeys::CreatedAt))
                    .col(big_integer(SigningKeys::SignsFrom))
                    .col(big_integer_null(SigningKeys::RetiredAt))
                    .col(text(SigningKeys::PublicPem))
                    .col(binary(SigningKeys::SealedPrivate))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(SigningKeys::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

/// Table and columns.
#[derive(DeriveIden)]
pub enum SigningKeys {
    Table,
    Kid,
    Alg,
    CreatedAt,
    SignsFrom,
    RetiredAt,
    PublicPem,
    SealedPrivate,
}

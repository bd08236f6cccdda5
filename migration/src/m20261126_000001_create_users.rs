//! Users: the display username and its case-folded unique form.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, string_len, text, uuid};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(uuid(Users::Id).primary_key())
                    .col(string_len(Users::Username, 64))
                    // The unique index on this column is what makes registration race-free.
                    .col(string_len(Users::UsernameCanonical, 64).unique_key())
                    .col(text(Users::PasswordHash))
                    .col(big_integer(Users::CreatedAt))
                    .col(big_integer(Users::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).if_exists().to_owned())
            .await
    }
}

/// Table and columns.
#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    Username,
    UsernameCanonical,
    PasswordHash,
    CreatedAt,
    UpdatedAt,
}

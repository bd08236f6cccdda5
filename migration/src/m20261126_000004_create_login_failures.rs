//! Failed logins per (username, client): the brute-force throttle, shared by
//! every API process that uses the database.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string_len};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginFailures::Table)
                    .if_not_exists()
                    .col(string_len(LoginFailures::Username, 255))
                    .col(string_len(LoginFailures::Client, 255))
                    .col(big_integer(LoginFailures::WindowStart))
                    .col(integer(LoginFailures::Failures))
                    .primary_key(
                        Index::create()
                            .col(LoginFailures::Username)
                            .col(LoginFailures::Client),
                    )
                    .to_owned(),
            )
            .await?;
        // Pruning deletes the rows whose window closed.
        manager
            .create_index(
                Index::create()
                    .name("idx_login_failures_window_start")
                    .table(LoginFailures::Table)
                    .col(LoginFailures::WindowStart)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(LoginFailures::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

/// Table and columns.
#[derive(DeriveIden)]
pub enum LoginFailures {
    Table,
    Username,
    Client,
    WindowStart,
    Failures,
}

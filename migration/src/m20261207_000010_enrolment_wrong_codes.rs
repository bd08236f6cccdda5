//! Wrong codes at a pending TOTP enrolment's confirmation (security review 2,
//! finding 4): five void the enrolment.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TotpSecrets::Table)
                    .add_column(
                        ColumnDef::new(TotpSecrets::WrongCodes)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TotpSecrets::Table)
                    .drop_column(TotpSecrets::WrongCodes)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum TotpSecrets {
    Table,
    WrongCodes,
}

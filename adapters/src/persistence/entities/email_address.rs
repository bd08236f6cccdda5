//! The `email_addresses` table: each account's verified address.

use sea_orm::entity::prelude::*;

/// A row of `email_addresses`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_addresses")]
pub struct Model {
    /// The account.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// As the user gave it.
    pub address: String,
    /// Lower-cased (unique).
    #[sea_orm(unique)]
    pub address_canonical: String,
    /// Unix ms.
    pub verified_at: i64,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

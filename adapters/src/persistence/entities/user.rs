//! The `users` table.

use sea_orm::entity::prelude::*;

/// A row of `users`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// User id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Username as registered.
    pub username: String,
    /// Case-folded username (unique).
    #[sea_orm(unique)]
    pub username_canonical: String,
    /// PHC / bcrypt string.
    pub password_hash: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

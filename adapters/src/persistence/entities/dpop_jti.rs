//! The `dpop_jtis` table: DPoP proof ids used at logins and refreshes.

use sea_orm::entity::prelude::*;

/// A row of `dpop_jtis`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dpop_jtis")]
pub struct Model {
    /// SHA-256 over the key's thumbprint and the `jti`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub jti_hash: Vec<u8>,
    /// When its window has passed, Unix ms.
    pub expires_at: i64,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

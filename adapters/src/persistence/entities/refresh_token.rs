//! The `refresh_tokens` table.

use sea_orm::entity::prelude::*;

/// A row of `refresh_tokens`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    /// SHA-256 of the token (32 bytes).
    #[sea_orm(primary_key, auto_increment = false)]
    pub hash: Vec<u8>,
    /// Family.
    pub session_id: Uuid,
    /// Hash of the token it replaced.
    pub parent_hash: Option<Vec<u8>>,
    /// Unix ms.
    pub issued_at: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// Unix ms.
    pub rotated_at: Option<i64>,
    /// The successor sealed under this token (32 bytes), set when rotated.
    pub successor_seal: Option<Vec<u8>>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

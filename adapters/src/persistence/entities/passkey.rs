//! The `passkeys` table: registered WebAuthn credentials.

use sea_orm::entity::prelude::*;

/// A row of `passkeys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    /// Its id in the API.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// The WebAuthn credential id (unique).
    pub credential_id: Vec<u8>,
    /// The relying party's encoding of the public key.
    pub public_key: Vec<u8>,
    /// Signature counter of the last use.
    pub counter: i64,
    /// BE.
    pub backup_eligible: bool,
    /// BS of the last use.
    pub backup_state: bool,
    /// Its name.
    pub name: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub last_used_at: Option<i64>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

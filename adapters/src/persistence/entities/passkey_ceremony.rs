//! The `passkey_ceremonies` table: registrations and logins between their
//! options and their finish.

use sea_orm::entity::prelude::*;

/// A row of `passkey_ceremonies`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkey_ceremonies")]
pub struct Model {
    /// SHA-256 of the `registrationId` / `loginId`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: Vec<u8>,
    /// `registration` or `login`.
    pub kind: String,
    /// The user registering; none for a login.
    pub user_id: Option<Uuid>,
    /// The relying party's state of the ceremony.
    pub state: Vec<u8>,
    /// Unix ms.
    pub expires_at: i64,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

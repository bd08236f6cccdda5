//! The `revoked_sessions` table: revocations of sessions whose rows were
//! deleted with their account.

use sea_orm::entity::prelude::*;

/// A row of `revoked_sessions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "revoked_sessions")]
pub struct Model {
    /// The session (token family) id, the `sid` of its access tokens.
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    /// When it was revoked, Unix ms.
    pub revoked_at: i64,
}

/// No relations: the session row is gone.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! The `sessions` table (token families).

use sea_orm::entity::prelude::*;

/// A row of `sessions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// Family id (`sid`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub last_used_at: i64,
    /// Absolute end, Unix ms.
    pub expires_at: i64,
    /// Unix ms.
    pub revoked_at: Option<i64>,
    /// `domain::RevokeReason::as_str`.
    pub revoke_reason: Option<String>,
    /// `User-Agent` at login.
    pub user_agent: Option<String>,
    /// Client address at login.
    pub ip: Option<String>,
    /// The session began with a second factor.
    pub mfa: bool,
    /// Its `amr`, space-separated; null for sessions older than passkeys
    /// (`mfa` says which of `pwd` and `pwd otp` they are).
    pub amr: Option<String>,
    /// The RFC 7638 thumbprint of the client key the family is bound to
    /// (DPoP); null for an unbound family.
    pub jkt: Option<String>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

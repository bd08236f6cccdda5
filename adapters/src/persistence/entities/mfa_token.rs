//! The `mfa_tokens` table: logins waiting for their second factor.

use sea_orm::entity::prelude::*;

/// A row of `mfa_tokens`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mfa_tokens")]
pub struct Model {
    /// SHA-256 of the `mfaToken`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: Vec<u8>,
    /// Whose password was right.
    pub user_id: Uuid,
    /// The client address it was given to.
    pub client_ip: Option<String>,
    /// The user agent it was given to.
    pub user_agent: Option<String>,
    /// Its end, Unix ms.
    pub expires_at: i64,
    /// Wrong codes so far.
    pub wrong_codes: i32,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

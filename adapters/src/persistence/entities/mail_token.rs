//! The `mail_tokens` table: the tokens sent by mail (verify, reset).

use sea_orm::entity::prelude::*;

/// A row of `mail_tokens`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_tokens")]
pub struct Model {
    /// SHA-256 of the token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: Vec<u8>,
    /// Whose.
    pub user_id: Uuid,
    /// `verify` or `reset` (`MailPurpose::as_str`).
    pub purpose: String,
    /// The address it was sent to, as given.
    pub address: String,
    /// For a reset: a digest of the password hash it was issued under.
    pub password_stamp: Option<String>,
    /// Unix ms.
    pub issued_at: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// Unix ms; none while unused.
    pub used_at: Option<i64>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

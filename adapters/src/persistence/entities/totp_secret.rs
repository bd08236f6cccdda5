//! The `totp_secrets` table: one TOTP secret per user, sealed.

use sea_orm::entity::prelude::*;

/// A row of `totp_secrets`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_secrets")]
pub struct Model {
    /// The user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// The secret, sealed by the application before it is stored.
    pub sealed_secret: Vec<u8>,
    /// Enrolment began, Unix ms.
    pub created_at: i64,
    /// Confirmed at, Unix ms; `NULL` while pending.
    pub confirmed_at: Option<i64>,
    /// The TOTP step of the last accepted code.
    pub last_step: Option<i64>,
    /// Wrong codes at the pending enrolment's confirmation.
    pub wrong_codes: i32,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

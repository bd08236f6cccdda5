//! The `mail_outbox` table: mails waiting for delivery.

use sea_orm::entity::prelude::*;

/// A row of `mail_outbox`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    /// The mail's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The sealed mail; empty once given up.
    pub sealed: Vec<u8>,
    /// Unix ms.
    pub queued_at: i64,
    /// Unix ms.
    pub next_attempt_at: i64,
    /// Attempts so far.
    pub attempts: i32,
    /// The claiming sender's lease, Unix ms; none when unclaimed.
    pub claimed_until: Option<i64>,
    /// Unix ms.
    pub given_up_at: Option<i64>,
    /// The last failure, for the operator.
    pub last_error: Option<String>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! The `audit_events` table (the security audit trail).

use sea_orm::entity::prelude::*;

/// A row of `audit_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// Auto-increment: the order the events were written in.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unix ms.
    pub at: i64,
    /// `SecurityEventKind::as_str`.
    pub kind: String,
    /// The user, when known (no foreign key: the trail outlives users).
    pub user_id: Option<Uuid>,
    /// The username as typed, case-folded (login events).
    pub username: Option<String>,
    /// The session (token family), when there is one (no foreign key either).
    pub session_id: Option<Uuid>,
    /// Sessions the event revoked.
    pub sessions_revoked: i32,
    /// On login events: `password`, `totp` or `passkey`.
    pub method: Option<String>,
    /// Why something was refused (a DPoP proof's failed check).
    pub reason: Option<String>,
    /// Client address.
    pub client_ip: Option<String>,
    /// `User-Agent`, cut at 512 characters.
    pub user_agent: Option<String>,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

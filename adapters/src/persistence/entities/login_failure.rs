//! The `login_failures` table (the login throttle's counters).

use sea_orm::entity::prelude::*;

/// A row of `login_failures`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_failures")]
pub struct Model {
    /// Case-folded username as typed.
    #[sea_orm(primary_key, auto_increment = false)]
    pub username: String,
    /// Client address.
    #[sea_orm(primary_key, auto_increment = false)]
    pub client: String,
    /// First failure of the current window, Unix ms.
    pub window_start: i64,
    /// Failures in the current window.
    pub failures: i32,
}

/// No relations are navigated through the ORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

//! The login throttle on SeaORM: counters shared by every process that uses the database.

use std::time::Duration;

use anyhow::Context;
use application::ports::{LoginThrottle, ThrottleKey, ThrottlePolicy};
use async_trait::async_trait;
use domain::{Admission, ThrottleWindow, Timestamp, admit};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use sha2::{Digest, Sha256};

use super::entities::login_failure;
use super::{Database, StoreContext};

/// [`LoginThrottle`] on PostgreSQL or SQLite: fixed windows per (username, client).
#[derive(Debug, Clone)]
pub struct SeaLoginThrottle {
    db: Database,
    policy: ThrottlePolicy,
}

impl SeaLoginThrottle {
    /// Counters stored in `db`, judged by `policy`.
    pub fn new(db: Database, policy: ThrottlePolicy) -> Self {
        Self { db, policy }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.policy.window.as_millis()).unwrap_or(i64::MAX)
    }
}

#[async_trait]
impl LoginThrottle for SeaLoginThrottle {
    #[tracing::instrument(
        name = "db.login_throttle.take_slot",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn take_slot(
        &self,
        key: &ThrottleKey,
        now: Timestamp,
    ) -> anyhow::Result<Option<Duration>> {
        let (username, client) = row_key(key);
        // One transaction that holds the key's row: on SQLite the write lock
        // (BEGIN IMMEDIATE), on PostgreSQL the row lock (the row is created
        // first if missing, so that there is a row to lock). Every taker of
        // the key, in any process, waits for the one before it.
        let tx = self
            .db
            .begin_write()
            .await
            .store_context("starting the throttle transaction")?;
        // A success's `clear` may delete the row between the insert and the
        // lock (PostgreSQL, READ COMMITTED: the lock then finds no row);
        // inserting again in the same transaction sees the deletion.
        let mut row = None;
        for _ in 0..5 {
            login_failure::Entity::insert(login_failure::ActiveModel {
                username: Set(username.clone()),
                client: Set(client.clone()),
                window_start: Set(now.unix_millis()),
                failures: Set(0),
            })
            .on_conflict_do_nothing()
            .exec_without_returning(tx.txn())
            .await
            .store_context("creating the throttle row")?;
            row = login_failure::Entity::find_by_id((username.clone(), client.clone()))
                .lock_exclusive()
                .one(tx.txn())
                .await
                .store_context("locking the throttle row")?;
            if row.is_some() {
                break;
            }
        }
        let row = row.context("the throttle row vanished under its lock five times")?;
        let current = ThrottleWindow {
            start: Timestamp::from_unix_millis(row.window_start),
            attempts: u32::try_from(row.failures).unwrap_or(0),
        };
        let policy = self.policy.for_scope(key.scope());
        let refused = match admit(Some(current), now, &policy) {
            Admission::Admit { window } => {
                login_failure::Entity::update_many()
                    .col_expr(
                        login_failure::Column::WindowStart,
                        Expr::value(window.start.unix_millis()),
                    )
                    .col_expr(
                        login_failure::Column::Failures,
                        Expr::value(i32::try_from(window.attempts).unwrap_or(i32::MAX)),
                    )
                    .filter(login_failure::Column::Username.eq(username))
                    .filter(login_failure::Column::Client.eq(client))
                    .exec(tx.txn())
                    .await
                    .store_context("taking a throttle slot")?;
                None
            }
            Admission::Refuse { retry_after } => Some(retry_after),
        };
        tx.commit()
            .await
            .store_context("committing the throttle slot")?;
        Ok(refused)
    }

    #[tracing::instrument(
        name = "db.login_throttle.release",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn release(&self, key: &ThrottleKey) -> anyhow::Result<()> {
        let _turn = self.db.write_turn().await;
        let (username, client) = row_key(key);
        login_failure::Entity::update_many()
            .col_expr(
                login_failure::Column::Failures,
                Expr::col(login_failure::Column::Failures).sub(1),
            )
            .filter(login_failure::Column::Username.eq(username))
            .filter(login_failure::Column::Client.eq(client))
            .filter(login_failure::Column::Failures.gt(0))
            .exec(self.db.connection())
            .await
            .store_context("giving back a throttle slot")?;
        Ok(())
    }

    #[tracing::instrument(
        name = "db.login_throttle.clear",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn clear(&self, key: &ThrottleKey) -> anyhow::Result<()> {
        let _turn = self.db.write_turn().await;
        login_failure::Entity::delete_by_id(row_key(key))
            .exec(self.db.connection())
            .await
            .store_context("clearing login failures")?;
        Ok(())
    }

    #[tracing::instrument(
        name = "db.login_throttle.clear_user",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn clear_user(&self, username: &str) -> anyhow::Result<()> {
        let _turn = self.db.write_turn().await;
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::Username.eq(column_value(username)))
            .exec(self.db.connection())
            .await
            .store_context("clearing a user's login failures")?;
        Ok(())
    }

    #[tracing::instrument(
        name = "db.login_throttle.prune",
        skip(self),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn prune(&self, now: Timestamp) -> anyhow::Result<u64> {
        let _turn = self.db.write_turn().await;
        let res = login_failure::Entity::delete_many()
            .filter(
                login_failure::Column::WindowStart
                    .lte(now.unix_millis().saturating_sub(self.window_ms())),
            )
            .exec(self.db.connection())
            .await
            .store_context("pruning login failures")?;
        Ok(res.rows_affected)
    }
}

/// The stored form of a key. The username is whatever a client typed (any
/// length, any characters, NUL included, which PostgreSQL text refuses), so
/// anything but a short printable string is stored as its SHA-256 instead.
fn row_key(key: &ThrottleKey) -> (String, String) {
    (column_value(&key.username), column_value(&key.client))
}

fn column_value(s: &str) -> String {
    if s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic()) {
        return s.to_owned();
    }
    let digest = Sha256::digest(s.as_bytes());
    let hex = data_encoding::HEXLOWER.encode(&digest);
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::column_value;

    #[test]
    fn odd_keys_are_hashed() {
        assert_eq!(column_value("alice"), "alice");
        assert_eq!(column_value("::ffff:10.0.0.1"), "::ffff:10.0.0.1");
        for odd in [
            "a\0b".to_owned(),
            "x".repeat(129),
            "caf\u{e9}".to_owned(),
            "a b".to_owned(),
        ] {
            let v = column_value(&odd);
            assert!(v.starts_with("sha256:") && v.len() == 71, "{odd:?} -> {v}");
        }
        assert_ne!(
            column_value(&"x".repeat(129)),
            column_value(&"x".repeat(130))
        );
    }
}

//! The login throttle on SeaORM: counters shared by every process that uses the database.

use std::time::Duration;

use anyhow::Context;
use application::ports::{LoginThrottle, ThrottleKey, ThrottlePolicy};
use async_trait::async_trait;
use domain::Timestamp;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use super::Database;
use super::entities::login_failure;

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
        name = "db.login_throttle.blocked_for",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn blocked_for(
        &self,
        key: &ThrottleKey,
        now: Timestamp,
    ) -> anyhow::Result<Option<Duration>> {
        let row = login_failure::Entity::find_by_id(row_key(key))
            .one(self.db.connection())
            .await
            .context("reading login failures")?;
        let Some(row) = row else { return Ok(None) };
        let closes = Timestamp::from_unix_millis(row.window_start.saturating_add(self.window_ms()));
        let full = u32::try_from(row.failures).unwrap_or(0) >= self.policy.max_failures;
        Ok((full && now < closes).then(|| closes.since(now)))
    }

    #[tracing::instrument(
        name = "db.login_throttle.record_failure",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn record_failure(&self, key: &ThrottleKey, now: Timestamp) -> anyhow::Result<()> {
        let now_ms = now.unix_millis();
        // One atomic upsert, so concurrent failures from several processes all count.
        let closed = Expr::col((login_failure::Entity, login_failure::Column::WindowStart))
            .lte(now_ms.saturating_sub(self.window_ms()));
        let failures = Expr::case(closed.clone(), 1)
            .finally(Expr::col((login_failure::Entity, login_failure::Column::Failures)).add(1));
        let window_start = Expr::case(closed, now_ms).finally(Expr::col((
            login_failure::Entity,
            login_failure::Column::WindowStart,
        )));
        let (username, client) = row_key(key);
        let row = login_failure::ActiveModel {
            username: Set(username),
            client: Set(client),
            window_start: Set(now_ms),
            failures: Set(1),
        };
        let _turn = self.db.write_turn().await;
        login_failure::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([
                    login_failure::Column::Username,
                    login_failure::Column::Client,
                ])
                .value(login_failure::Column::Failures, failures)
                .value(login_failure::Column::WindowStart, window_start)
                .to_owned(),
            )
            .exec_without_returning(self.db.connection())
            .await
            .context("counting a login failure")?;
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
            .context("clearing login failures")?;
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
            .context("pruning login failures")?;
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
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
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

//! The security audit trail on SeaORM: the `audit_events` table, appended to
//! by the event recorder, read by `authd audit`, pruned by housekeeping.

use anyhow::Context;
use application::ClientInfo;
use application::ports::{AuditTrail, LoginMethod, SecurityEvent, SecurityEventKind};
use async_trait::async_trait;
use domain::{SessionId, Timestamp, UserId};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::{Value, json};

use super::entities::audit_event;
use super::{Database, StoreContext, clean};

/// Longest `User-Agent` stored, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 512;
/// Longest client address stored, in characters.
const MAX_CLIENT_IP_CHARS: usize = 64;
/// Longest username stored (the event already cuts it there).
const MAX_USERNAME_CHARS: usize = 64;

/// The `audit_events` table on PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub struct SeaAuditLog {
    db: Database,
}

/// Which stored events [`SeaAuditLog::recent`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this user's events.
    pub user: Option<UserId>,
    /// Only events of this session (token family).
    pub session: Option<SessionId>,
    /// Only events of this kind.
    pub kind: Option<SecurityEventKind>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// At most this many (the newest).
    pub limit: u64,
}

impl Default for AuditFilter {
    /// Everything, newest 100.
    fn default() -> Self {
        Self {
            user: None,
            session: None,
            kind: None,
            since: None,
            limit: 100,
        }
    }
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEvent {
    /// Row id: increases in the order the events were written.
    pub id: i64,
    /// The event as stored (user agent cut at [`MAX_USER_AGENT_CHARS`]).
    pub event: SecurityEvent,
}

impl StoredAuditEvent {
    /// The row as one JSON object (what `authd audit` prints, one per line):
    /// `id`, `at` (RFC 3339, UTC, ms), `at_ms`, `kind`, `user_id`, `username`,
    /// `session_id`, `sessions_revoked`, `method` (on login events), `reason`
    /// (why a DPoP proof was refused),
    /// `client_ip`, `user_agent` (absent values are `null`).
    pub fn to_json(&self) -> Value {
        let e = &self.event;
        json!({
            "id": self.id,
            "at": rfc3339_millis(e.at.unix_millis()),
            "at_ms": e.at.unix_millis(),
            "kind": e.kind.as_str(),
            "user_id": e.user.map(|u| u.to_string()),
            "username": e.username,
            "session_id": e.session.map(|s| s.to_string()),
            "sessions_revoked": e.sessions_revoked,
            "method": e.method.map(LoginMethod::as_str),
            "reason": e.reason,
            "client_ip": e.client.ip,
            "user_agent": e.client.user_agent,
        })
    }
}

impl SeaAuditLog {
    /// The trail stored in `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Appends `event` (whatever its kind: choosing what is audited is the
    /// caller's business).
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(
        name = "db.audit_log.append",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client", kind = event.kind.as_str())
    )]
    pub async fn append(&self, event: &SecurityEvent) -> anyhow::Result<()> {
        let row = audit_event::ActiveModel {
            id: NotSet,
            at: Set(event.at.unix_millis()),
            kind: Set(event.kind.as_str().to_owned()),
            user_id: Set(event.user.map(|u| *u.as_uuid())),
            username: Set(event
                .username
                .as_deref()
                .map(|v| clean(v, MAX_USERNAME_CHARS))),
            session_id: Set(event.session.map(|s| *s.as_uuid())),
            sessions_revoked: Set(i32::try_from(event.sessions_revoked).unwrap_or(i32::MAX)),
            method: Set(event.method.map(|m| m.as_str().to_owned())),
            reason: Set(event.reason.as_deref().map(|v| clean(v, 64))),
            client_ip: Set(event
                .client
                .ip
                .as_deref()
                .map(|v| clean(v, MAX_CLIENT_IP_CHARS))),
            user_agent: Set(event
                .client
                .user_agent
                .as_deref()
                .map(|v| clean(v, MAX_USER_AGENT_CHARS))),
        };
        let _turn = self.db.write_turn().await;
        audit_event::Entity::insert(row)
            .exec_without_returning(self.db.connection())
            .await
            .store_context("appending a security event")?;
        Ok(())
    }

    /// Deletes up to `batch` events older than `before`, the oldest first, in
    /// one short transaction; returns how many (the caller loops while it
    /// gets `batch`).
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(
        name = "db.audit_log.prune",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    pub async fn prune(&self, before: Timestamp, batch: u64) -> anyhow::Result<u64> {
        let tx = self.db.write_transaction().await?;
        let ids: Vec<i64> = audit_event::Entity::find()
            .select_only()
            .column(audit_event::Column::Id)
            .filter(audit_event::Column::At.lt(before.unix_millis()))
            .order_by_asc(audit_event::Column::At)
            .order_by_asc(audit_event::Column::Id)
            .limit(batch)
            .into_tuple()
            .all(tx.txn())
            .await
            .store_context("finding old security events")?;
        if ids.is_empty() {
            return Ok(0);
        }
        let deleted = audit_event::Entity::delete_many()
            .filter(audit_event::Column::Id.is_in(ids))
            .exec(tx.txn())
            .await
            .store_context("deleting old security events")?;
        tx.commit().await.store_context("committing the prune")?;
        Ok(deleted.rows_affected)
    }

    /// The newest events matching `filter`, newest first (events of the same
    /// millisecond in reverse order of writing).
    ///
    /// # Errors
    /// Storage failures, or a row of a kind this version does not know.
    #[tracing::instrument(
        name = "db.audit_log.recent",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    pub async fn recent(&self, filter: &AuditFilter) -> anyhow::Result<Vec<StoredAuditEvent>> {
        let mut query = audit_event::Entity::find();
        if let Some(user) = filter.user {
            query = query.filter(audit_event::Column::UserId.eq(*user.as_uuid()));
        }
        if let Some(session) = filter.session {
            query = query.filter(audit_event::Column::SessionId.eq(*session.as_uuid()));
        }
        if let Some(kind) = filter.kind {
            query = query.filter(audit_event::Column::Kind.eq(kind.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_event::Column::At.gte(since.unix_millis()));
        }
        query
            .order_by_desc(audit_event::Column::At)
            .order_by_desc(audit_event::Column::Id)
            .limit(filter.limit)
            .all(self.db.connection())
            .await
            .store_context("reading security events")?
            .into_iter()
            .map(from_row)
            .collect()
    }
}

fn from_row(row: audit_event::Model) -> anyhow::Result<StoredAuditEvent> {
    let kind = SecurityEventKind::parse(&row.kind)
        .with_context(|| format!("unknown kind {:?} of audit event {}", row.kind, row.id))?;
    Ok(StoredAuditEvent {
        id: row.id,
        event: SecurityEvent {
            kind,
            at: Timestamp::from_unix_millis(row.at),
            user: row.user_id.map(UserId::from_uuid),
            username: row.username,
            session: row.session_id.map(SessionId::from_uuid),
            sessions_revoked: u32::try_from(row.sessions_revoked).unwrap_or(0),
            method: row.method.as_deref().and_then(LoginMethod::parse),
            reason: row.reason,
            client: ClientInfo {
                ip: row.client_ip,
                user_agent: row.user_agent,
                key: None,
            },
        },
    })
}

/// `2026-11-26T19:04:05.123Z` for Unix milliseconds (UTC); the far ends
/// chrono cannot represent (beyond ±262,000 years) print as the raw number.
fn rfc3339_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// The port the security-event recorder writes through.
#[async_trait]
impl AuditTrail for SeaAuditLog {
    async fn append(&self, event: &SecurityEvent) -> anyhow::Result<()> {
        Self::append(self, event).await
    }

    async fn prune(&self, before: Timestamp, batch: u64) -> anyhow::Result<u64> {
        Self::prune(self, before, batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339_millis;
    use crate::persistence::clean;

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_800_000_000_123),
            "2027-01-15T08:00:00.123Z"
        );
        assert_eq!(
            rfc3339_millis(1_709_251_199_999),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn client_text_is_cleaned_and_cut() {
        assert_eq!(clean("a\0b", 10), "ab");
        assert_eq!(clean(&"é".repeat(600), 512).chars().count(), 512);
    }
}

//! Sessions and refresh tokens on SeaORM, with atomic rotation.

use anyhow::Context;
use application::ports::{
    RefreshOutcome, RefreshRefusal, SessionStore, SuccessorToken, TokenFamily,
};
use async_trait::async_trait;
use domain::{
    AuthMethods, FamilyState, RefreshToken, RevokeReason, RotationDecision, Session, SessionId,
    Timestamp, TokenHash, TokenPolicy, UserId, decide_refresh,
};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait as _,
};
use uuid::Uuid;

use super::entities::{refresh_token, revoked_session, session};
use super::{Database, StoreContext, clean};

/// [`SessionStore`] on PostgreSQL or SQLite.
///
/// [`SessionStore::refresh`] runs in one transaction that first locks the
/// family's session row (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite the
/// transaction holds the database's write lock from its start), so every
/// refresh of one family is serialised: it re-reads the presented and the
/// current token under the lock, decides with [`decide_refresh`] and applies
/// the decision before the next one looks.
#[derive(Debug, Clone)]
pub struct SeaSessionStore {
    db: Database,
}

impl SeaSessionStore {
    /// Sessions stored in `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl SessionStore for SeaSessionStore {
    #[tracing::instrument(
        name = "db.sessions.create",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client", session = %s.id)
    )]
    async fn create(&self, s: &Session, first: &RefreshToken) -> anyhow::Result<()> {
        let tx = self.db.write_transaction().await?;
        session::Entity::insert(session_row(s))
            .exec_without_returning(tx.txn())
            .await
            .store_context("inserting a session")?;
        refresh_token::Entity::insert(token_row(first))
            .exec_without_returning(tx.txn())
            .await
            .store_context("inserting a refresh token")?;
        tx.commit().await.store_context("committing a new session")
    }

    #[tracing::instrument(
        name = "db.sessions.refresh",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn refresh(
        &self,
        presented: &TokenHash,
        successor: &SuccessorToken,
        now: Timestamp,
        policy: &TokenPolicy,
    ) -> anyhow::Result<RefreshOutcome> {
        let key = presented.as_bytes().to_vec();
        let tx = self
            .db
            .begin_write()
            .await
            .store_context("starting the refresh transaction")?;
        let Some(found) = refresh_token::Entity::find_by_id(key.clone())
            .one(tx.txn())
            .await
            .store_context("finding the token")?
        else {
            return Ok(RefreshOutcome::Refused(RefreshRefusal::Unknown));
        };
        // The lock that serialises every refresh of this family.
        let session_row = session::Entity::find_by_id(found.session_id)
            .lock_exclusive()
            .one(tx.txn())
            .await
            .store_context("locking the session")?
            .context("a refresh token without its session")?;
        // Re-read under the lock: another refresh may have rotated it meanwhile.
        let presented_row = refresh_token::Entity::find_by_id(key.clone())
            .one(tx.txn())
            .await
            .store_context("re-reading the token")?
            .context("the token vanished under the lock")?;
        let current_row = refresh_token::Entity::find()
            .filter(refresh_token::Column::SessionId.eq(session_row.id))
            .filter(refresh_token::Column::RotatedAt.is_null())
            .order_by_desc(refresh_token::Column::IssuedAt)
            .one(tx.txn())
            .await
            .store_context("reading the current token")?;

        let mut family = session_from_row(session_row)?;
        let presented_token = token_from_row(&presented_row)?;
        let current = current_row.as_ref().map(token_from_row).transpose()?;
        let state = FamilyState {
            session: &family,
            presented: &presented_token,
            current: current.as_ref(),
        };
        let decision = decide_refresh(Some(state), now, policy);

        // Apply exactly what `domain::Family::refresh` does.
        let outcome = match decision {
            RotationDecision::Rotate {
                successor_expires_at,
            } => {
                // Only the direct parent of the current token may hold a seal:
                // erase the one the presented token's parent holds.
                erase_family_seals(tx.txn(), family.id).await?;
                let rotated = refresh_token::Entity::update_many()
                    .col_expr(
                        refresh_token::Column::RotatedAt,
                        Expr::value(now.unix_millis()),
                    )
                    .col_expr(
                        refresh_token::Column::SuccessorSeal,
                        Expr::value(successor.seal.to_vec()),
                    )
                    .filter(refresh_token::Column::Hash.eq(key))
                    .filter(refresh_token::Column::RotatedAt.is_null())
                    .exec(tx.txn())
                    .await
                    .store_context("marking the token rotated")?;
                // Cannot happen under the lock; refuse to mint a second successor if it does.
                anyhow::ensure!(
                    rotated.rows_affected == 1,
                    "the presented token was rotated concurrently"
                );
                let minted = RefreshToken::mint(
                    successor.hash,
                    family.id,
                    Some(*presented),
                    now,
                    successor_expires_at,
                );
                refresh_token::Entity::insert(token_row(&minted))
                    .exec_without_returning(tx.txn())
                    .await
                    .store_context("inserting the successor")?;
                session::Entity::update_many()
                    .col_expr(session::Column::LastUsedAt, Expr::value(now.unix_millis()))
                    .filter(session::Column::Id.eq(*family.id.as_uuid()))
                    .exec(tx.txn())
                    .await
                    .store_context("touching the session")?;
                family.last_used_at = now;
                RefreshOutcome::Rotated {
                    session: family,
                    successor: minted,
                }
            }
            RotationDecision::GraceReplay => {
                let current = current.context("a grace replay without a current token")?;
                let seal = presented_row
                    .successor_seal
                    .as_deref()
                    .map(<[u8; 32]>::try_from)
                    .transpose()
                    .context("a successor seal that is not 32 bytes")?;
                RefreshOutcome::GraceReplay {
                    session: family,
                    current,
                    seal,
                }
            }
            RotationDecision::ReuseDetected => {
                erase_family_seals(tx.txn(), family.id).await?;
                revoke_rows(
                    tx.txn(),
                    &[*family.id.as_uuid()],
                    RevokeReason::ReuseDetected,
                    now,
                )
                .await?;
                family.revoke(now, RevokeReason::ReuseDetected);
                RefreshOutcome::ReuseDetected { session: family }
            }
            RotationDecision::Refuse(refusal) => RefreshOutcome::Refused(refusal),
        };
        tx.commit().await.store_context("committing the refresh")?;
        Ok(outcome)
    }

    #[tracing::instrument(
        name = "db.sessions.find_by_token",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn find_by_token(&self, hash: &TokenHash) -> anyhow::Result<Option<Session>> {
        let Some(token) = refresh_token::Entity::find_by_id(hash.as_bytes().to_vec())
            .one(self.db.connection())
            .await
            .store_context("finding a token")?
        else {
            return Ok(None);
        };
        self.find(SessionId::from_uuid(token.session_id)).await
    }

    #[tracing::instrument(
        name = "db.sessions.token_family",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn token_family(&self, hash: &TokenHash) -> anyhow::Result<Option<TokenFamily>> {
        let conn = self.db.connection();
        let Some(presented) = refresh_token::Entity::find_by_id(hash.as_bytes().to_vec())
            .one(conn)
            .await
            .store_context("finding a token")?
        else {
            return Ok(None);
        };
        let Some(session_row) = session::Entity::find_by_id(presented.session_id)
            .one(conn)
            .await
            .store_context("finding the token's session")?
        else {
            return Ok(None);
        };
        let current = refresh_token::Entity::find()
            .filter(refresh_token::Column::SessionId.eq(session_row.id))
            .filter(refresh_token::Column::RotatedAt.is_null())
            .order_by_desc(refresh_token::Column::IssuedAt)
            .one(conn)
            .await
            .store_context("reading the current token")?;
        Ok(Some(TokenFamily {
            session: session_from_row(session_row)?,
            presented: token_from_row(&presented)?,
            current: current.as_ref().map(token_from_row).transpose()?,
        }))
    }

    #[tracing::instrument(
        name = "db.sessions.find",
        skip(self),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn find(&self, id: SessionId) -> anyhow::Result<Option<Session>> {
        session::Entity::find_by_id(*id.as_uuid())
            .one(self.db.connection())
            .await
            .store_context("finding a session")?
            .map(session_from_row)
            .transpose()
    }

    #[tracing::instrument(
        name = "db.sessions.list_live",
        skip(self),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn list_live(&self, user: UserId, now: Timestamp) -> anyhow::Result<Vec<Session>> {
        let now_ms = now.unix_millis();
        let has_live_token = Query::select()
            .expr(Expr::val(1))
            .from(refresh_token::Entity)
            .and_where(
                Expr::col((refresh_token::Entity, refresh_token::Column::SessionId))
                    .equals((session::Entity, session::Column::Id)),
            )
            .and_where(
                Expr::col((refresh_token::Entity, refresh_token::Column::RotatedAt)).is_null(),
            )
            .and_where(
                Expr::col((refresh_token::Entity, refresh_token::Column::ExpiresAt)).gt(now_ms),
            )
            .to_owned();
        session::Entity::find()
            .filter(session::Column::UserId.eq(*user.as_uuid()))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now_ms))
            .filter(Expr::exists(has_live_token))
            .order_by_desc(session::Column::CreatedAt)
            .order_by_desc(session::Column::Id)
            .all(self.db.connection())
            .await
            .store_context("listing live sessions")?
            .into_iter()
            .map(session_from_row)
            .collect()
    }

    #[tracing::instrument(
        name = "db.sessions.revoke",
        skip(self),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let _turn = self.db.write_turn().await;
        let revoked = revoke_rows(self.db.connection(), &[*id.as_uuid()], reason, now).await?;
        Ok(revoked == 1)
    }

    #[tracing::instrument(
        name = "db.sessions.revoke_all_for_user",
        skip(self),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn revoke_all_for_user(
        &self,
        user: UserId,
        except: Option<SessionId>,
        reason: RevokeReason,
        now: Timestamp,
    ) -> anyhow::Result<Vec<SessionId>> {
        let tx = self.db.write_transaction().await?;
        // Lock them so that the ids returned are exactly the ones revoked here.
        let ids: Vec<Uuid> = session::Entity::find()
            .select_only()
            .column(session::Column::Id)
            .filter(session::Column::UserId.eq(*user.as_uuid()))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now.unix_millis()))
            .apply_if(except, |q, keep| {
                q.filter(session::Column::Id.ne(*keep.as_uuid()))
            })
            .order_by_asc(session::Column::Id)
            .lock_exclusive()
            .into_tuple()
            .all(tx.txn())
            .await
            .store_context("finding the user's sessions")?;
        if !ids.is_empty() {
            revoke_rows(tx.txn(), &ids, reason, now).await?;
        }
        tx.commit().await.store_context("committing revocations")?;
        Ok(ids.into_iter().map(SessionId::from_uuid).collect())
    }

    #[tracing::instrument(
        name = "db.sessions.revoked_since",
        skip(self),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn revoked_since(&self, since: Timestamp) -> anyhow::Result<Vec<SessionId>> {
        let mut ids: Vec<Uuid> = session::Entity::find()
            .select_only()
            .column(session::Column::Id)
            .filter(session::Column::RevokedAt.gte(since.unix_millis()))
            .into_tuple()
            .all(self.db.connection())
            .await
            .store_context("listing revoked sessions")?;
        // And the sessions of deleted accounts, whose rows are gone.
        let gone: Vec<Uuid> = revoked_session::Entity::find()
            .select_only()
            .column(revoked_session::Column::SessionId)
            .filter(revoked_session::Column::RevokedAt.gte(since.unix_millis()))
            .into_tuple()
            .all(self.db.connection())
            .await
            .store_context("listing revoked sessions of deleted accounts")?;
        ids.extend(gone);
        Ok(ids.into_iter().map(SessionId::from_uuid).collect())
    }

    #[tracing::instrument(
        name = "db.sessions.prune",
        skip(self),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn prune(&self, ended_before: Timestamp, batch: u64) -> anyhow::Result<u64> {
        let before = ended_before.unix_millis();
        // Revocations of deleted accounts' sessions past the horizon: no
        // token of theirs can be valid any more.
        revoked_session::Entity::delete_many()
            .filter(revoked_session::Column::RevokedAt.lt(before))
            .exec(self.db.connection())
            .await
            .store_context("pruning revocations of deleted accounts")?;
        // One short transaction per batch: the caller loops while it returns `batch`.
        let tx = self.db.write_transaction().await?;
        let ids: Vec<Uuid> = session::Entity::find()
            .select_only()
            .column(session::Column::Id)
            .filter(
                sea_orm::Condition::any()
                    .add(session::Column::RevokedAt.lt(before))
                    .add(session::Column::ExpiresAt.lt(before)),
            )
            .limit(batch)
            .into_tuple()
            .all(tx.txn())
            .await
            .store_context("finding ended sessions")?;
        if ids.is_empty() {
            return Ok(0);
        }
        refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::SessionId.is_in(ids.clone()))
            .exec(tx.txn())
            .await
            .store_context("deleting tokens of ended sessions")?;
        let deleted = session::Entity::delete_many()
            .filter(session::Column::Id.is_in(ids))
            .exec(tx.txn())
            .await
            .store_context("deleting ended sessions")?;
        tx.commit().await.store_context("committing the prune")?;
        Ok(deleted.rows_affected)
    }

    #[tracing::instrument(
        name = "db.sessions.erase_seals",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn erase_seals(&self, rotated_before: Timestamp) -> anyhow::Result<u64> {
        // On the partial index `idx_refresh_tokens_sealed`: only sealed rows are read.
        Ok(refresh_token::Entity::update_many()
            .col_expr(
                refresh_token::Column::SuccessorSeal,
                Expr::value(Option::<Vec<u8>>::None),
            )
            .filter(refresh_token::Column::SuccessorSeal.is_not_null())
            .filter(refresh_token::Column::RotatedAt.lt(rotated_before.unix_millis()))
            .exec(self.db.connection())
            .await
            .store_context("erasing stale grace seals")?
            .rows_affected)
    }
}

/// Erases every grace seal of one family.
async fn erase_family_seals(conn: &impl ConnectionTrait, family: SessionId) -> anyhow::Result<()> {
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::SuccessorSeal,
            Expr::value(Option::<Vec<u8>>::None),
        )
        .filter(refresh_token::Column::SessionId.eq(*family.as_uuid()))
        .filter(refresh_token::Column::SuccessorSeal.is_not_null())
        .exec(conn)
        .await
        .store_context("erasing the family's grace seals")?;
    Ok(())
}

/// Revokes one session, or every session of a user, that is live:
/// [`domain::Session::revoke`]'s rule in SQL.
async fn revoke_rows(
    conn: &impl ConnectionTrait,
    ids: &[Uuid],
    reason: RevokeReason,
    now: Timestamp,
) -> anyhow::Result<u64> {
    Ok(session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now.unix_millis()))
        .col_expr(session::Column::RevokeReason, Expr::value(reason.as_str()))
        .filter(session::Column::Id.is_in(ids.iter().copied()))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now.unix_millis()))
        .exec(conn)
        .await
        .store_context("revoking sessions")?
        .rows_affected)
}

fn session_row(s: &Session) -> session::ActiveModel {
    session::ActiveModel {
        id: Set(*s.id.as_uuid()),
        user_id: Set(*s.user_id.as_uuid()),
        created_at: Set(s.created_at.unix_millis()),
        last_used_at: Set(s.last_used_at.unix_millis()),
        expires_at: Set(s.expires_at.unix_millis()),
        revoked_at: Set(s.revoked_at.map(Timestamp::unix_millis)),
        revoke_reason: Set(s.revoke_reason.map(|r| r.as_str().to_owned())),
        user_agent: Set(s.user_agent.as_deref().map(|v| clean(v, 512))),
        ip: Set(s.ip.as_deref().map(|v| clean(v, 64))),
        mfa: Set(s.methods.two_factor()),
        amr: Set(Some(s.methods.names().join(" "))),
        jkt: Set(s.jkt.as_ref().map(|j| j.0.clone())),
    }
}

fn token_row(t: &RefreshToken) -> refresh_token::ActiveModel {
    refresh_token::ActiveModel {
        hash: Set(t.hash.as_bytes().to_vec()),
        session_id: Set(*t.session_id.as_uuid()),
        parent_hash: Set(t.parent.map(|p| p.as_bytes().to_vec())),
        issued_at: Set(t.issued_at.unix_millis()),
        expires_at: Set(t.expires_at.unix_millis()),
        rotated_at: Set(t.rotated_at.map(Timestamp::unix_millis)),
        // Written when the token is rotated (the seal of its successor).
        successor_seal: Set(None),
    }
}

fn session_from_row(row: session::Model) -> anyhow::Result<Session> {
    let revoke_reason = row
        .revoke_reason
        .as_deref()
        .map(|r| {
            RevokeReason::parse(r)
                .with_context(|| format!("unknown revoke reason {r:?} of session {}", row.id))
        })
        .transpose()?;
    Ok(Session {
        id: SessionId::from_uuid(row.id),
        user_id: UserId::from_uuid(row.user_id),
        created_at: Timestamp::from_unix_millis(row.created_at),
        last_used_at: Timestamp::from_unix_millis(row.last_used_at),
        expires_at: Timestamp::from_unix_millis(row.expires_at),
        revoked_at: row.revoked_at.map(Timestamp::from_unix_millis),
        revoke_reason,
        user_agent: row.user_agent,
        ip: row.ip,
        methods: methods_of(row.amr.as_deref(), row.mfa)
            .with_context(|| format!("unknown amr of session {}", row.id))?,
        jkt: row.jkt.map(domain::dpop::Jkt),
    })
}

/// A session's methods: its `amr` column, or, for a session older than
/// the column, what `mfa` says.
fn methods_of(amr: Option<&str>, mfa: bool) -> Option<AuthMethods> {
    match amr {
        Some(names) => AuthMethods::parse(&names.split(' ').collect::<Vec<_>>()),
        None => Some(AuthMethods::from_two_factor(mfa)),
    }
}

fn hash_from_bytes(bytes: &[u8]) -> anyhow::Result<TokenHash> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .context("a stored token hash is not 32 bytes")?;
    Ok(TokenHash::from_bytes(bytes))
}

fn token_from_row(row: &refresh_token::Model) -> anyhow::Result<RefreshToken> {
    Ok(RefreshToken {
        hash: hash_from_bytes(&row.hash)?,
        session_id: SessionId::from_uuid(row.session_id),
        parent: row
            .parent_hash
            .as_deref()
            .map(hash_from_bytes)
            .transpose()?,
        issued_at: Timestamp::from_unix_millis(row.issued_at),
        expires_at: Timestamp::from_unix_millis(row.expires_at),
        rotated_at: row.rotated_at.map(Timestamp::from_unix_millis),
    })
}

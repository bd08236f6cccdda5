//! [`MailStore`] on PostgreSQL or SQLite: `email_addresses`, `mail_tokens`
//! and `mail_outbox`.
//!
//! What must hold across processes is decided by the database: the hourly
//! reset cap by one transaction holding the user's row (PostgreSQL) or the
//! write lock (SQLite); one owner of a verified address by its unique
//! index; single use by a conditional update; one sender of a mail by the
//! claim, a single `UPDATE` over `FOR UPDATE SKIP LOCKED` rows (PostgreSQL;
//! SQLite has one writer at a time).

use anyhow::Context as _;
use application::ports::{
    ClaimedMail, Issued, MailStore, NewMailToken, QueuedMail, SetAddressError, StoredMailToken,
};
use async_trait::async_trait;
use domain::email::{EmailAddress, MailPurpose, RESET_MAIL_WINDOW, mail_allowed};
use domain::{Timestamp, TokenHash, UserId};
use sea_orm::sea_query::{Expr, ExprTrait as _, LockBehavior, LockType, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait,
    FromQueryResult, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr,
    Statement,
};

use super::entities::{email_address, mail_outbox, mail_token, user};
use super::{Database, StoreContext, clean, store_error};

/// Characters of a delivery error kept for the operator.
const LAST_ERROR_MAX: usize = 500;

/// [`MailStore`] on a [`Database`].
#[derive(Debug, Clone)]
pub struct SeaMailStore {
    db: Database,
}

impl SeaMailStore {
    /// The store on `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn token_from_row(
    row: mail_token::Model,
    purpose: MailPurpose,
    superseded: bool,
) -> StoredMailToken {
    StoredMailToken {
        user: UserId::from_uuid(row.user_id),
        purpose,
        address: row.address,
        password_stamp: row.password_stamp,
        expires_at: Timestamp::from_unix_millis(row.expires_at),
        used: row.used_at.is_some(),
        superseded,
    }
}

/// The tokens of `user` for `purpose`.
fn tokens_of(user: UserId, purpose: MailPurpose) -> Condition {
    Condition::all()
        .add(mail_token::Column::UserId.eq(*user.as_uuid()))
        .add(mail_token::Column::Purpose.eq(purpose.as_str()))
}

/// The claim of [`MailStore::claim_due`]: one `UPDATE` of the due rows,
/// returning them. On PostgreSQL rows another sender is claiming are
/// skipped, not waited for (`FOR UPDATE SKIP LOCKED`), and a row claimed
/// meanwhile is checked again under its lock; SQLite writes no lock clause
/// (the statement holds the database's write lock from its start).
fn claim_statement(
    backend: DbBackend,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Statement {
    use mail_outbox::Column;
    let now = now.unix_millis();
    let due = Query::select()
        .column(Column::Id)
        .from(mail_outbox::Entity)
        .and_where(Column::GivenUpAt.is_null())
        .and_where(Column::NextAttemptAt.lte(now))
        .cond_where(
            Condition::any()
                .add(Column::ClaimedUntil.is_null())
                .add(Column::ClaimedUntil.lte(now)),
        )
        .order_by(Column::NextAttemptAt, Order::Asc)
        .limit(u64::from(limit))
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned();
    let claim = Query::update()
        .table(mail_outbox::Entity)
        .value(Column::ClaimedUntil, lease_until.unix_millis())
        .value(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .and_where(Column::Id.in_subquery(due))
        .returning_all()
        .to_owned();
    backend.build(&claim)
}

#[async_trait]
impl MailStore for SeaMailStore {
    #[tracing::instrument(
        name = "db.mail.issue",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client", user = %token.user, purpose = token.purpose.as_str())
    )]
    async fn issue(&self, token: &NewMailToken, mail: &QueuedMail) -> anyhow::Result<Issued> {
        let tx = self.db.write_transaction().await?;
        // Every issue for this user waits here for the one before it
        // (PostgreSQL: the user's row; SQLite: the write lock, held since
        // BEGIN IMMEDIATE, the lock clause is not written), so the count
        // below is exact.
        user::Entity::find_by_id(*token.user.as_uuid())
            .lock_exclusive()
            .one(tx.txn())
            .await
            .store_context("locking the user")?
            .with_context(|| format!("the user {} is gone", token.user))?;
        let since = token.issued_at.minus(RESET_MAIL_WINDOW);
        let sent = mail_token::Entity::find()
            .filter(tokens_of(token.user, token.purpose))
            .filter(mail_token::Column::IssuedAt.gt(since.unix_millis()))
            .count(tx.txn())
            .await
            .store_context("counting the mails of the last hour")?;
        if !mail_allowed(token.purpose, sent) {
            return Ok(Issued::CapReached);
        }
        mail_token::Entity::insert(mail_token::ActiveModel {
            token_hash: Set(token.hash.as_bytes().to_vec()),
            user_id: Set(*token.user.as_uuid()),
            purpose: Set(token.purpose.as_str().to_owned()),
            address: Set(token.address.as_str().to_owned()),
            password_stamp: Set(token.password_stamp.clone()),
            issued_at: Set(token.issued_at.unix_millis()),
            expires_at: Set(token.expires_at.unix_millis()),
            used_at: Set(None),
        })
        .exec_without_returning(tx.txn())
        .await
        .store_context("storing a mail token")?;
        mail_outbox::Entity::insert(mail_outbox::ActiveModel {
            id: Set(mail.id.clone()),
            sealed: Set(mail.sealed.clone()),
            queued_at: Set(mail.queued_at.unix_millis()),
            next_attempt_at: Set(mail.queued_at.unix_millis()),
            attempts: Set(0),
            claimed_until: Set(None),
            given_up_at: Set(None),
            last_error: Set(None),
        })
        .exec_without_returning(tx.txn())
        .await
        .store_context("queueing a mail")?;
        tx.commit()
            .await
            .store_context("committing a mail token and its mail")?;
        Ok(Issued::Queued)
    }

    #[tracing::instrument(
        name = "db.mail.find_token",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn find_token(&self, hash: &TokenHash) -> anyhow::Result<Option<StoredMailToken>> {
        let Some(row) = mail_token::Entity::find_by_id(hash.as_bytes().to_vec())
            .one(self.db.connection())
            .await
            .store_context("finding a mail token")?
        else {
            return Ok(None);
        };
        let purpose = MailPurpose::parse(&row.purpose)
            .with_context(|| format!("a mail token of the unknown purpose {:?}", row.purpose))?;
        // Newer: issued later, or at the same millisecond with a greater
        // hash, so that exactly one token of a user and purpose is newest.
        let newer = Condition::any()
            .add(mail_token::Column::IssuedAt.gt(row.issued_at))
            .add(
                Condition::all()
                    .add(mail_token::Column::IssuedAt.eq(row.issued_at))
                    .add(mail_token::Column::TokenHash.gt(row.token_hash.clone())),
            );
        let superseded = mail_token::Entity::find()
            .filter(tokens_of(UserId::from_uuid(row.user_id), purpose))
            .filter(newer)
            .count(self.db.connection())
            .await
            .store_context("looking for a newer mail token")?
            > 0;
        Ok(Some(token_from_row(row, purpose, superseded)))
    }

    #[tracing::instrument(
        name = "db.mail.use_token",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn use_token(&self, hash: &TokenHash, now: Timestamp) -> anyhow::Result<bool> {
        let _turn = self.db.write_turn().await;
        Ok(mail_token::Entity::update_many()
            .col_expr(mail_token::Column::UsedAt, Expr::value(now.unix_millis()))
            .filter(mail_token::Column::TokenHash.eq(hash.as_bytes().to_vec()))
            .filter(mail_token::Column::UsedAt.is_null())
            .exec(self.db.connection())
            .await
            .store_context("using a mail token")?
            .rows_affected
            == 1)
    }

    #[tracing::instrument(
        name = "db.mail.set_verified",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client", user = %user)
    )]
    async fn set_verified(
        &self,
        user: UserId,
        address: &EmailAddress,
        now: Timestamp,
    ) -> Result<(), SetAddressError> {
        let row = email_address::ActiveModel {
            user_id: Set(*user.as_uuid()),
            address: Set(address.as_str().to_owned()),
            address_canonical: Set(address.canonical()),
            verified_at: Set(now.unix_millis()),
        };
        let _turn = self.db.write_turn().await;
        match email_address::Entity::insert(row)
            .on_conflict(
                OnConflict::column(email_address::Column::UserId)
                    .update_columns([
                        email_address::Column::Address,
                        email_address::Column::AddressCanonical,
                        email_address::Column::VerifiedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(self.db.connection())
            .await
        {
            Ok(_) => Ok(()),
            // The unique index on the canonical address decides, also
            // between two verifications at once.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(SetAddressError::Taken)
            }
            Err(e) => Err(SetAddressError::Unexpected(store_error(
                e,
                "storing a verified address",
            ))),
        }
    }

    #[tracing::instrument(
        name = "db.mail.verified_address",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn verified_address(&self, user: UserId) -> anyhow::Result<Option<String>> {
        Ok(email_address::Entity::find_by_id(*user.as_uuid())
            .one(self.db.connection())
            .await
            .store_context("reading the verified address")?
            .map(|r| r.address))
    }

    #[tracing::instrument(
        name = "db.mail.pending_address",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn pending_address(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> anyhow::Result<Option<String>> {
        let newest = mail_token::Entity::find()
            .filter(tokens_of(user, MailPurpose::Verify))
            .order_by_desc(mail_token::Column::IssuedAt)
            .order_by_desc(mail_token::Column::TokenHash)
            .one(self.db.connection())
            .await
            .store_context("reading the newest verification token")?;
        Ok(newest
            .filter(|r| r.used_at.is_none() && now.unix_millis() < r.expires_at)
            .map(|r| r.address))
    }

    #[tracing::instrument(
        name = "db.mail.owner_of",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn owner_of(&self, address: &EmailAddress) -> anyhow::Result<Option<UserId>> {
        Ok(email_address::Entity::find()
            .filter(email_address::Column::AddressCanonical.eq(address.canonical()))
            .one(self.db.connection())
            .await
            .store_context("finding an address's account")?
            .map(|r| UserId::from_uuid(r.user_id)))
    }

    #[tracing::instrument(
        name = "db.mail.claim_due",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<ClaimedMail>> {
        let statement = claim_statement(
            self.db.connection().get_database_backend(),
            now,
            lease_until,
            limit,
        );
        let _turn = self.db.write_turn().await;
        let rows = self
            .db
            .connection()
            .query_all_raw(statement)
            .await
            .store_context("claiming due mails")?;
        let mut claimed = rows
            .iter()
            .map(|row| mail_outbox::Model::from_query_result(row, ""))
            .collect::<Result<Vec<_>, _>>()
            .store_context("reading the claimed mails")?;
        claimed.sort_by(|a, b| (a.next_attempt_at, &a.id).cmp(&(b.next_attempt_at, &b.id)));
        Ok(claimed
            .into_iter()
            .map(|r| ClaimedMail {
                id: r.id,
                sealed: r.sealed,
                queued_at: Timestamp::from_unix_millis(r.queued_at),
                attempts: u32::try_from(r.attempts).unwrap_or(0),
            })
            .collect())
    }

    #[tracing::instrument(
        name = "db.mail.delivered",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client", mail = id)
    )]
    async fn delivered(&self, id: &str) -> anyhow::Result<()> {
        let _turn = self.db.write_turn().await;
        mail_outbox::Entity::delete_by_id(id.to_owned())
            .exec(self.db.connection())
            .await
            .store_context("deleting a delivered mail")?;
        Ok(())
    }

    #[tracing::instrument(
        name = "db.mail.retry_at",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client", mail = id)
    )]
    async fn retry_at(&self, id: &str, at: Timestamp, error: &str) -> anyhow::Result<()> {
        let _turn = self.db.write_turn().await;
        mail_outbox::Entity::update_many()
            .set(mail_outbox::ActiveModel {
                next_attempt_at: Set(at.unix_millis()),
                claimed_until: Set(None),
                last_error: Set(Some(clean(error, LAST_ERROR_MAX))),
                ..Default::default()
            })
            .filter(mail_outbox::Column::Id.eq(id))
            .exec(self.db.connection())
            .await
            .store_context("putting a mail back for later")?;
        Ok(())
    }

    #[tracing::instrument(
        name = "db.mail.give_up",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client", mail = id)
    )]
    async fn give_up(&self, id: &str, now: Timestamp, error: &str) -> anyhow::Result<()> {
        let _turn = self.db.write_turn().await;
        mail_outbox::Entity::update_many()
            .set(mail_outbox::ActiveModel {
                sealed: Set(Vec::new()),
                claimed_until: Set(None),
                given_up_at: Set(Some(now.unix_millis())),
                last_error: Set(Some(clean(error, LAST_ERROR_MAX))),
                ..Default::default()
            })
            .filter(mail_outbox::Column::Id.eq(id))
            .exec(self.db.connection())
            .await
            .store_context("giving up a mail")?;
        Ok(())
    }

    /// Also keeps every token until [`RESET_MAIL_WINDOW`] after its issue
    /// (a reset token expires sooner by default): pruning never lowers the
    /// count [`Self::issue`] holds against the hourly cap.
    #[tracing::instrument(
        name = "db.mail.prune",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn prune(&self, before: Timestamp) -> anyhow::Result<u64> {
        let before_ms = before.unix_millis();
        let counted_since = before.minus(RESET_MAIL_WINDOW).unix_millis();
        let tx = self.db.write_transaction().await?;
        let tokens = mail_token::Entity::delete_many()
            .filter(mail_token::Column::ExpiresAt.lt(before_ms))
            .filter(mail_token::Column::IssuedAt.lte(counted_since))
            .exec(tx.txn())
            .await
            .store_context("pruning mail tokens")?
            .rows_affected;
        let mails = mail_outbox::Entity::delete_many()
            .filter(mail_outbox::Column::GivenUpAt.is_not_null())
            .filter(mail_outbox::Column::QueuedAt.lt(before_ms))
            .exec(tx.txn())
            .await
            .store_context("pruning given-up mails")?
            .rows_affected;
        tx.commit().await.store_context("committing the pruning")?;
        Ok(tokens + mails)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_skips_locked_rows_on_postgresql_and_takes_the_write_lock_on_sqlite() {
        let (now, lease) = (
            Timestamp::from_unix_millis(5),
            Timestamp::from_unix_millis(9),
        );
        let pg = claim_statement(DbBackend::Postgres, now, lease, 3).to_string();
        let lite = claim_statement(DbBackend::Sqlite, now, lease, 3).to_string();
        println!("PostgreSQL: {pg}\nSQLite: {lite}");
        for sql in [&pg, &lite] {
            assert!(sql.starts_with(r#"UPDATE "mail_outbox" SET"#), "{sql}");
            assert!(sql.contains(r#""attempts" = "attempts" + 1"#), "{sql}");
            assert!(sql.contains("LIMIT 3"), "{sql}");
            assert!(sql.ends_with("RETURNING *"), "{sql}");
        }
        assert!(pg.contains("FOR UPDATE SKIP LOCKED"), "{pg}");
        assert!(!lite.contains("FOR UPDATE"), "{lite}");
    }
}

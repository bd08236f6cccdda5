//! [`MfaStore`] on PostgreSQL or SQLite: `totp_secrets`, `recovery_codes`
//! and `mfa_tokens`. Every decision that must hold across processes is one
//! conditional write (a code's step, a recovery code, a token's end), whose
//! affected-row count says who won.

use application::ports::{MfaChallenge, MfaStore, TotpSecret};
use async_trait::async_trait;
use domain::{Timestamp, TokenHash, UserId};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter};

use super::entities::{mfa_token, recovery_code, totp_secret};
use super::{Database, StoreContext, clean};

/// [`MfaStore`] on a [`Database`].
#[derive(Debug, Clone)]
pub struct SeaMfaStore {
    db: Database,
}

impl SeaMfaStore {
    /// The store on `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn step_value(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

#[async_trait]
impl MfaStore for SeaMfaStore {
    #[tracing::instrument(
        name = "db.mfa.totp",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn totp(&self, user: UserId) -> anyhow::Result<Option<TotpSecret>> {
        let row = totp_secret::Entity::find_by_id(*user.as_uuid())
            .one(self.db.connection())
            .await
            .store_context("reading the TOTP secret")?;
        Ok(row.map(|r| TotpSecret {
            sealed: r.sealed_secret,
            created_at: Timestamp::from_unix_millis(r.created_at),
            confirmed_at: r.confirmed_at.map(Timestamp::from_unix_millis),
            last_step: r.last_step.and_then(|s| u64::try_from(s).ok()),
        }))
    }

    #[tracing::instrument(
        name = "db.mfa.begin_totp",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn begin_totp(
        &self,
        user: UserId,
        sealed: &[u8],
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let tx = self.db.write_transaction().await?;
        // A pending enrolment is replaced; a confirmed one stays.
        totp_secret::Entity::delete_many()
            .filter(totp_secret::Column::UserId.eq(*user.as_uuid()))
            .filter(totp_secret::Column::ConfirmedAt.is_null())
            .exec(tx.txn())
            .await
            .store_context("replacing a pending enrolment")?;
        let confirmed = totp_secret::Entity::find_by_id(*user.as_uuid())
            .one(tx.txn())
            .await
            .store_context("reading the TOTP secret")?
            .is_some();
        if confirmed {
            return Ok(false);
        }
        totp_secret::Entity::insert(totp_secret::ActiveModel {
            user_id: Set(*user.as_uuid()),
            sealed_secret: Set(sealed.to_vec()),
            created_at: Set(now.unix_millis()),
            confirmed_at: Set(None),
            last_step: Set(None),
            wrong_codes: Set(0),
        })
        .exec_without_returning(tx.txn())
        .await
        .store_context("storing the pending enrolment")?;
        tx.commit()
            .await
            .store_context("committing the enrolment")?;
        Ok(true)
    }

    #[tracing::instrument(
        name = "db.mfa.count_wrong_enrolment_code",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn count_wrong_enrolment_code(
        &self,
        user: UserId,
        began: Timestamp,
    ) -> anyhow::Result<u32> {
        let tx = self.db.write_transaction().await?;
        let pending = || {
            Condition::all()
                .add(totp_secret::Column::UserId.eq(*user.as_uuid()))
                .add(totp_secret::Column::CreatedAt.eq(began.unix_millis()))
                .add(totp_secret::Column::ConfirmedAt.is_null())
        };
        totp_secret::Entity::update_many()
            .col_expr(
                totp_secret::Column::WrongCodes,
                Expr::col(totp_secret::Column::WrongCodes).add(1),
            )
            .filter(pending())
            .exec(tx.txn())
            .await
            .store_context("counting a wrong enrolment code")?;
        let wrong = totp_secret::Entity::find()
            .filter(pending())
            .one(tx.txn())
            .await
            .store_context("reading the enrolment's wrong codes")?
            .map_or(0, |row| u32::try_from(row.wrong_codes).unwrap_or(u32::MAX));
        if wrong > 0 && !domain::totp::enrolment_usable(wrong) {
            totp_secret::Entity::delete_many()
                .filter(pending())
                .exec(tx.txn())
                .await
                .store_context("voiding the enrolment")?;
        }
        tx.commit()
            .await
            .store_context("committing the wrong enrolment code")?;
        Ok(wrong)
    }

    #[tracing::instrument(
        name = "db.mfa.confirm_totp",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn confirm_totp(
        &self,
        user: UserId,
        began: Timestamp,
        step: u64,
        recovery: &[TokenHash],
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let tx = self.db.write_transaction().await?;
        let confirmed = totp_secret::Entity::update_many()
            .col_expr(
                totp_secret::Column::ConfirmedAt,
                Expr::value(now.unix_millis()),
            )
            .col_expr(totp_secret::Column::LastStep, Expr::value(step_value(step)))
            .filter(totp_secret::Column::UserId.eq(*user.as_uuid()))
            .filter(totp_secret::Column::CreatedAt.eq(began.unix_millis()))
            .filter(totp_secret::Column::ConfirmedAt.is_null())
            .exec(tx.txn())
            .await
            .store_context("confirming the enrolment")?
            .rows_affected;
        if confirmed != 1 {
            return Ok(false);
        }
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(*user.as_uuid()))
            .exec(tx.txn())
            .await
            .store_context("replacing recovery codes")?;
        if !recovery.is_empty() {
            let rows = recovery.iter().map(|hash| recovery_code::ActiveModel {
                user_id: Set(*user.as_uuid()),
                code_hash: Set(hash.as_bytes().to_vec()),
                used_at: Set(None),
            });
            recovery_code::Entity::insert_many(rows)
                .exec_without_returning(tx.txn())
                .await
                .store_context("storing recovery codes")?;
        }
        tx.commit()
            .await
            .store_context("committing the confirmation")?;
        Ok(true)
    }

    #[tracing::instrument(
        name = "db.mfa.remove_totp",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn remove_totp(&self, user: UserId) -> anyhow::Result<bool> {
        let tx = self.db.write_transaction().await?;
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(*user.as_uuid()))
            .exec(tx.txn())
            .await
            .store_context("deleting recovery codes")?;
        let removed = totp_secret::Entity::delete_many()
            .filter(totp_secret::Column::UserId.eq(*user.as_uuid()))
            .exec(tx.txn())
            .await
            .store_context("deleting the TOTP secret")?
            .rows_affected;
        tx.commit().await.store_context("committing the removal")?;
        Ok(removed == 1)
    }

    #[tracing::instrument(
        name = "db.mfa.use_step",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn use_step(&self, user: UserId, step: u64) -> anyhow::Result<bool> {
        let _turn = self.db.write_turn().await;
        let step = step_value(step);
        let won = totp_secret::Entity::update_many()
            .col_expr(totp_secret::Column::LastStep, Expr::value(step))
            .filter(totp_secret::Column::UserId.eq(*user.as_uuid()))
            .filter(totp_secret::Column::ConfirmedAt.is_not_null())
            .filter(
                sea_orm::Condition::any()
                    .add(totp_secret::Column::LastStep.is_null())
                    .add(totp_secret::Column::LastStep.lt(step)),
            )
            .exec(self.db.connection())
            .await
            .store_context("recording the code's step")?
            .rows_affected;
        Ok(won == 1)
    }

    #[tracing::instrument(
        name = "db.mfa.use_recovery_code",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &TokenHash,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let _turn = self.db.write_turn().await;
        let won = recovery_code::Entity::update_many()
            .col_expr(
                recovery_code::Column::UsedAt,
                Expr::value(now.unix_millis()),
            )
            .filter(recovery_code::Column::UserId.eq(*user.as_uuid()))
            .filter(recovery_code::Column::CodeHash.eq(hash.as_bytes().to_vec()))
            .filter(recovery_code::Column::UsedAt.is_null())
            .exec(self.db.connection())
            .await
            .store_context("spending a recovery code")?
            .rows_affected;
        Ok(won == 1)
    }

    #[tracing::instrument(
        name = "db.mfa.recovery_codes_left",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn recovery_codes_left(&self, user: UserId) -> anyhow::Result<u32> {
        let left = recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(*user.as_uuid()))
            .filter(recovery_code::Column::UsedAt.is_null())
            .count(self.db.connection())
            .await
            .store_context("counting recovery codes")?;
        Ok(u32::try_from(left).unwrap_or(u32::MAX))
    }

    #[tracing::instrument(
        name = "db.mfa.create_challenge",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn create_challenge(&self, c: &MfaChallenge) -> anyhow::Result<()> {
        let _turn = self.db.write_turn().await;
        mfa_token::Entity::insert(mfa_token::ActiveModel {
            token_hash: Set(c.hash.as_bytes().to_vec()),
            user_id: Set(*c.user.as_uuid()),
            client_ip: Set(c.client_ip.as_deref().map(|v| clean(v, 64))),
            user_agent: Set(c.user_agent.as_deref().map(|v| clean(v, 512))),
            expires_at: Set(c.expires_at.unix_millis()),
            wrong_codes: Set(i32::try_from(c.wrong_codes).unwrap_or(i32::MAX)),
        })
        .exec_without_returning(self.db.connection())
        .await
        .store_context("storing the mfaToken")?;
        Ok(())
    }

    #[tracing::instrument(
        name = "db.mfa.challenge",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn challenge(
        &self,
        hash: &TokenHash,
        now: Timestamp,
    ) -> anyhow::Result<Option<MfaChallenge>> {
        let row = mfa_token::Entity::find_by_id(hash.as_bytes().to_vec())
            .filter(mfa_token::Column::ExpiresAt.gt(now.unix_millis()))
            .one(self.db.connection())
            .await
            .store_context("reading the mfaToken")?;
        Ok(row.map(|r| MfaChallenge {
            hash: *hash,
            user: UserId::from_uuid(r.user_id),
            client_ip: r.client_ip,
            user_agent: r.user_agent,
            expires_at: Timestamp::from_unix_millis(r.expires_at),
            wrong_codes: u32::try_from(r.wrong_codes).unwrap_or(0),
        }))
    }

    #[tracing::instrument(
        name = "db.mfa.count_wrong_code",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn count_wrong_code(&self, hash: &TokenHash) -> anyhow::Result<u32> {
        let tx = self.db.write_transaction().await?;
        mfa_token::Entity::update_many()
            .col_expr(
                mfa_token::Column::WrongCodes,
                Expr::col(mfa_token::Column::WrongCodes).add(1),
            )
            .filter(mfa_token::Column::TokenHash.eq(hash.as_bytes().to_vec()))
            .exec(tx.txn())
            .await
            .store_context("counting a wrong code")?;
        let count = mfa_token::Entity::find_by_id(hash.as_bytes().to_vec())
            .one(tx.txn())
            .await
            .store_context("reading the count")?
            .map_or(u32::MAX, |r| {
                u32::try_from(r.wrong_codes).unwrap_or(u32::MAX)
            });
        tx.commit().await.store_context("committing the count")?;
        Ok(count)
    }

    #[tracing::instrument(
        name = "db.mfa.end_challenge",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn end_challenge(&self, hash: &TokenHash) -> anyhow::Result<bool> {
        let _turn = self.db.write_turn().await;
        let ended = mfa_token::Entity::delete_by_id(hash.as_bytes().to_vec())
            .exec(self.db.connection())
            .await
            .store_context("ending the mfaToken")?
            .rows_affected;
        Ok(ended == 1)
    }

    #[tracing::instrument(
        name = "db.mfa.end_challenges_of",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn end_challenges_of(&self, user: UserId) -> anyhow::Result<u64> {
        let _turn = self.db.write_turn().await;
        Ok(mfa_token::Entity::delete_many()
            .filter(mfa_token::Column::UserId.eq(*user.as_uuid()))
            .exec(self.db.connection())
            .await
            .store_context("ending a user's mfaTokens")?
            .rows_affected)
    }

    #[tracing::instrument(
        name = "db.mfa.prune_challenges",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn prune_challenges(&self, now: Timestamp) -> anyhow::Result<u64> {
        let _turn = self.db.write_turn().await;
        Ok(mfa_token::Entity::delete_many()
            .filter(mfa_token::Column::ExpiresAt.lte(now.unix_millis()))
            .exec(self.db.connection())
            .await
            .store_context("pruning mfaTokens")?
            .rows_affected)
    }
}

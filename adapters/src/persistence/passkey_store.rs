//! [`PasskeyStore`] on PostgreSQL or SQLite: `passkey_users`, `passkeys`
//! and `passkey_ceremonies`. The decisions that must hold across processes
//! are single writes whose affected-row count says who won: a ceremony's
//! deletion (single use), a counter's conditional update (one login per
//! counter value), the credential id's unique index (one owner).

use application::ports::{
    Ceremony, CeremonyKind, CredentialId, Passkey, PasskeyExists, PasskeyStore, VerifiedAssertion,
};
use async_trait::async_trait;
use domain::{Timestamp, TokenHash, UserId};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, SqlErr,
};
use uuid::Uuid;

use super::entities::{passkey, passkey_ceremony, passkey_user};
use super::{Database, StoreContext, clean, store_error};

/// [`PasskeyStore`] on a [`Database`].
#[derive(Debug, Clone)]
pub struct SeaPasskeyStore {
    db: Database,
}

impl SeaPasskeyStore {
    /// The store on `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

const fn kind_name(kind: CeremonyKind) -> &'static str {
    match kind {
        CeremonyKind::Registration => "registration",
        CeremonyKind::Login => "login",
    }
}

fn passkey_from_row(r: passkey::Model) -> Passkey {
    Passkey {
        id: r.id,
        user: UserId::from_uuid(r.user_id),
        credential: CredentialId(r.credential_id),
        public_key: r.public_key,
        // Written from a u32; anything else would be a corrupt row, read
        // as "no counter" rather than failing the login.
        counter: u32::try_from(r.counter).unwrap_or(0),
        backup_eligible: r.backup_eligible,
        backup_state: r.backup_state,
        name: r.name,
        created_at: Timestamp::from_unix_millis(r.created_at),
        last_used_at: r.last_used_at.map(Timestamp::from_unix_millis),
    }
}

#[async_trait]
impl PasskeyStore for SeaPasskeyStore {
    #[tracing::instrument(
        name = "db.passkeys.user_handle",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn user_handle(&self, user: UserId, candidate: &[u8]) -> anyhow::Result<Vec<u8>> {
        {
            let _turn = self.db.write_turn().await;
            passkey_user::Entity::insert(passkey_user::ActiveModel {
                user_id: Set(*user.as_uuid()),
                handle: Set(candidate.to_vec()),
            })
            .on_conflict(
                OnConflict::column(passkey_user::Column::UserId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.db.connection())
            .await
            .store_context("making the user handle")?;
        }
        passkey_user::Entity::find_by_id(*user.as_uuid())
            .one(self.db.connection())
            .await
            .store_context("reading the user handle")?
            .map(|r| r.handle)
            .ok_or_else(|| anyhow::anyhow!("the user {user} is gone"))
    }

    #[tracing::instrument(
        name = "db.passkeys.user_of_handle",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn user_of_handle(&self, handle: &[u8]) -> anyhow::Result<Option<UserId>> {
        Ok(passkey_user::Entity::find()
            .filter(passkey_user::Column::Handle.eq(handle.to_vec()))
            .one(self.db.connection())
            .await
            .store_context("finding a user handle")?
            .map(|r| UserId::from_uuid(r.user_id)))
    }

    #[tracing::instrument(
        name = "db.passkeys.save_ceremony",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn save_ceremony(&self, c: &Ceremony) -> anyhow::Result<()> {
        let _turn = self.db.write_turn().await;
        passkey_ceremony::Entity::insert(passkey_ceremony::ActiveModel {
            id_hash: Set(c.id.as_bytes().to_vec()),
            kind: Set(kind_name(c.kind).to_owned()),
            user_id: Set(c.user.map(|u| *u.as_uuid())),
            state: Set(c.state.clone()),
            expires_at: Set(c.expires_at.unix_millis()),
        })
        .exec_without_returning(self.db.connection())
        .await
        .store_context("storing a passkey ceremony")?;
        Ok(())
    }

    #[tracing::instrument(
        name = "db.passkeys.take_ceremony",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn take_ceremony(
        &self,
        id: &TokenHash,
        kind: CeremonyKind,
        user: Option<UserId>,
    ) -> anyhow::Result<Option<Ceremony>> {
        let owner = match user {
            Some(u) => passkey_ceremony::Column::UserId.eq(*u.as_uuid()),
            None => passkey_ceremony::Column::UserId.is_null(),
        };
        let tx = self.db.write_transaction().await?;
        let Some(row) = passkey_ceremony::Entity::find_by_id(id.as_bytes().to_vec())
            .filter(passkey_ceremony::Column::Kind.eq(kind_name(kind)))
            .filter(owner.clone())
            .one(tx.txn())
            .await
            .store_context("reading a passkey ceremony")?
        else {
            return Ok(None);
        };
        // Of two finishes that both read it, the one whose delete removes
        // the row has it (PostgreSQL: the other waits for the row lock,
        // then deletes nothing).
        let taken = passkey_ceremony::Entity::delete_many()
            .filter(passkey_ceremony::Column::IdHash.eq(id.as_bytes().to_vec()))
            .filter(owner)
            .exec(tx.txn())
            .await
            .store_context("taking a passkey ceremony")?
            .rows_affected;
        tx.commit()
            .await
            .store_context("committing a passkey ceremony's use")?;
        Ok((taken == 1).then(|| Ceremony {
            id: *id,
            kind,
            user,
            state: row.state,
            expires_at: Timestamp::from_unix_millis(row.expires_at),
        }))
    }

    #[tracing::instrument(
        name = "db.passkeys.prune_ceremonies",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn prune_ceremonies(&self, now: Timestamp) -> anyhow::Result<u64> {
        let _turn = self.db.write_turn().await;
        Ok(passkey_ceremony::Entity::delete_many()
            .filter(passkey_ceremony::Column::ExpiresAt.lte(now.unix_millis()))
            .exec(self.db.connection())
            .await
            .store_context("pruning passkey ceremonies")?
            .rows_affected)
    }

    #[tracing::instrument(
        name = "db.passkeys.add",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn add(&self, p: &Passkey) -> anyhow::Result<()> {
        let _turn = self.db.write_turn().await;
        let row = passkey::ActiveModel {
            id: Set(p.id),
            user_id: Set(*p.user.as_uuid()),
            credential_id: Set(p.credential.0.clone()),
            public_key: Set(p.public_key.clone()),
            counter: Set(i64::from(p.counter)),
            backup_eligible: Set(p.backup_eligible),
            backup_state: Set(p.backup_state),
            name: Set(clean(&p.name, 256)),
            created_at: Set(p.created_at.unix_millis()),
            last_used_at: Set(p.last_used_at.map(Timestamp::unix_millis)),
        };
        match passkey::Entity::insert(row)
            .exec_without_returning(self.db.connection())
            .await
        {
            Ok(_) => Ok(()),
            // The unique index decides, also between concurrent registrations.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(anyhow::Error::new(PasskeyExists))
            }
            Err(e) => Err(store_error(e, "adding a passkey")),
        }
    }

    #[tracing::instrument(
        name = "db.passkeys.list",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn list(&self, user: UserId) -> anyhow::Result<Vec<Passkey>> {
        Ok(passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(*user.as_uuid()))
            .order_by_asc(passkey::Column::CreatedAt)
            .order_by_asc(passkey::Column::Id)
            .all(self.db.connection())
            .await
            .store_context("listing passkeys")?
            .into_iter()
            .map(passkey_from_row)
            .collect())
    }

    #[tracing::instrument(
        name = "db.passkeys.find",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn find(&self, credential: &CredentialId) -> anyhow::Result<Option<Passkey>> {
        Ok(passkey::Entity::find()
            .filter(passkey::Column::CredentialId.eq(credential.0.clone()))
            .one(self.db.connection())
            .await
            .store_context("finding a passkey")?
            .map(passkey_from_row))
    }

    #[tracing::instrument(
        name = "db.passkeys.remove",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn remove(&self, user: UserId, id: Uuid) -> anyhow::Result<bool> {
        let _turn = self.db.write_turn().await;
        Ok(passkey::Entity::delete_many()
            .filter(passkey::Column::Id.eq(id))
            .filter(passkey::Column::UserId.eq(*user.as_uuid()))
            .exec(self.db.connection())
            .await
            .store_context("deleting a passkey")?
            .rows_affected
            == 1)
    }

    #[tracing::instrument(
        name = "db.passkeys.record_use",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn record_use(
        &self,
        id: Uuid,
        seen: u32,
        assertion: VerifiedAssertion,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let _turn = self.db.write_turn().await;
        let update = passkey::ActiveModel {
            counter: Set(i64::from(assertion.counter)),
            backup_state: Set(assertion.backup_state),
            last_used_at: Set(Some(now.unix_millis())),
            ..Default::default()
        };
        Ok(passkey::Entity::update_many()
            .set(update)
            .filter(passkey::Column::Id.eq(id))
            .filter(passkey::Column::Counter.eq(i64::from(seen)))
            .exec(self.db.connection())
            .await
            .store_context("recording a passkey's use")?
            .rows_affected
            == 1)
    }

    #[tracing::instrument(
        name = "db.passkeys.count",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn count(&self, user: UserId) -> anyhow::Result<u64> {
        passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(*user.as_uuid()))
            .count(self.db.connection())
            .await
            .store_context("counting passkeys")
    }
}

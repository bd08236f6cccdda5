//! The signing-key set on SeaORM: one table every process reads.

use anyhow::Context;
use application::ports::{SigningKeyStore, StoredKey};
use async_trait::async_trait;
use domain::{Algorithm, KeyRecord, Timestamp};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};

use super::entities::signing_key;
use super::{Database, StoreContext};

/// [`SigningKeyStore`] on PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub struct SeaSigningKeyStore {
    db: Database,
}

impl SeaSigningKeyStore {
    /// The key set stored in `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn from_row(row: signing_key::Model) -> anyhow::Result<StoredKey> {
    let alg = Algorithm::parse(&row.alg)
        .with_context(|| format!("signing key {} has algorithm {:?}", row.kid, row.alg))?;
    Ok(StoredKey {
        record: KeyRecord {
            kid: row.kid,
            alg,
            created_at: Timestamp::from_unix_millis(row.created_at),
            signs_from: Timestamp::from_unix_millis(row.signs_from),
            retired_at: row.retired_at.map(Timestamp::from_unix_millis),
        },
        public_pem: row.public_pem,
        sealed_private: row.sealed_private,
    })
}

fn to_row(key: &StoredKey) -> signing_key::ActiveModel {
    let r = &key.record;
    signing_key::ActiveModel {
        kid: Set(r.kid.clone()),
        alg: Set(r.alg.as_str().to_owned()),
        created_at: Set(r.created_at.unix_millis()),
        signs_from: Set(r.signs_from.unix_millis()),
        retired_at: Set(r.retired_at.map(Timestamp::unix_millis)),
        public_pem: Set(key.public_pem.clone()),
        sealed_private: Set(key.sealed_private.clone()),
    }
}

#[async_trait]
impl SigningKeyStore for SeaSigningKeyStore {
    #[tracing::instrument(
        name = "db.signing_keys.list",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn list(&self) -> anyhow::Result<Vec<StoredKey>> {
        signing_key::Entity::find()
            .order_by_asc(signing_key::Column::CreatedAt)
            .order_by_asc(signing_key::Column::Kid)
            .all(self.db.connection())
            .await
            .store_context("reading the signing keys")?
            .into_iter()
            .map(from_row)
            .collect()
    }

    #[tracing::instrument(
        name = "db.signing_keys.insert",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client", kid = %key.record.kid)
    )]
    async fn insert(&self, key: &StoredKey, only_if_empty: bool) -> anyhow::Result<bool> {
        let tx = self
            .db
            .begin_write()
            .await
            .store_context("starting the signing-key transaction")?;
        if only_if_empty {
            // Processes starting together on an empty set: one adds the first
            // key, the others see it (SQLite's write lock is already held).
            if self.db.is_postgres() {
                tx.execute_unprepared("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
                    .await
                    .store_context("locking the signing keys")?;
            }
            let existing = signing_key::Entity::find()
                .count(tx.txn())
                .await
                .store_context("counting the signing keys")?;
            if existing > 0 {
                return Ok(false);
            }
        } else if signing_key::Entity::find_by_id(key.record.kid.clone())
            .one(tx.txn())
            .await
            .store_context("reading the signing key")?
            .is_some()
        {
            return Ok(false);
        }
        signing_key::Entity::insert(to_row(key))
            .exec(tx.txn())
            .await
            .store_context("adding the signing key")?;
        tx.commit()
            .await
            .store_context("committing the signing key")?;
        Ok(true)
    }

    #[tracing::instrument(
        name = "db.signing_keys.retire",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client", kid = retire)
    )]
    async fn retire(
        &self,
        retire: &str,
        promote: Option<&str>,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let tx = self
            .db
            .begin_write()
            .await
            .store_context("starting the signing-key transaction")?;
        signing_key::Entity::update_many()
            .col_expr(
                signing_key::Column::RetiredAt,
                sea_orm::sea_query::Expr::value(now.unix_millis()),
            )
            .filter(signing_key::Column::Kid.eq(retire))
            .exec(tx.txn())
            .await
            .store_context("retiring the signing key")?;
        if let Some(promote) = promote {
            signing_key::Entity::update_many()
                .col_expr(
                    signing_key::Column::SignsFrom,
                    sea_orm::sea_query::Expr::value(now.unix_millis()),
                )
                .filter(signing_key::Column::Kid.eq(promote))
                .exec(tx.txn())
                .await
                .store_context("promoting the signing key")?;
        }
        tx.commit()
            .await
            .store_context("committing the retirement")?;
        Ok(())
    }
}

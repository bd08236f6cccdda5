//! [`DpopReplayStore`] on PostgreSQL or SQLite: `dpop_jtis`, whose primary
//! key decides between processes which one saw a proof id first.

use application::ports::DpopReplayStore;
use async_trait::async_trait;
use domain::{Timestamp, TokenHash};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::entities::dpop_jti;
use super::{Database, StoreContext};

/// [`DpopReplayStore`] on a [`Database`].
#[derive(Debug, Clone)]
pub struct SeaDpopReplayStore {
    db: Database,
}

impl SeaDpopReplayStore {
    /// The store on `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl DpopReplayStore for SeaDpopReplayStore {
    #[tracing::instrument(
        name = "db.dpop.use_once",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn use_once(&self, id: &TokenHash, expires_at: Timestamp) -> anyhow::Result<bool> {
        let _turn = self.db.write_turn().await;
        let inserted = dpop_jti::Entity::insert(dpop_jti::ActiveModel {
            jti_hash: Set(id.as_bytes().to_vec()),
            expires_at: Set(expires_at.unix_millis()),
        })
        .on_conflict(
            OnConflict::column(dpop_jti::Column::JtiHash)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self.db.connection())
        .await
        .store_context("recording a DPoP proof id")?;
        Ok(inserted == 1)
    }

    #[tracing::instrument(
        name = "db.dpop.prune",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn prune(&self, now: Timestamp) -> anyhow::Result<u64> {
        let _turn = self.db.write_turn().await;
        Ok(dpop_jti::Entity::delete_many()
            .filter(dpop_jti::Column::ExpiresAt.lte(now.unix_millis()))
            .exec(self.db.connection())
            .await
            .store_context("pruning DPoP proof ids")?
            .rows_affected)
    }
}

//! Grace seals under the keyed derivation (v2), and an index for erasing them.
//!
//! Seals written before this migration were keyed by the parent token alone
//! and were never erased, so a copy of the database and one stale token
//! walked a family's chain to its current token. They are all erased here:
//! the only cost is that a grace replay in flight during the upgrade is
//! refused (its client signs in again). From now on a family keeps at most
//! one seal, on the direct parent of its current token, until the grace passes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE refresh_tokens SET successor_seal = NULL WHERE successor_seal IS NOT NULL",
        )
        .await?;
        // The seal sweep reads sealed rows by rotation time; the partial index
        // holds only them (at most one per family), on PostgreSQL and SQLite alike.
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS idx_refresh_tokens_sealed \
             ON refresh_tokens (rotated_at) WHERE successor_seal IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS idx_refresh_tokens_sealed")
            .await?;
        Ok(())
    }
}

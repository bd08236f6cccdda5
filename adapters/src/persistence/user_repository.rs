//! Users on SeaORM.

use anyhow::Context;
use application::ports::{InsertUserError, UserRepository};
use async_trait::async_trait;
use domain::{PasswordHash, SessionId, Timestamp, User, UserId, Username};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, SqlErr};
use uuid::Uuid;

use super::entities::{login_failure, revoked_session, session, user};
use super::{Database, StoreContext};

/// [`UserRepository`] on PostgreSQL or SQLite.
#[derive(Debug, Clone)]
pub struct SeaUserRepository {
    db: Database,
}

impl SeaUserRepository {
    /// Users stored in `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl UserRepository for SeaUserRepository {
    #[tracing::instrument(
        name = "db.users.insert",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client", user = %u.id)
    )]
    async fn insert(&self, u: &User) -> Result<(), InsertUserError> {
        let row = user::ActiveModel {
            id: Set(*u.id.as_uuid()),
            username: Set(u.username.as_str().to_owned()),
            username_canonical: Set(u.username.canonical()),
            password_hash: Set(u.password_hash.as_str().to_owned()),
            created_at: Set(u.created_at.unix_millis()),
            updated_at: Set(u.created_at.unix_millis()),
        };
        let _turn = self.db.write_turn().await;
        match user::Entity::insert(row)
            .exec_without_returning(self.db.connection())
            .await
        {
            Ok(_) => Ok(()),
            // The unique index decides, also between concurrent registrations.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Err(InsertUserError::Duplicate)
            }
            Err(e) => Err(InsertUserError::Unexpected(super::store_error(
                e,
                "inserting a user",
            ))),
        }
    }

    #[tracing::instrument(
        name = "db.users.find_by_username",
        skip_all,
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn find_by_username(&self, username: &Username) -> anyhow::Result<Option<User>> {
        user::Entity::find()
            .filter(user::Column::UsernameCanonical.eq(username.canonical()))
            .one(self.db.connection())
            .await
            .store_context("finding a user by name")?
            .map(to_domain)
            .transpose()
    }

    #[tracing::instrument(
        name = "db.users.find_by_id",
        skip(self),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn find_by_id(&self, id: UserId) -> anyhow::Result<Option<User>> {
        user::Entity::find_by_id(*id.as_uuid())
            .one(self.db.connection())
            .await
            .store_context("finding a user by id")?
            .map(to_domain)
            .transpose()
    }

    #[tracing::instrument(
        name = "db.users.update_password_hash",
        skip(self, hash),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let now = now.unix_millis();
        let _turn = self.db.write_turn().await;
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash.as_str()))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(*id.as_uuid()))
            .exec(self.db.connection())
            .await
            .store_context("updating a password hash")?;
        Ok(())
    }

    #[tracing::instrument(
        name = "db.users.delete",
        skip(self),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn delete(&self, id: UserId, now: Timestamp) -> anyhow::Result<Option<Vec<SessionId>>> {
        let tx = self.db.write_transaction().await?;
        let Some(row) = user::Entity::find_by_id(*id.as_uuid())
            .lock_exclusive()
            .one(tx.txn())
            .await
            .store_context("finding the user")?
        else {
            return Ok(None);
        };
        // Every session whose access tokens may still be valid (an access
        // token never outlives its session): revoked or not, its revocation
        // must outlive the row.
        let sessions: Vec<Uuid> = session::Entity::find()
            .select_only()
            .column(session::Column::Id)
            .filter(session::Column::UserId.eq(*id.as_uuid()))
            .filter(session::Column::ExpiresAt.gt(now.unix_millis()))
            .lock_exclusive()
            .into_tuple()
            .all(tx.txn())
            .await
            .store_context("finding the user's sessions")?;
        if !sessions.is_empty() {
            let rows = sessions.iter().map(|sid| revoked_session::ActiveModel {
                session_id: Set(*sid),
                revoked_at: Set(now.unix_millis()),
            });
            revoked_session::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::column(revoked_session::Column::SessionId)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(tx.txn())
                .await
                .store_context("remembering the revoked sessions")?;
        }
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::Username.eq(row.username_canonical.clone()))
            .exec(tx.txn())
            .await
            .store_context("deleting the failed-login counters")?;
        // Sessions and their refresh tokens go by ON DELETE CASCADE.
        user::Entity::delete_by_id(*id.as_uuid())
            .exec(tx.txn())
            .await
            .store_context("deleting the user")?;
        tx.commit().await.store_context("committing the deletion")?;
        Ok(Some(
            sessions.into_iter().map(SessionId::from_uuid).collect(),
        ))
    }
}

fn to_domain(row: user::Model) -> anyhow::Result<User> {
    Ok(User {
        id: UserId::from_uuid(row.id),
        username: Username::parse(&row.username)
            .with_context(|| format!("stored username of user {} is invalid", row.id))?,
        password_hash: PasswordHash::new(row.password_hash),
        created_at: Timestamp::from_unix_millis(row.created_at),
    })
}

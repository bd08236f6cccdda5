//! Users on SeaORM.

use anyhow::Context;
use application::ports::{InsertUserError, UserRepository};
use async_trait::async_trait;
use domain::{PasswordHash, Timestamp, User, UserId, Username};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, SqlErr};

use super::Database;
use super::entities::user;

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
            Err(e) => Err(InsertUserError::Unexpected(
                anyhow::Error::new(e).context("inserting a user"),
            )),
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
            .context("finding a user by name")?
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
            .context("finding a user by id")?
            .map(to_domain)
            .transpose()
    }

    #[tracing::instrument(
        name = "db.users.update_password_hash",
        skip(self, hash),
        fields(db.system = self.db.system(), otel.kind = "client")
    )]
    async fn update_password_hash(&self, id: UserId, hash: &PasswordHash) -> anyhow::Result<()> {
        // The port carries no time: `updated_at` is bookkeeping, so the system clock will do.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let _turn = self.db.write_turn().await;
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash.as_str()))
            .col_expr(user::Column::UpdatedAt, Expr::value(now))
            .filter(user::Column::Id.eq(*id.as_uuid()))
            .exec(self.db.connection())
            .await
            .context("updating a password hash")?;
        Ok(())
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

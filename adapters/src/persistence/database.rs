//! The connection pool, on PostgreSQL or SQLite, and its health probe.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use application::ports::{HealthCheck, PoolStats};
use async_trait::async_trait;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How long a SQLite writer waits for another one (other processes included).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(15);
/// Pool size for SQLite files (WAL lets readers run beside the one writer).
const SQLITE_POOL: u32 = 8;
/// Pool size for PostgreSQL.
const POSTGRES_POOL: u32 = 16;
/// How long a request waits for a PostgreSQL connection before it fails.
/// sqlx keeps retrying a refused connection until then (it takes a refusal
/// for a server still starting), so with the database stopped this is how
/// long every request that needs it waits for its `500`: it must stay well
/// below `API_REQUEST_TIMEOUT` (10 s by default), or the client is cut off
/// without an answer instead.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a pooled PostgreSQL connection may take to answer its checkout ping.
const CHECKOUT_PING_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the health probe may take before the database counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Key of the advisory lock that serialises migrations across processes.
const MIGRATION_LOCK_KEY: i64 = 0x0061_7574_686d_6967; // "authmig"

/// A pooled connection to PostgreSQL (`postgres://`) or SQLite (`sqlite://`).
///
/// Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct Database {
    conn: DatabaseConnection,
    /// SQLite allows one writer at a time: writers of this process queue here
    /// instead of spinning in SQLite's busy handler (other processes still
    /// meet the busy timeout).
    write_gate: Option<Arc<Mutex<()>>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.conn.get_database_backend())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects to `url`: `postgres://user@host:port/db` or `sqlite://path/to/file.db`
    /// (relative paths are relative to the working directory).
    ///
    /// For SQLite the parent directory and the file are created when missing,
    /// and every connection runs in WAL mode with foreign keys on and a busy timeout.
    ///
    /// # Errors
    /// An unsupported URL, or the database cannot be reached.
    /// [`Self::connect`] for commands that only read (`authd audit`): a
    /// SQLite file that does not exist is an error instead of a new, empty
    /// database (a mistyped `DATABASE_URL` must not create one).
    ///
    /// # Errors
    /// No such SQLite file; as [`Self::connect`].
    pub async fn open_existing(url: &str) -> anyhow::Result<Self> {
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            let rest = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            let path = rest.split_once('?').map_or(rest, |(path, _)| path);
            let in_memory = path.is_empty() || path == ":memory:";
            if !in_memory && !Path::new(path).is_file() {
                anyhow::bail!("no SQLite database at {path}: is DATABASE_URL right?");
            }
        }
        Self::connect(url).await
    }

    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut opts = ConnectOptions::new(url.to_owned());
            opts.max_connections(POSTGRES_POOL)
                .min_connections(0)
                // A pooled connection whose flow died silently (a NAT or
                // firewall flush, a failover) would hang its next query until
                // the kernel gives up, minutes later: each checkout pings, as
                // sqlx does by default, but with a timeout, and a connection
                // that does not answer is closed and replaced.
                .test_before_acquire(false)
                .map_sqlx_postgres_before_acquire(|conn, _meta| {
                    Box::pin(async move {
                        use sea_orm::sqlx::Connection as _;
                        Ok(tokio::time::timeout(CHECKOUT_PING_TIMEOUT, conn.ping())
                            .await
                            .is_ok_and(|pong| pong.is_ok()))
                    })
                })
                // Also bounds a connection attempt: SeaORM gives sqlx one
                // deadline for both (its connect_timeout is the same knob).
                .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
                .sqlx_logging(false);
            let conn = sea_orm::Database::connect(opts)
                .await
                .context("connecting to PostgreSQL")?;
            Ok(Self {
                conn,
                write_gate: None,
            })
        } else if url.starts_with("sqlite:") {
            let (url, in_memory) = sqlite_url(url)?;
            let mut opts = ConnectOptions::new(url);
            // Every connection to `:memory:` is a database of its own: keep one.
            opts.max_connections(if in_memory { 1 } else { SQLITE_POOL })
                .min_connections(if in_memory { 1 } else { 0 })
                .acquire_timeout(Duration::from_secs(30))
                .sqlx_logging(false)
                .map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .foreign_keys(true)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                });
            if in_memory {
                // The one connection must live as long as the pool.
                opts.idle_timeout(None).max_lifetime(None);
            }
            let conn = sea_orm::Database::connect(opts)
                .await
                .context("opening the SQLite database")?;
            Ok(Self {
                conn,
                write_gate: Some(Arc::new(Mutex::new(()))),
            })
        } else {
            anyhow::bail!("unsupported DATABASE_URL scheme (expected postgres:// or sqlite://)")
        }
    }

    /// Applies pending migrations; a no-op when there are none. Safe to run
    /// from several processes at once (they take turns).
    ///
    /// # Errors
    /// A migration failed (nothing of it is applied then).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let tx = self
            .begin_write()
            .await
            .context("starting the migration transaction")?;
        if self.is_postgres() {
            tx.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .await
            .context("taking the migration lock")?;
        }
        Migrator::up(tx.txn(), None)
            .await
            .context("applying migrations")?;
        tx.commit().await.context("committing migrations")
    }

    /// Whether this is PostgreSQL (otherwise SQLite).
    pub fn is_postgres(&self) -> bool {
        self.conn.get_database_backend() == DbBackend::Postgres
    }

    /// The database system as OpenTelemetry names it (`db.system` of the
    /// database call spans): `postgresql` or `sqlite`.
    pub fn system(&self) -> &'static str {
        if self.is_postgres() {
            "postgresql"
        } else {
            "sqlite"
        }
    }

    /// The SeaORM connection (pool).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Connection counts of the pool (for the pool gauges).
    pub fn pool_stats(&self) -> PoolStats {
        fn stats<DB: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<DB>) -> PoolStats {
            PoolStats {
                size: pool.size(),
                idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                max: pool.options().get_max_connections(),
            }
        }
        if self.is_postgres() {
            stats(self.conn.get_postgres_connection_pool())
        } else {
            stats(self.conn.get_sqlite_connection_pool())
        }
    }

    /// Waits for this process's turn to write (on SQLite; at once on
    /// PostgreSQL). A single-statement write outside [`Self::begin_write`]
    /// holds it while the statement runs, so it queues here behind a rotation
    /// rather than in SQLite's busy timeout.
    pub(crate) async fn write_turn(&self) -> Option<OwnedMutexGuard<()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        }
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock
    /// at once (`BEGIN IMMEDIATE`, after this process's other writers), so a
    /// read-then-write transaction can never fail halfway on a busy database.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, sea_orm::DbErr> {
        let gate = self.write_turn().await;
        let options = TransactionOptions {
            sqlite_transaction_mode: gate.as_ref().map(|_| SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let txn = self.conn.begin_with_options(options).await?;
        Ok(WriteTx { txn, _gate: gate })
    }

    /// [`Self::begin_write`], its error said for the logs and, when the
    /// database cannot be reached (no connection from the pool), marked so
    /// (`503`, not `500`: the soak found a passkey login answered `500` while
    /// its process's database flows were frozen).
    pub(crate) async fn write_transaction(&self) -> anyhow::Result<WriteTx> {
        self.begin_write()
            .await
            .map_err(|e| super::store_error(e, "starting a transaction"))
    }
}

/// A write transaction (see [`Database::begin_write`]); rolled back on drop.
pub(crate) struct WriteTx {
    // Field order matters: the transaction ends before the gate opens.
    txn: DatabaseTransaction,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// The transaction, for queries.
    pub(crate) fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Runs a statement without parameters.
    pub(crate) async fn execute_unprepared(
        &self,
        sql: &str,
    ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), sea_orm::DbErr> {
        self.txn.commit().await
    }
}

#[async_trait]
impl HealthCheck for Database {
    #[tracing::instrument(name = "db.ping", skip_all, fields(db.system = self.system(), otel.kind = "client"))]
    async fn ping(&self) -> anyhow::Result<()> {
        tokio::time::timeout(PING_TIMEOUT, self.conn.execute_unprepared("SELECT 1"))
            .await
            .context("the database did not answer in time")?
            .context("the database did not answer")?;
        Ok(())
    }
}

/// Normalises a SQLite URL: creates the file's directory and asks for the
/// file to be created (`mode=rwc`) unless a mode is given. Returns the URL and
/// whether it is an in-memory database.
fn sqlite_url(url: &str) -> anyhow::Result<(String, bool)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    if in_memory {
        return Ok((url.to_owned(), true));
    }
    if let Some(dir) = Path::new(path).parent() {
        crate::private_files::create_private_dir(dir)
            .with_context(|| format!("creating the database directory {}", dir.display()))?;
    }
    let has_mode = query.split('&').any(|kv| kv.starts_with("mode="));
    if !has_mode || query.split('&').any(|kv| kv == "mode=rwc") {
        create_private_file(Path::new(path))
            .with_context(|| format!("creating the database file {path}"))?;
    }
    let url = match (query.is_empty(), has_mode) {
        (_, true) => url.to_owned(),
        (true, false) => format!("sqlite://{path}?mode=rwc"),
        (false, false) => format!("sqlite://{path}?{query}&mode=rwc"),
    };
    Ok((url, false))
}

/// Creates an empty database file readable by its owner only (password
/// hashes, token hashes and the audit trail live in it), whatever the umask;
/// SQLite gives its `-wal` and `-shm` files the same mode. An existing file
/// that others may read or write is tightened to 0600, with a warning
/// (security review 2, finding 10: it was used silently).
fn create_private_file(path: &Path) -> std::io::Result<()> {
    match crate::private_files::write_new(path, b"", 0o600) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for file in [
                path.to_owned(),
                sidecar(path, "-wal"),
                sidecar(path, "-shm"),
            ] {
                tighten(&file)?;
            }
            Ok(())
        }
        other => other,
    }
}

/// `path` with `suffix` appended (SQLite's `-wal` and `-shm` files).
fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Takes group and other permissions away from an existing file.
#[cfg(unix)]
fn tighten(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        tracing::warn!(
            path = %path.display(),
            was = format_args!("{mode:04o}"),
            "the database file was open to other users: it is now owner-only"
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sqlite_url;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = std::env::temp_dir().join(format!("authd-url-{}", std::process::id()));
        let file = dir.join("sub/x.db");
        let url = format!("sqlite://{}", file.display());
        let (normalised, mem) = sqlite_url(&url).unwrap();
        assert!(!mem);
        assert_eq!(normalised, format!("{url}?mode=rwc"));
        assert!(dir.join("sub").is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode =
                |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&file), 0o600, "the database file is the owner's only");
            assert_eq!(mode(&dir.join("sub")), 0o700);
        }
        assert_eq!(
            sqlite_url(&format!("{url}?mode=ro")).unwrap().0,
            format!("{url}?mode=ro")
        );
        assert!(sqlite_url("sqlite::memory:").unwrap().1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! Migrations and the health check.

use super::*;

integration_tests::on_both!(
    crate::persistence::database;
    migrations_are_idempotent,
    health_check_answers,
);

fn migration_count() -> i64 {
    use migration::MigratorTrait as _;
    i64::try_from(migration::Migrator::migrations().len()).expect("a few migrations")
}

async fn migrations_are_idempotent(db: Database) {
    // `db` is migrated already: again is a no-op, and the schema works afterwards.
    db.migrate().await.expect("second run");
    db.migrate().await.expect("third run");
    assert_eq!(count_rows(&db, "seaql_migrations").await, migration_count());
    for table in [
        "users",
        "sessions",
        "refresh_tokens",
        "login_failures",
        "audit_events",
        "email_addresses",
        "mail_tokens",
        "mail_outbox",
    ] {
        assert_eq!(count_rows(&db, table).await, 0, "{table}");
    }
    stored_user(&db, "mallory").await;
}

async fn health_check_answers(db: Database) {
    db.ping().await.expect("ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn migrations_apply_to_an_empty_database_from_two_processes_at_once() {
    for url in [fresh_sqlite_url(), fresh_postgres_url().await] {
        let a = Database::connect(&url).await.unwrap();
        let b = Database::connect(&url).await.unwrap();
        let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
        ra.expect("first migrator");
        rb.expect("second migrator");
        assert_eq!(
            count_rows(&a, "seaql_migrations").await,
            migration_count(),
            "{url}"
        );
        stored_user(&b, "nina").await;
    }
}

#[tokio::test]
async fn sqlite_creates_directory_and_file() {
    let url = fresh_sqlite_url();
    let path = url.strip_prefix("sqlite://").unwrap();
    let nested = format!("{}/nested/deeper/auth.db", path.trim_end_matches(".db"));
    let db = Database::connect(&format!("sqlite://{nested}"))
        .await
        .expect("creates");
    db.migrate().await.unwrap();
    assert!(std::path::Path::new(&nested).is_file());
    // WAL mode and foreign keys are on.
    let mode = db
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mode.try_get_by_index::<String>(0).unwrap(), "wal");
    let fk = db
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA foreign_keys",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fk.try_get_by_index::<i32>(0).unwrap(), 1);
}

/// Security review 2, finding 10: an existing database file that others may
/// read (0644, say, copied in by hand) is made owner-only at start instead
/// of being used silently.
#[cfg(unix)]
#[tokio::test]
async fn an_existing_database_file_open_to_others_is_made_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let url = fresh_sqlite_url();
    let path = url
        .strip_prefix("sqlite://")
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let path = format!("{}-loose.db", path.trim_end_matches(".db"));
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = Database::connect(&format!("sqlite://{path}"))
        .await
        .expect("opens");
    db.migrate().await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}

//! `authd audit` on a database with a known trail: the binary prints exactly
//! the stored rows as JSON lines, newest first, and its filters select them;
//! an unknown kind is a usage error (exit 2) that lists the valid ones.
//! Which requests leave rows is tested in-process (`api/audit.rs`).

use std::path::Path;
use std::time::Duration;

use adapters::persistence::{AuditFilter, Database, SeaAuditLog};
use adapters::system::SystemClock;
use application::ClientInfo;
use application::ports::{Clock as _, SecurityEvent, SecurityEventKind as K};
use domain::{SessionId, UserId};
use integration_tests::process;
use serde_json::Value;

const PHONE: (&str, &str) = ("203.0.113.7", "phone/1.0");
const THIEF: (&str, &str) = ("198.51.100.9", "replayer/6.6");

fn from(client: (&str, &str)) -> ClientInfo {
    ClientInfo {
        ip: Some(client.0.into()),
        user_agent: Some(client.1.into()),
        key: None,
    }
}

/// Runs `authd audit ARGS` on `database_url`; returns (exit code, stdout, stderr).
fn authd_audit(dir: &Path, database_url: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(crate::authd())
        .arg("audit")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        // No `.env` of the repository.
        .current_dir(dir)
        .output()
        .expect("running authd audit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authd_audit_prints_the_stored_rows_as_json_lines() {
    let dir = process::temp_dir("authd-audit-cli").unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("authd.db").display());
    let db = Database::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let log = SeaAuditLog::new(db);
    let alice = UserId::from_uuid(uuid::Uuid::new_v4());
    let s1 = SessionId::from_uuid(uuid::Uuid::new_v4());
    let now = SystemClock.now();
    let ago = |secs: u64| now.minus(Duration::from_secs(secs));
    for event in [
        SecurityEvent::new(K::LoginFailed, ago(2 * 86_400), &from(THIEF)).username("eve"),
        SecurityEvent::new(K::LoginFailed, ago(7_200), &from(PHONE)).user(alice),
        SecurityEvent::new(K::LoginSucceeded, ago(3_600), &from(PHONE))
            .user(alice)
            .session(s1),
        SecurityEvent::new(K::ReuseDetected, ago(1), &from(THIEF))
            .user(alice)
            .session(s1)
            .revoked(1),
    ] {
        log.append(&event).await.unwrap();
    }
    let stored: Vec<Value> = log
        .recent(&AuditFilter::default())
        .await
        .unwrap()
        .iter()
        .map(adapters::persistence::StoredAuditEvent::to_json)
        .collect();
    assert_eq!(stored.len(), 4);

    let lines = |args: &[&str]| -> Vec<Value> {
        let (code, stdout, stderr) = authd_audit(&dir, &url, args);
        assert_eq!(code, 0, "authd audit {args:?}: {stderr}");
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    // Everything, newest first, exactly the stored rows.
    let all = lines(&[]);
    assert_eq!(all, stored);
    let kinds: Vec<_> = all.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "reuse_detected",
            "login_succeeded",
            "login_failed",
            "login_failed"
        ]
    );
    let reuse = &all[0];
    assert_eq!(reuse["user_id"], alice.to_string());
    assert_eq!(reuse["session_id"], s1.to_string());
    assert_eq!(reuse["client_ip"], THIEF.0);
    assert_eq!(reuse["user_agent"], THIEF.1);
    assert_eq!(reuse["sessions_revoked"], 1);
    assert!(reuse["at"].as_str().unwrap().ends_with('Z'));

    // Filters.
    let (uid, sid) = (alice.to_string(), s1.to_string());
    assert_eq!(
        lines(&["--kind", "reuse_detected", "--user", &uid]),
        stored[..1]
    );
    assert_eq!(lines(&["--session", &sid]), stored[..2]);
    assert_eq!(lines(&["--since", "24h"]), stored[..3]);
    assert_eq!(lines(&["--limit", "1"]), stored[..1]);
    assert_eq!(
        lines(&["--kind", "login_failed", "--since", "3d"]),
        stored[2..]
    );
    assert!(lines(&["--kind", "logout"]).is_empty());

    // An unknown kind: a usage error that lists the valid ones.
    let (code, stdout, stderr) = authd_audit(&dir, &url, &["--kind", "reuse"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(
            "valid kinds: login_succeeded, login_failed, login_throttled, logout, \
             session_revoked, reuse_detected"
        ),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Security review 2, finding 11: `authd audit` only reads: a mistyped
/// `DATABASE_URL` is an error, and no empty database is left behind.
#[test]
fn authd_audit_does_not_create_a_database() {
    let dir = process::temp_dir("authd-audit-missing").unwrap();
    let missing = dir.join("typo.db");
    let url = format!("sqlite://{}", missing.display());
    let (code, _, stderr) = authd_audit(&dir, &url, &[]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("no SQLite database"), "{stderr}");
    assert!(
        !missing.exists(),
        "authd audit created {}",
        missing.display()
    );
}

//! The security audit trail over HTTP: which requests leave an `audit_events`
//! row, with the client address a trusted proxy forwarded and the
//! `User-Agent`; and the retention prune. `authd audit` reading it back is
//! a process test (`bin/tests/processes/audit_cli.rs`).

use std::time::Duration;

use adapters::persistence::{AuditFilter, SeaAuditLog, StoredAuditEvent};
use application::ClientInfo;
use application::ports::{SecurityEvent, SecurityEventKind as K};
use authd::Config;
use domain::{SessionId, UserId};
use integration_tests::app::{
    Backend, PASSWORD, TestApp, TestResponse, spawn_app, spawn_app_with_seams,
};
use serde_json::json;
use uuid::Uuid;

integration_tests::on_both!(
    std::future::ready;
    audited_requests_leave_rows,
    names_that_match_no_user_are_not_kept,
    housekeeping_prunes_events_past_the_retention,
);

/// The phone: the client that logs in.
const PHONE: (&str, &str) = ("203.0.113.7", "phone/1.0");
/// The attacker that replays a stolen refresh token.
const THIEF: (&str, &str) = ("198.51.100.9", "replayer/6.6");

/// An app behind a trusted proxy (loopback) with no refresh grace.
async fn app_behind_proxy(backend: Backend) -> TestApp {
    spawn_app(
        backend,
        Config {
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            refresh_reuse_grace: Duration::ZERO,
            ..Config::default()
        },
    )
    .await
}

async fn login_from(app: &TestApp, from: (&str, &str), password: &str) -> TestResponse {
    app.post("/api/login")
        .header("x-forwarded-for", from.0)
        .header("user-agent", from.1)
        .json(&json!({"username": "alice", "password": password}))
        .send()
        .await
}

async fn refresh_from(app: &TestApp, from: (&str, &str), token: &str) -> TestResponse {
    app.post("/api/refresh")
        .header("x-forwarded-for", from.0)
        .header("user-agent", from.1)
        .refresh_cookie(token)
        .send()
        .await
}

/// The id of the session an access token belongs to.
async fn session_of(app: &TestApp, access: &str) -> SessionId {
    let list = app.get("/api/sessions").bearer(access).send().await.json();
    let id = list
        .as_array()
        .and_then(|l| l.iter().find(|s| s["current"] == true))
        .and_then(|s| s["id"].as_str())
        .unwrap_or_else(|| panic!("no current session in {list}"));
    SessionId::from_uuid(Uuid::parse_str(id).unwrap())
}

/// Every stored row, newest first.
async fn rows(app: &TestApp) -> Vec<StoredAuditEvent> {
    SeaAuditLog::new(app.running.database.clone())
        .recent(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .expect("reading audit_events")
}

fn kinds(rows: &[StoredAuditEvent]) -> Vec<K> {
    rows.iter().map(|r| r.event.kind).collect()
}

fn from(client: (&str, &str)) -> ClientInfo {
    ClientInfo {
        ip: Some(client.0.into()),
        user_agent: Some(client.1.into()),
        key: None,
    }
}

/// Security review, finding 5: a password typed into the username field must
/// not land in `audit_events`; the name is kept as a keyed pseudonym.
pub async fn names_that_match_no_user_are_not_kept(backend: Backend) {
    let app = app_behind_proxy(backend).await;
    for typed in ["Tr0ub4dor&3-secret", "tr0ub4dor.secret"] {
        app.login(typed, PASSWORD)
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let all = rows(&app).await;
    assert_eq!(kinds(&all), [K::LoginFailed, K::LoginFailed]);
    for row in &all {
        let kept = row.event.username.clone().expect("a name is kept");
        assert!(
            kept.starts_with('#') && !kept.contains("tr0ub4dor"),
            "the typed name was stored: {kept}"
        );
    }
    assert_ne!(all[0].event.username, all[1].event.username);
    let conn = app.running.database.connection();
    use sea_orm::ConnectionTrait as _;
    let raw = conn
        .query_all_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT username FROM audit_events",
        ))
        .await
        .unwrap();
    for r in raw {
        let stored: Option<String> = r.try_get_by_index(0).unwrap();
        assert!(!stored.unwrap_or_default().contains("tr0ub4dor"));
    }
}

pub async fn audited_requests_leave_rows(backend: Backend) {
    let app = app_behind_proxy(backend).await;
    let r = app.register("alice", PASSWORD).await;
    let alice = UserId::from_uuid(Uuid::parse_str(r.json()["id"].as_str().unwrap()).unwrap());
    assert!(rows(&app).await.is_empty(), "registration is not audited");

    // A wrong password: the username, the forwarded address and the agent.
    login_from(&app, PHONE, "wrong password")
        .await
        .assert_problem(401, "invalid_credentials");
    let all = rows(&app).await;
    assert_eq!(kinds(&all), [K::LoginFailed]);
    let failed = &all[0].event;
    assert_eq!(failed.username.as_deref(), Some("alice"));
    assert_eq!(failed.user, Some(alice));
    assert_eq!(failed.session, None);
    assert_eq!(failed.client, from(PHONE));

    // A login: user and session.
    let r = login_from(&app, PHONE, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let first = r.refresh_cookie().unwrap();
    let s1 = session_of(&app, &r.access_token()).await;
    let all = rows(&app).await;
    assert_eq!(kinds(&all), [K::LoginSucceeded, K::LoginFailed]);
    let login = &all[0].event;
    assert_eq!(
        (login.user, login.session, login.username.as_deref()),
        (Some(alice), Some(s1), Some("alice"))
    );
    assert_eq!(login.client, from(PHONE));
    assert!(all[0].id > all[1].id && login.at >= failed.at);

    // Routine refreshes (and a garbage token) are only counted.
    let r = refresh_from(&app, PHONE, &first).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = r.refresh_cookie().unwrap();
    let r = refresh_from(&app, PHONE, &second).await;
    assert_eq!(r.status, 200, "{}", r.text);
    refresh_from(&app, PHONE, "not-a-token")
        .await
        .assert_problem(401, "refresh_invalid");
    assert_eq!(rows(&app).await.len(), 2, "no row for routine refreshes");

    // The first token replayed by someone else after the (zero) grace:
    // exactly one row, of the family, with the replaying client.
    refresh_from(&app, THIEF, &first)
        .await
        .assert_problem(401, "refresh_reused");
    let reuse: Vec<_> = rows(&app)
        .await
        .into_iter()
        .filter(|r| r.event.kind == K::ReuseDetected)
        .collect();
    assert_eq!(reuse.len(), 1, "{reuse:?}");
    let reuse = &reuse[0].event;
    assert_eq!(reuse.session, Some(s1));
    assert_eq!(reuse.user, Some(alice));
    assert_eq!(reuse.client, from(THIEF));
    assert_eq!(reuse.sessions_revoked, 1);
    // The revoked family's tokens are refused from now on, without new rows.
    refresh_from(&app, PHONE, &second)
        .await
        .assert_problem(401, "session_revoked");
    assert_eq!(rows(&app).await.len(), 3);

    // Three more sessions; the second revokes the third; then logout.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let r = login_from(&app, PHONE, PASSWORD).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let id = session_of(&app, &r.access_token()).await;
        sessions.push((r.access_token(), r.refresh_cookie().unwrap(), id));
    }
    let (s2_access, s2_refresh, s2) = sessions[0].clone();
    let s3 = sessions[1].2;
    let r = app
        .delete(&format!("/api/sessions/{s3}"))
        .header("x-forwarded-for", PHONE.0)
        .header("user-agent", PHONE.1)
        .bearer(&s2_access)
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app
        .post("/api/logout")
        .header("x-forwarded-for", PHONE.0)
        .header("user-agent", PHONE.1)
        .refresh_cookie(&s2_refresh)
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    let all = rows(&app).await;
    assert_eq!(
        kinds(&all),
        [
            K::Logout,
            K::SessionRevoked,
            K::LoginSucceeded,
            K::LoginSucceeded,
            K::LoginSucceeded,
            K::ReuseDetected,
            K::LoginSucceeded,
            K::LoginFailed,
        ]
    );
    let (logout, revoked) = (&all[0].event, &all[1].event);
    assert_eq!((logout.user, logout.session), (Some(alice), Some(s2)));
    assert_eq!(logout.sessions_revoked, 2, "the second and the fourth");
    assert_eq!(logout.client, from(PHONE));
    assert_eq!((revoked.user, revoked.session), (Some(alice), Some(s3)));
    assert_eq!(revoked.sessions_revoked, 1);
    assert_eq!(revoked.client, from(PHONE));
}

pub async fn housekeeping_prunes_events_past_the_retention(backend: Backend) {
    let app = spawn_app_with_seams(
        backend,
        Config {
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            ..Config::default()
        },
        |seams| {
            // The pass at start would race the rows written below (CI saw it).
            seams.scheduled_prune = false;
        },
    )
    .await;
    app.register("alice", PASSWORD).await;
    let r = login_from(&app, PHONE, PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let log = SeaAuditLog::new(app.running.database.clone());
    let now = app.running.use_cases.access.now();
    let retention = app.config.audit_retention;
    assert_eq!(
        retention,
        Duration::from_secs(90 * 86_400),
        "AUDIT_RETENTION default"
    );
    let hour = Duration::from_secs(3600);
    for age in [
        retention + hour,
        retention + 2 * hour,
        retention + 30 * hour,
    ] {
        log.append(
            &SecurityEvent::new(K::LoginFailed, now.minus(age), &from(THIEF)).username("old"),
        )
        .await
        .unwrap();
    }
    log.append(
        &SecurityEvent::new(K::LoginFailed, now.minus(retention - hour), &from(THIEF))
            .username("kept"),
    )
    .await
    .unwrap();
    assert_eq!(rows(&app).await.len(), 5);

    // Batches of 2: the loop runs until a short batch.
    let pruned = app
        .running
        .use_cases
        .housekeeping
        .prune(Duration::from_secs(7 * 86_400), 2)
        .await
        .expect("housekeeping");
    assert_eq!(pruned.audit_events, 3);
    let left = rows(&app).await;
    assert_eq!(kinds(&left), [K::LoginSucceeded, K::LoginFailed]);
    assert_eq!(left[1].event.username.as_deref(), Some("kept"));
    let pruned = app
        .running
        .use_cases
        .housekeeping
        .prune(Duration::from_secs(7 * 86_400), 2)
        .await
        .unwrap();
    assert_eq!(pruned.audit_events, 0);
}

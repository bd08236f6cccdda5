//! The audit trail, and writes beside rotations.

use super::rotation::concurrently;
use super::*;

integration_tests::on_both!(
    crate::persistence::database;
    audit_log_filters_newest_first,
    audit_prune_deletes_the_oldest_in_batches,
    audit_rows_outlive_sessions_and_users,
    writes_beside_fifty_rotations_all_land,
);

fn client(ip: &str, agent: &str) -> ClientInfo {
    ClientInfo {
        ip: Some(ip.into()),
        user_agent: Some(agent.into()),
        key: None,
    }
}

fn kinds(rows: &[adapters::persistence::StoredAuditEvent]) -> Vec<SecurityEventKind> {
    rows.iter().map(|r| r.event.kind).collect()
}

async fn audit_log_filters_newest_first(db: Database) {
    use SecurityEventKind as K;
    let log = SeaAuditLog::new(db.clone());
    let (alice, bob) = (
        UserId::from_uuid(Uuid::new_v4()),
        UserId::from_uuid(Uuid::new_v4()),
    );
    let (s1, s2, s3) = (
        SessionId::from_uuid(Uuid::new_v4()),
        SessionId::from_uuid(Uuid::new_v4()),
        SessionId::from_uuid(Uuid::new_v4()),
    );
    let phone = client("203.0.113.7", "phone/1.0");
    let long_agent = format!("{}\0tail", "x".repeat(600));
    let events = [
        SecurityEvent::new(K::LoginSucceeded, t(0), &phone)
            .username("Alice")
            .user(alice)
            .session(s1),
        SecurityEvent::new(K::LoginFailed, t(1), &client("198.51.100.9", &long_agent))
            .username("Mal\0lory"),
        SecurityEvent::new(K::Logout, t(2), &phone)
            .user(alice)
            .session(s1)
            .revoked(2),
        // Same millisecond as the logout, written after it.
        SecurityEvent::new(K::ReuseDetected, t(2), &client("198.51.100.9", "curl/8"))
            .user(bob)
            .session(s2)
            .revoked(1),
        SecurityEvent::new(K::SessionRevoked, t(3), &ClientInfo::default())
            .user(alice)
            .session(s3)
            .revoked(1),
    ];
    for e in &events {
        log.append(e).await.expect("append");
    }

    let all = log.recent(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        kinds(&all),
        [
            K::SessionRevoked,
            K::ReuseDetected,
            K::Logout,
            K::LoginFailed,
            K::LoginSucceeded
        ],
        "newest first, ties in reverse order of writing"
    );
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    // Stored as given (the username is case-folded by the event itself).
    assert_eq!(all[4].event, events[0]);
    assert_eq!(all[4].event.username.as_deref(), Some("alice"));
    assert_eq!(all[2].event, events[2]);
    assert_eq!(all[1].event, events[3]);
    assert_eq!(all[0].event, events[4]);
    // Client text fit for the column: no NUL, the user agent cut at 512 characters.
    let failed = &all[3].event;
    assert_eq!(failed.username.as_deref(), Some("mallory"));
    assert_eq!(failed.user, None);
    assert_eq!(failed.client.ip.as_deref(), Some("198.51.100.9"));
    assert_eq!(
        failed.client.user_agent.as_deref(),
        Some("x".repeat(512).as_str())
    );

    let of = |filter: AuditFilter| {
        let log = log.clone();
        async move { kinds(&log.recent(&filter).await.unwrap()) }
    };
    assert_eq!(
        of(AuditFilter {
            user: Some(alice),
            ..AuditFilter::default()
        })
        .await,
        [K::SessionRevoked, K::Logout, K::LoginSucceeded]
    );
    assert_eq!(
        of(AuditFilter {
            session: Some(s2),
            ..AuditFilter::default()
        })
        .await,
        [K::ReuseDetected]
    );
    assert_eq!(
        of(AuditFilter {
            kind: Some(K::LoginFailed),
            ..AuditFilter::default()
        })
        .await,
        [K::LoginFailed]
    );
    assert_eq!(
        of(AuditFilter {
            since: Some(t(2)),
            ..AuditFilter::default()
        })
        .await,
        [K::SessionRevoked, K::ReuseDetected, K::Logout]
    );
    assert_eq!(
        of(AuditFilter {
            limit: 2,
            ..AuditFilter::default()
        })
        .await,
        [K::SessionRevoked, K::ReuseDetected]
    );
    assert_eq!(
        of(AuditFilter {
            user: Some(alice),
            session: Some(s1),
            kind: Some(K::Logout),
            since: Some(t(1)),
            limit: 10,
        })
        .await,
        [K::Logout]
    );
    assert_eq!(
        of(AuditFilter {
            user: Some(bob),
            kind: Some(K::Logout),
            ..AuditFilter::default()
        })
        .await,
        []
    );

    // The JSON line of `authd audit`.
    let line = all[1].to_json();
    assert_eq!(line["id"], all[1].id);
    assert_eq!(line["kind"], "reuse_detected");
    assert_eq!(line["at_ms"], t(2).unix_millis());
    assert_eq!(line["at"], "2027-01-15T08:00:02.000Z");
    assert_eq!(line["user_id"], bob.to_string());
    assert_eq!(line["session_id"], s2.to_string());
    assert_eq!(line["sessions_revoked"], 1);
    assert_eq!(line["client_ip"], "198.51.100.9");
    assert_eq!(line["user_agent"], "curl/8");
    assert_eq!(line["username"], serde_json::Value::Null);
}

async fn audit_prune_deletes_the_oldest_in_batches(db: Database) {
    let log = SeaAuditLog::new(db.clone());
    // Written out of time order: the prune goes by time, not by id.
    for s in [3, 0, 6, 1, 4, 2, 5] {
        let e = SecurityEvent::new(SecurityEventKind::LoginFailed, t(s), &ClientInfo::default())
            .username(&format!("user{s}"));
        log.append(&e).await.unwrap();
    }
    let left = |log: SeaAuditLog| async move {
        let mut at: Vec<i64> = log
            .recent(&AuditFilter::default())
            .await
            .unwrap()
            .iter()
            .map(|r| r.event.at.unix_seconds() - 1_800_000_000)
            .collect();
        at.sort_unstable();
        at
    };
    // Older than t(5): five rows, two per batch, the oldest first.
    assert_eq!(log.prune(t(5), 2).await.unwrap(), 2);
    assert_eq!(left(log.clone()).await, [2, 3, 4, 5, 6]);
    assert_eq!(log.prune(t(5), 2).await.unwrap(), 2);
    assert_eq!(left(log.clone()).await, [4, 5, 6]);
    assert_eq!(log.prune(t(5), 2).await.unwrap(), 1);
    assert_eq!(log.prune(t(5), 2).await.unwrap(), 0);
    assert_eq!(left(log.clone()).await, [5, 6], "newer rows stay");
    assert_eq!(count_rows(&db, "audit_events").await, 2);
}

async fn audit_rows_outlive_sessions_and_users(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let log = SeaAuditLog::new(db.clone());
    let policy = TokenPolicy::default();
    let owner = stored_user(&db, "victor").await;
    let family = login(&store, owner.id, t(0), &policy).await;
    let phone = client("192.0.2.1", "phone/1.0");
    log.append(
        &SecurityEvent::new(SecurityEventKind::LoginSucceeded, t(0), &phone)
            .username("victor")
            .user(owner.id)
            .session(family.session.id),
    )
    .await
    .unwrap();
    assert!(
        store
            .revoke(family.session.id, RevokeReason::ReuseDetected, t(5))
            .await
            .unwrap()
    );
    log.append(
        &SecurityEvent::new(SecurityEventKind::ReuseDetected, t(5), &phone)
            .user(owner.id)
            .session(family.session.id)
            .revoked(1),
    )
    .await
    .unwrap();

    // The session is pruned, then the user deleted (sessions cascade).
    assert_eq!(store.prune(t(1_000_000), 100).await.unwrap(), 1);
    let delete = Query::delete()
        .from_table(Alias::new("users"))
        .and_where(Expr::col(Alias::new("id")).eq(*owner.id.as_uuid()))
        .to_owned();
    let stmt = db.connection().get_database_backend().build(&delete);
    let res = db
        .connection()
        .execute_raw(stmt)
        .await
        .expect("delete the user");
    assert_eq!(res.rows_affected(), 1);
    assert_eq!(count_rows(&db, "users").await, 0);
    assert_eq!(count_rows(&db, "sessions").await, 0);

    let rows = log
        .recent(&AuditFilter {
            session: Some(family.session.id),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        kinds(&rows),
        [
            SecurityEventKind::ReuseDetected,
            SecurityEventKind::LoginSucceeded
        ]
    );
    assert!(rows.iter().all(|r| r.event.user == Some(owner.id)));
}

/// Single-statement writes (audit rows, throttle counts, a revocation) racing
/// fifty rotations of one token: every write lands, exactly one rotation
/// wins, and nothing deadlocks (on SQLite they all queue for the one writer).
async fn writes_beside_fifty_rotations_all_land(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let log = SeaAuditLog::new(db.clone());
    let throttle = Arc::new(SeaLoginThrottle::new(
        db.clone(),
        ThrottlePolicy {
            max_failures: 100,
            window: Duration::from_secs(60),
        },
    ));
    let policy = TokenPolicy::default();
    let owner = stored_user(&db, "wendy").await.id;
    let rotated = login(&store, owner, t(0), &policy).await;
    let other = login(&store, owner, t(0), &policy).await;
    let key = ThrottleKey {
        username: "wendy".into(),
        client: "10.0.0.1".into(),
    };
    let phone = client("192.0.2.9", "phone/2.0");
    let writes: Vec<_> = (0..40)
        .map(|i| {
            let (log, throttle, key, phone) =
                (log.clone(), throttle.clone(), key.clone(), phone.clone());
            tokio::spawn(async move {
                let event = SecurityEvent::new(SecurityEventKind::LoginFailed, t(1), &phone)
                    .username("wendy");
                log.append(&event).await.expect("append");
                if i % 2 == 0 {
                    throttle.take_slot(&key, t(1)).await.expect("take_slot");
                }
            })
        })
        .collect();
    let revoke = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .revoke(other.session.id, RevokeReason::Logout, t(1))
                .await
        })
    };
    let results = concurrently(&store, rotated.tokens[0].hash, t(1), policy, 50).await;
    for w in writes {
        w.await.expect("write task");
    }
    assert!(
        revoke.await.expect("revoke task").expect("revoke"),
        "the live session was revoked"
    );
    let rotations = results
        .iter()
        .filter(|(_, o)| matches!(o, RefreshOutcome::Rotated { .. }))
        .count();
    assert_eq!(rotations, 1);
    assert_eq!(count_rows(&db, "audit_events").await, 40);
    let blocked = SeaLoginThrottle::new(
        db.clone(),
        ThrottlePolicy {
            max_failures: 20,
            window: Duration::from_secs(60),
        },
    );
    assert!(
        blocked.take_slot(&key, t(2)).await.unwrap().is_some(),
        "20 slots counted"
    );
    let not_yet = SeaLoginThrottle::new(
        db,
        ThrottlePolicy {
            max_failures: 21,
            window: Duration::from_secs(60),
        },
    );
    assert_eq!(
        not_yet.take_slot(&key, t(2)).await.unwrap(),
        None,
        "exactly 20"
    );
}

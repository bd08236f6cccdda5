//! The revocation buses, also across a database restart.

use super::*;

fn recorder() -> (
    Arc<Mutex<Vec<SessionId>>>,
    application::ports::RevocationListener,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (seen, Arc::new(move |id| sink.lock().unwrap().push(id)))
}

async fn wait_for(seen: &Mutex<Vec<SessionId>>, want: &[SessionId], within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got: HashSet<_> = seen.lock().unwrap().iter().copied().collect();
        if want.iter().all(|id| got.contains(id)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "only {} of {} ids arrived within {within:?}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn ids(n: usize) -> Vec<SessionId> {
    (0..n)
        .map(|_| SessionId::from_uuid(Uuid::new_v4()))
        .collect()
}

#[tokio::test]
async fn local_bus_calls_listeners_synchronously() {
    let bus = LocalRevocationBus::new();
    let (seen_a, a) = recorder();
    let (seen_b, b) = recorder();
    bus.subscribe(a);
    bus.subscribe(b);
    let sent = ids(3);
    bus.publish(&sent).await.unwrap();
    assert_eq!(*seen_a.lock().unwrap(), sent);
    assert_eq!(*seen_b.lock().unwrap(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn pg_bus_reaches_other_instances_within_a_second() {
    let url = fresh_postgres_url().await;
    // The buses read `sessions` every second.
    Database::connect(&url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let a = PgRevocationBus::start(&url, TTL, Arc::new(adapters::system::SystemClock))
        .await
        .expect("bus a");
    let b = PgRevocationBus::start(&url, TTL, Arc::new(adapters::system::SystemClock))
        .await
        .expect("bus b");
    let (seen_a, la) = recorder();
    let (seen_b, lb) = recorder();
    a.subscribe(la);
    b.subscribe(lb);
    let sent = ids(3);
    a.publish(&sent).await.unwrap();
    let took = wait_for(&seen_b, &sent, Duration::from_secs(1)).await;
    eprintln!("revocation reached the other instance in {took:?}");
    wait_for(&seen_a, &sent, Duration::from_secs(1)).await;
    // Many ids go out in several notifications, each under the payload limit.
    let many = ids(450);
    b.publish(&many).await.unwrap();
    wait_for(&seen_a, &many, Duration::from_secs(1)).await;
    wait_for(&seen_b, &many, Duration::from_secs(1)).await;
    assert_eq!(seen_a.lock().unwrap().len(), 453, "each id once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn pool_and_bus_recover_from_a_database_restart() {
    let server = PostgresServer::start().await;
    let url = server.fresh_database_url().await;
    let db = Database::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let users = SeaUserRepository::new(db.clone());
    let bus = PgRevocationBus::start(&url, TTL, Arc::new(adapters::system::SystemClock))
        .await
        .unwrap();
    let (seen, listener) = recorder();
    bus.subscribe(listener);

    // In use before.
    let before = stored_user(&db, "oscar").await;
    let sent = ids(1);
    bus.publish(&sent).await.unwrap();
    wait_for(&seen, &sent, Duration::from_secs(1)).await;

    // Down: the health check says so quickly instead of hanging.
    server.stop().await;
    let start = Instant::now();
    assert!(db.ping().await.is_err(), "ping while the database is down");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the health check took {:?}",
        start.elapsed()
    );
    server.restart().await;

    // The same pool works again (dead connections are replaced).
    let found = users
        .find_by_id(before.id)
        .await
        .expect("query after restart");
    assert_eq!(found, Some(before));
    db.ping().await.expect("ping after restart");
    stored_user(&db, "peggy").await;

    // The same bus hears publishes again once its listener reconnected by itself.
    let start = Instant::now();
    loop {
        let probe = ids(1);
        bus.publish(&probe).await.expect("publish after restart");
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut arrived = false;
        while Instant::now() < deadline {
            if seen.lock().unwrap().contains(&probe[0]) {
                arrived = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if arrived {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the LISTEN connection did not recover"
        );
    }
    eprintln!(
        "the bus delivered again {:?} after the restart",
        start.elapsed()
    );
    // And then within a second, every time.
    let sent = ids(5);
    bus.publish(&sent).await.unwrap();
    wait_for(&seen, &sent, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn pg_bus_catches_up_on_revocations_missed_while_disconnected() {
    let url = fresh_postgres_url().await;
    let db = Database::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let store = SeaSessionStore::new(db.clone());
    let owner = stored_user(&db, "trent").await;
    let now = adapters::system::SystemClock.now();
    let family = login(&store, owner.id, now, &TokenPolicy::default()).await;
    let bus = PgRevocationBus::start(&url, TTL, Arc::new(adapters::system::SystemClock))
        .await
        .unwrap();
    let (seen, listener) = recorder();
    bus.subscribe(listener);

    // Revoked in storage with no announcement (as if the NOTIFY was lost),
    // then the listener's connection drops.
    assert!(
        store
            .revoke(family.session.id, RevokeReason::Logout, now)
            .await
            .unwrap()
    );
    let killed = db
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'authd-revocation-feed'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        killed.try_get_by_index::<i64>(0).unwrap(),
        1,
        "one LISTEN connection"
    );
    let took = wait_for(&seen, &[family.session.id], Duration::from_secs(5)).await;
    eprintln!("a missed revocation was caught up {took:?} after the listener was cut");
}

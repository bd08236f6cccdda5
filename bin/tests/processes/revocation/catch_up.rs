//! The PostgreSQL feed's catch-up after an outage: it reaches back as far as
//! a token of `ACCESS_TOKEN_EXPIRY` can matter. Here for the cluster helpers.

use super::*;

/// A clock the test sets.
#[derive(Debug, Clone)]
struct SetClock(Arc<AtomicI64>);

impl Clock for SetClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.0.load(Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn the_catch_up_after_an_outage_reaches_back_as_far_as_a_long_token_lifetime() {
    let _serial = SERIAL.lock().await;
    let direct = fresh_postgres_url().await;
    let db = Database::connect(&direct).await.expect("db");
    db.migrate().await.expect("migrate");
    let store = SeaSessionStore::new(db.clone());
    let proxy = FaultProxy::start(upstream(&direct)).await.expect("proxy");

    // ACCESS_TOKEN_EXPIRY=6h: a token issued just before a revocation three
    // hours ago is still valid.
    let ttl = Duration::from_secs(6 * 3600);
    let start = adapters::system::SystemClock.now();
    let clock = SetClock(Arc::new(AtomicI64::new(start.unix_millis())));
    let bus = PgRevocationBus::start(&via(&direct, proxy.addr()), ttl, Arc::new(clock.clone()))
        .await
        .expect("bus");
    let heard: Arc<std::sync::Mutex<Vec<SessionId>>> = Arc::default();
    let sink = heard.clone();
    bus.subscribe(Arc::new(move |id| sink.lock().unwrap().push(id)));
    wait_until(Duration::from_secs(3), || {
        bus.status().last_current.is_some()
    })
    .await;

    // Three hours away; revoked (without a NOTIFY) two hours ago.
    proxy.start_outage();
    wait_until(Duration::from_secs(5), || !bus.status().connected()).await;
    let away = start.plus(Duration::from_secs(3 * 3600));
    clock.0.store(away.unix_millis(), Ordering::SeqCst);
    let family = stored_family(&db, &store, start).await;
    let revoked_at = start.plus(Duration::from_secs(3600));
    assert!(
        store
            .revoke(family, RevokeReason::Logout, revoked_at)
            .await
            .expect("revoke")
    );

    proxy.heal();
    wait_until(Duration::from_secs(4), || {
        heard.lock().unwrap().contains(&family)
    })
    .await;
    assert!(bus.status().catch_ups >= 1, "{:?}", bus.status());
}

/// A user and a family of theirs, stored.
async fn stored_family(db: &Database, store: &SeaSessionStore, now: Timestamp) -> SessionId {
    let owner = User {
        id: UserId::from_uuid(Uuid::new_v4()),
        username: Username::parse("catchup").expect("username"),
        password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
        created_at: now,
    };
    SeaUserRepository::new(db.clone())
        .insert(&owner)
        .await
        .expect("user");
    let policy = TokenPolicy::default();
    let session = Session::start(
        SessionId::from_uuid(Uuid::new_v4()),
        owner.id,
        now,
        policy.session_max_age,
        None,
        None,
    );
    let family = Family::start(session, TokenHash::from_bytes([7; 32]), &policy);
    store
        .create(&family.session, &family.tokens[0])
        .await
        .expect("session");
    family.session.id
}

async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

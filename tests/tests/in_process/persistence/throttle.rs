//! The login throttle store: windows, slots under concurrency.

use super::*;

integration_tests::on_both!(
    crate::persistence::database;
    throttle_counts_in_windows,
    concurrent_slots_all_count,
    a_slot_taken_while_a_success_clears_never_fails,
    a_released_slot_is_given_back_and_failures_stay,
    the_store_follows_the_domain_rule_in_random_sequences,
);

/// Contract v2 ("Brute force"): N simultaneous guesses for one key get at
/// most `LOGIN_MAX_FAILURES` password checks, also across processes (two
/// pools here, each with its own in-process write gate).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn throttle_slots_hold_under_concurrency_across_pools() {
    for url in [fresh_sqlite_url(), fresh_postgres_url().await] {
        let a = Database::connect(&url).await.unwrap();
        a.migrate().await.unwrap();
        let b = Database::connect(&url).await.unwrap();
        let policy = ThrottlePolicy {
            max_failures: 5,
            window: Duration::from_secs(60),
        };
        let throttles = [
            Arc::new(SeaLoginThrottle::new(a, policy)),
            Arc::new(SeaLoginThrottle::new(b, policy)),
        ];
        let key = ThrottleKey {
            username: "ivy".into(),
            client: "10.0.0.9".into(),
        };
        let takers = (0..40).map(|i| {
            let throttle = throttles[i % 2].clone();
            let key = key.clone();
            tokio::spawn(async move { throttle.take_slot(&key, t(1)).await.unwrap() })
        });
        let mut admitted = 0;
        for taker in takers.collect::<Vec<_>>() {
            if taker.await.unwrap().is_none() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 5, "{url}");
    }
}

async fn throttle_counts_in_windows(db: Database) {
    let policy = ThrottlePolicy {
        max_failures: 3,
        window: Duration::from_secs(60),
    };
    let throttle = SeaLoginThrottle::new(db.clone(), policy);
    let key = ThrottleKey {
        username: "henry".into(),
        client: "10.0.0.1".into(),
    };
    let other = ThrottleKey {
        username: "henry".into(),
        client: "10.0.0.2".into(),
    };

    // Each login takes a slot before its password is checked; a failure keeps it.
    assert_eq!(throttle.take_slot(&key, t(0)).await.unwrap(), None);
    assert_eq!(throttle.take_slot(&key, t(10)).await.unwrap(), None);
    assert_eq!(
        throttle.take_slot(&key, t(20)).await.unwrap(),
        None,
        "3 of 3"
    );
    assert_eq!(
        throttle.take_slot(&key, t(20)).await.unwrap(),
        Some(Duration::from_secs(40))
    );
    assert_eq!(
        throttle.take_slot(&key, t(59)).await.unwrap(),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        throttle.take_slot(&other, t(21)).await.unwrap(),
        None,
        "keys are independent"
    );
    // The window closes 60 s after its first attempt; the next opens a new one.
    assert_eq!(throttle.take_slot(&key, t(60)).await.unwrap(), None);
    assert_eq!(throttle.take_slot(&key, t(61)).await.unwrap(), None);
    assert_eq!(throttle.take_slot(&key, t(62)).await.unwrap(), None);
    assert_eq!(
        throttle.take_slot(&key, t(64)).await.unwrap(),
        Some(Duration::from_secs(56))
    );
    // A success clears the key.
    throttle.clear(&key).await.unwrap();
    assert_eq!(throttle.take_slot(&key, t(64)).await.unwrap(), None);
    throttle.clear(&key).await.unwrap();
    throttle.clear(&other).await.unwrap();

    // Prune deletes only closed windows.
    throttle.take_slot(&key, t(100)).await.unwrap();
    throttle.take_slot(&other, t(150)).await.unwrap();
    assert_eq!(throttle.prune(t(170)).await.unwrap(), 1);
    assert_eq!(count_rows(&db, "login_failures").await, 1);
    assert_eq!(throttle.prune(t(210)).await.unwrap(), 1);

    // Keys can be anything: long, NUL, non-ASCII. They still count, never fail.
    for odd in [
        "evil\0name".repeat(500),
        "caf\u{e9}".to_owned(),
        "x".repeat(300),
    ] {
        let key = ThrottleKey {
            username: odd,
            client: "10.0.0.3".into(),
        };
        for at in 0..3 {
            let taken = throttle.take_slot(&key, t(300 + at)).await;
            assert_eq!(taken.expect("odd key counted"), None);
        }
        assert!(throttle.take_slot(&key, t(303)).await.unwrap().is_some());
        throttle.clear(&key).await.unwrap();
        assert_eq!(throttle.take_slot(&key, t(303)).await.unwrap(), None);
    }
}

async fn concurrent_slots_all_count(db: Database) {
    let policy = ThrottlePolicy {
        max_failures: 30,
        window: Duration::from_secs(60),
    };
    let throttle = Arc::new(SeaLoginThrottle::new(db.clone(), policy));
    let key = ThrottleKey {
        username: "ivan".into(),
        client: "10.0.0.9".into(),
    };
    let tasks: Vec<_> = (0..29)
        .map(|_| {
            let (throttle, key) = (throttle.clone(), key.clone());
            tokio::spawn(async move { throttle.take_slot(&key, t(1)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().expect("take_slot"), None, "29 of 30");
    }
    assert_eq!(
        throttle.take_slot(&key, t(2)).await.unwrap(),
        None,
        "30 of 30"
    );
    assert!(
        throttle.take_slot(&key, t(2)).await.unwrap().is_some(),
        "no slot was lost"
    );
}

/// A success clears the key while other requests take slots (the second
/// step of a two-factor login races like this): on PostgreSQL the row could
/// be deleted between a taker's insert and its lock, which failed the taker
/// with a 500 before it inserted again.
async fn a_slot_taken_while_a_success_clears_never_fails(db: Database) {
    let policy = ThrottlePolicy {
        max_failures: 1000,
        window: Duration::from_secs(60),
    };
    let throttle = Arc::new(SeaLoginThrottle::new(db.clone(), policy));
    let key = ThrottleKey {
        username: "iris".into(),
        client: "10.0.0.9".into(),
    };
    for round in 0..30 {
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let (throttle, key) = (throttle.clone(), key.clone());
                tokio::spawn(async move {
                    if i % 3 == 0 {
                        throttle.clear(&key).await.map(|()| None)
                    } else {
                        throttle.take_slot(&key, t(1)).await
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e:#}"));
        }
    }
}

/// `release` (a right password whose login waits for its second factor)
/// gives one slot back, never goes below none, and keeps the failures.
async fn a_released_slot_is_given_back_and_failures_stay(db: Database) {
    let policy = ThrottlePolicy {
        max_failures: 3,
        window: Duration::from_secs(60),
    };
    let throttle = SeaLoginThrottle::new(db, policy);
    let key = ThrottleKey {
        username: "ines".into(),
        client: "10.0.0.9".into(),
    };
    throttle
        .release(&key)
        .await
        .expect("no row: nothing to give back");
    for _ in 0..3 {
        assert_eq!(throttle.take_slot(&key, t(1)).await.unwrap(), None);
    }
    assert!(
        throttle.take_slot(&key, t(1)).await.unwrap().is_some(),
        "3 of 3"
    );
    throttle.release(&key).await.unwrap();
    assert_eq!(
        throttle.take_slot(&key, t(2)).await.unwrap(),
        None,
        "one back"
    );
    assert!(
        throttle.take_slot(&key, t(2)).await.unwrap().is_some(),
        "only one"
    );
    for _ in 0..5 {
        throttle.release(&key).await.unwrap();
    }
    for _ in 0..3 {
        assert_eq!(throttle.take_slot(&key, t(3)).await.unwrap(), None);
    }
    assert!(
        throttle.take_slot(&key, t(3)).await.unwrap().is_some(),
        "never below none"
    );
}

/// One operation of a random sequence.
#[derive(Debug, Clone, Copy)]
enum Op {
    Take(usize),
    Release(usize),
    Clear(usize),
    Prune,
}

/// The store against the pure rule, as `rotation.rs` does for refresh: a
/// seeded random sequence of slots taken, given back and cleared, and
/// prunes, over three keys and a clock that moves by random steps; after
/// each step the store must answer what `domain::throttle` (`admit`,
/// `release`, `window_closed`) answers on a model of the windows.
async fn the_store_follows_the_domain_rule_in_random_sequences(db: Database) {
    use domain::throttle::{self, Admission, ThrottleWindow};
    let policy = ThrottlePolicy {
        max_failures: 3,
        window: Duration::from_secs(60),
    };
    let store = SeaLoginThrottle::new(db.clone(), policy);
    for seed in [1_u64, 7, 2026] {
        let keys: Vec<ThrottleKey> = (0..3)
            .map(|i| ThrottleKey {
                username: format!("model-{seed}-{i}"),
                client: format!("10.9.{seed}.{i}"),
            })
            .collect();
        let mut model: Vec<Option<ThrottleWindow>> = vec![None; keys.len()];
        // xorshift64*: a fixed, dependency-free sequence per seed.
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: u64| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        };
        let mut now = 1_000;
        // Windows of earlier seeds are long closed: prune them first.
        store.prune(t(now)).await.unwrap();
        for step in 0..150 {
            now += [0, 1, 5, 20, 61][usize::try_from(next(5)).unwrap()];
            let k = usize::try_from(next(3)).unwrap();
            let op = match next(10) {
                0..=5 => Op::Take(k),
                6 | 7 => Op::Release(k),
                8 => Op::Clear(k),
                _ => Op::Prune,
            };
            let at = t(now);
            match op {
                Op::Take(k) => {
                    let want = throttle::admit(model[k], at, &policy);
                    let got = store.take_slot(&keys[k], at).await.unwrap();
                    match want {
                        Admission::Admit { window } => {
                            model[k] = Some(window);
                            assert_eq!(got, None, "seed {seed} step {step}: {op:?} admitted");
                        }
                        Admission::Refuse { retry_after } => assert_eq!(
                            got,
                            Some(retry_after),
                            "seed {seed} step {step}: {op:?} refused"
                        ),
                    }
                }
                Op::Release(k) => {
                    model[k] = model[k].map(throttle::release);
                    store.release(&keys[k]).await.unwrap();
                }
                Op::Clear(k) => {
                    model[k] = None;
                    store.clear(&keys[k]).await.unwrap();
                }
                Op::Prune => {
                    let mut want = 0;
                    for w in &mut model {
                        if w.is_some_and(|w| throttle::window_closed(w.start, at, &policy)) {
                            *w = None;
                            want += 1;
                        }
                    }
                    let got = store.prune(at).await.unwrap();
                    assert_eq!(got, want, "seed {seed} step {step}: windows pruned");
                }
            }
        }
        for key in &keys {
            store.clear(key).await.unwrap();
        }
    }
}

//! The two-factor login store on both databases: enrolments pending and
//! confirmed, a code's step accepted once (also between two pools, as
//! between processes), recovery codes once, `mfaToken`s counted and ended,
//! and everything of a user gone with the user.

use super::*;
use adapters::persistence::SeaMfaStore;
use application::ports::{MfaChallenge, MfaStore};

integration_tests::on_both!(
    crate::persistence::database;
    an_enrolment_is_pending_until_confirmed_and_then_stays,
    a_step_and_a_recovery_code_are_accepted_once,
    mfa_tokens_count_wrong_codes_and_end_once,
    a_users_two_factor_rows_go_with_the_user,
);

async fn an_enrolment_is_pending_until_confirmed_and_then_stays(db: Database) {
    let store = SeaMfaStore::new(db.clone());
    let kim = stored_user(&db, "kim").await.id;
    assert_eq!(store.totp(kim).await.unwrap(), None);
    assert!(store.begin_totp(kim, b"sealed-1", t(0)).await.unwrap());
    // A second enrolment replaces the pending one.
    assert!(store.begin_totp(kim, b"sealed-2", t(5)).await.unwrap());
    let pending = store.totp(kim).await.unwrap().expect("pending");
    assert_eq!(
        (
            pending.sealed.as_slice(),
            pending.created_at,
            pending.confirmed_at
        ),
        (&b"sealed-2"[..], t(5), None)
    );
    // Confirming the replaced one changes nothing.
    assert!(
        !store
            .confirm_totp(kim, t(0), 7, &[hash(1)], t(6))
            .await
            .unwrap()
    );
    let codes = [hash(1), hash(2)];
    assert!(
        store
            .confirm_totp(kim, t(5), 7, &codes, t(6))
            .await
            .unwrap()
    );
    let on = store.totp(kim).await.unwrap().expect("confirmed");
    assert_eq!((on.confirmed_at, on.last_step), (Some(t(6)), Some(7)));
    // Confirmed: a new enrolment is refused and nothing is replaced.
    assert!(!store.begin_totp(kim, b"sealed-3", t(7)).await.unwrap());
    assert!(!store.confirm_totp(kim, t(5), 8, &[], t(8)).await.unwrap());
    assert_eq!(store.totp(kim).await.unwrap().unwrap().sealed, b"sealed-2");
    // Off: the secret and the codes go.
    assert!(store.remove_totp(kim).await.unwrap());
    assert!(!store.remove_totp(kim).await.unwrap());
    assert_eq!(store.totp(kim).await.unwrap(), None);
    assert!(
        !store.use_recovery_code(kim, &codes[0], t(9)).await.unwrap(),
        "the codes went too"
    );
}

async fn a_step_and_a_recovery_code_are_accepted_once(db: Database) {
    let store = SeaMfaStore::new(db.clone());
    let lee = stored_user(&db, "lee").await.id;
    assert!(
        !store.use_step(lee, 10).await.unwrap(),
        "no secret: nothing to accept"
    );
    store.begin_totp(lee, b"s", t(0)).await.unwrap();
    assert!(
        !store.use_step(lee, 10).await.unwrap(),
        "pending: no login code yet"
    );
    let (code_a, code_b) = (hash(21), hash(22));
    store
        .confirm_totp(lee, t(0), 10, &[code_a, code_b], t(1))
        .await
        .unwrap();
    assert!(
        !store.use_step(lee, 10).await.unwrap(),
        "the confirming code's step"
    );
    assert!(!store.use_step(lee, 9).await.unwrap(), "an earlier step");
    assert!(store.use_step(lee, 11).await.unwrap());
    assert!(!store.use_step(lee, 11).await.unwrap(), "a replay");
    assert!(store.use_step(lee, 13).await.unwrap());
    assert!(!store.use_step(lee, 12).await.unwrap(), "after a later one");

    assert!(store.use_recovery_code(lee, &code_a, t(2)).await.unwrap());
    assert!(
        !store.use_recovery_code(lee, &code_a, t(3)).await.unwrap(),
        "once ever"
    );
    assert!(!store.use_recovery_code(lee, &hash(99), t(3)).await.unwrap());
    let other = stored_user(&db, "max").await.id;
    assert!(
        !store.use_recovery_code(other, &code_b, t(3)).await.unwrap(),
        "another user's code"
    );
    assert!(store.use_recovery_code(lee, &code_b, t(4)).await.unwrap());
}

/// One code sent to every process at once is accepted by exactly one of
/// them (two pools, each with its own write gate, as two processes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn a_code_is_accepted_once_across_pools() {
    for url in [fresh_sqlite_url(), fresh_postgres_url().await] {
        let a = Database::connect(&url).await.unwrap();
        a.migrate().await.unwrap();
        let b = Database::connect(&url).await.unwrap();
        let user = stored_user(&a, "nia").await.id;
        let stores = [Arc::new(SeaMfaStore::new(a)), Arc::new(SeaMfaStore::new(b))];
        stores[0].begin_totp(user, b"s", t(0)).await.unwrap();
        let code = hash(5);
        stores[0]
            .confirm_totp(user, t(0), 100, &[code], t(1))
            .await
            .unwrap();
        let racers: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(&stores[i % 2]);
                tokio::spawn(async move {
                    (
                        store.use_step(user, 101).await.unwrap(),
                        store.use_recovery_code(user, &code, t(2)).await.unwrap(),
                    )
                })
            })
            .collect();
        let (mut steps, mut codes) = (0, 0);
        for racer in racers {
            let (step, code) = racer.await.unwrap();
            steps += usize::from(step);
            codes += usize::from(code);
        }
        assert_eq!((steps, codes), (1, 1), "{url}");
    }
}

async fn mfa_tokens_count_wrong_codes_and_end_once(db: Database) {
    let store = SeaMfaStore::new(db.clone());
    let ora = stored_user(&db, "ora").await.id;
    let challenge = MfaChallenge {
        hash: hash(31),
        user: ora,
        client_ip: Some("203.0.113.7".into()),
        user_agent: Some("phone/1".into()),
        expires_at: t(300),
        wrong_codes: 0,
    };
    store.create_challenge(&challenge).await.unwrap();
    assert_eq!(
        store.challenge(&challenge.hash, t(10)).await.unwrap(),
        Some(challenge.clone())
    );
    assert_eq!(
        store.challenge(&challenge.hash, t(300)).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(store.challenge(&hash(32), t(10)).await.unwrap(), None);
    for n in 1..=3 {
        assert_eq!(store.count_wrong_code(&challenge.hash).await.unwrap(), n);
    }
    assert_eq!(
        store
            .challenge(&challenge.hash, t(11))
            .await
            .unwrap()
            .map(|c| c.wrong_codes),
        Some(3)
    );
    assert!(store.end_challenge(&challenge.hash).await.unwrap());
    assert!(
        !store.end_challenge(&challenge.hash).await.unwrap(),
        "ended once"
    );
    assert_eq!(store.challenge(&challenge.hash, t(12)).await.unwrap(), None);

    let stale = MfaChallenge {
        hash: hash(33),
        expires_at: t(20),
        ..challenge
    };
    store.create_challenge(&stale).await.unwrap();
    assert_eq!(store.prune_challenges(t(19)).await.unwrap(), 0);
    assert_eq!(store.prune_challenges(t(20)).await.unwrap(), 1);
}

async fn a_users_two_factor_rows_go_with_the_user(db: Database) {
    let store = SeaMfaStore::new(db.clone());
    let pat = stored_user(&db, "pat").await.id;
    store.begin_totp(pat, b"s", t(0)).await.unwrap();
    store
        .confirm_totp(pat, t(0), 1, &[hash(41), hash(42)], t(1))
        .await
        .unwrap();
    store
        .create_challenge(&MfaChallenge {
            hash: hash(43),
            user: pat,
            client_ip: None,
            user_agent: None,
            expires_at: t(300),
            wrong_codes: 0,
        })
        .await
        .unwrap();
    for table in ["totp_secrets", "recovery_codes", "mfa_tokens"] {
        assert!(count_rows(&db, table).await > 0, "{table}");
    }
    SeaUserRepository::new(db.clone())
        .delete(pat, t(2))
        .await
        .unwrap()
        .expect("pat existed");
    for table in ["totp_secrets", "recovery_codes", "mfa_tokens"] {
        assert_eq!(count_rows(&db, table).await, 0, "{table}");
    }
}

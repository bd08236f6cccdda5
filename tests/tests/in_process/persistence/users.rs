//! Users: case-insensitive names, duplicates.

use super::*;

integration_tests::on_both!(
    crate::persistence::database;
    users_are_found_case_insensitively,
    same_name_in_other_case_is_a_duplicate,
    concurrent_inserts_of_one_name_leave_one_user,
    deleting_a_user_takes_their_rows_and_remembers_their_revocations,
);

async fn users_are_found_case_insensitively(db: Database) {
    let repo = SeaUserRepository::new(db.clone());
    let alice = stored_user(&db, "Alice.Smith").await;
    let found = repo
        .find_by_username(&Username::parse("aLICE.smith").unwrap())
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        found, alice,
        "the stored user comes back whole, display casing kept"
    );
    assert_eq!(
        repo.find_by_id(alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        repo.find_by_username(&Username::parse("bob").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo.find_by_id(UserId::from_uuid(Uuid::new_v4()))
            .await
            .unwrap(),
        None
    );

    let upgraded = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3aGFzaA");
    repo.update_password_hash(alice.id, &upgraded, t(1))
        .await
        .unwrap();
    let found = repo.find_by_id(alice.id).await.unwrap().expect("found");
    assert_eq!(found.password_hash, upgraded);
    assert_eq!(found.username.as_str(), "Alice.Smith");
}

async fn same_name_in_other_case_is_a_duplicate(db: Database) {
    let repo = SeaUserRepository::new(db.clone());
    stored_user(&db, "Carol").await;
    let err = repo.insert(&user("cAROL")).await.expect_err("duplicate");
    assert!(matches!(err, InsertUserError::Duplicate), "got {err:?}");
    // The same id twice is refused as well.
    let dave = user("dave");
    repo.insert(&dave).await.unwrap();
    let mut again = dave.clone();
    again.username = Username::parse("dave2").unwrap();
    assert!(repo.insert(&again).await.is_err());
}

async fn concurrent_inserts_of_one_name_leave_one_user(db: Database) {
    let repo = Arc::new(SeaUserRepository::new(db.clone()));
    let names = ["Racer", "racer", "RACER", "rAcEr", "RaCeR"];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let repo = repo.clone();
            let u = user(names[i % names.len()]);
            tokio::spawn(async move { repo.insert(&u).await })
        })
        .collect();
    let (mut ok, mut dup) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(InsertUserError::Duplicate) => dup += 1,
            Err(e) => panic!("a concurrent insert failed unexpectedly: {e:?}"),
        }
    }
    assert_eq!((ok, dup), (1, 19));
    assert_eq!(count_rows(&db, "users").await, 1);
}

/// The deletion transaction: the user, their sessions, tokens and throttle
/// rows go; nobody else's; the sessions that had not ended are remembered as
/// revoked (read by `revoked_since`) until a prune past the horizon.
async fn deleting_a_user_takes_their_rows_and_remembers_their_revocations(db: Database) {
    let repo = SeaUserRepository::new(db.clone());
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy::default();
    let throttle = SeaLoginThrottle::new(db.clone(), ThrottlePolicy::default());
    let ivy = stored_user(&db, "ivy").await;
    let jack = stored_user(&db, "jack").await;
    let live = login(&store, ivy.id, t(10), &policy).await;
    let revoked = login(&store, ivy.id, t(20), &policy).await;
    store
        .revoke(revoked.session.id, RevokeReason::Logout, t(30))
        .await
        .unwrap();
    let short = TokenPolicy {
        session_max_age: Duration::from_secs(5),
        ..policy
    };
    let ended = login(&store, ivy.id, t(40), &short).await;
    let jacks = login(&store, jack.id, t(50), &policy).await;
    for name in ["ivy", "jack"] {
        let key = ThrottleKey {
            username: name.into(),
            client: "10.0.0.9".into(),
        };
        assert_eq!(throttle.take_slot(&key, t(55)).await.unwrap(), None);
    }

    let now = t(100);
    let mut remembered = repo
        .delete(ivy.id, now)
        .await
        .unwrap()
        .expect("ivy existed");
    remembered.sort();
    let mut expected = vec![live.session.id, revoked.session.id];
    expected.sort();
    assert_eq!(
        remembered, expected,
        "every session that had not ended, revoked or not"
    );
    assert_eq!(
        repo.delete(ivy.id, now).await.unwrap(),
        None,
        "gone already"
    );

    assert_eq!(repo.find_by_id(ivy.id).await.unwrap(), None);
    for family in [&live, &revoked, &ended] {
        assert_eq!(store.find(family.session.id).await.unwrap(), None);
        let tokens = count_tokens(&db, "session_id", (*family.session.id.as_uuid()).into()).await;
        assert_eq!(tokens, 0);
    }
    let failures = |name: &'static str| {
        let db = db.clone();
        async move {
            let mut query = count_of("login_failures");
            query.and_where(Expr::col(Alias::new("username")).eq(name));
            count(&db, &query).await
        }
    };
    assert_eq!((failures("ivy").await, failures("jack").await), (0, 1));
    assert_eq!(repo.find_by_id(jack.id).await.unwrap(), Some(jack.clone()));
    assert!(store.find(jacks.session.id).await.unwrap().is_some());

    // Remembered as revoked at the deletion, read with the other revocations.
    let heard = store.revoked_since(now).await.unwrap();
    for id in &expected {
        assert!(heard.contains(id), "{id} is not heard as revoked");
    }
    assert!(
        !store
            .revoked_since(t(101))
            .await
            .unwrap()
            .contains(&live.session.id)
    );
    // Kept until a prune past the horizon, then forgotten.
    store.prune(now, 100).await.unwrap();
    assert!(
        store
            .revoked_since(t(0))
            .await
            .unwrap()
            .contains(&live.session.id)
    );
    store.prune(t(101), 100).await.unwrap();
    let after = store.revoked_since(t(0)).await.unwrap();
    assert!(!after.contains(&live.session.id) && !after.contains(&revoked.session.id));
    assert!(
        store.find(jacks.session.id).await.unwrap().is_some(),
        "jack's live session stays"
    );
}

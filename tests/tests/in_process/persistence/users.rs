//! Users: case-insensitive names, duplicates.

#[allow(clippy::wildcard_imports)]
use super::*;

integration_tests::on_both!(
    crate::persistence::database;
    users_are_found_case_insensitively,
    same_name_in_other_case_is_a_duplicate,
    concurrent_inserts_of_one_name_leave_one_user,
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
    repo.update_password_hash(alice.id, &upgraded)
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

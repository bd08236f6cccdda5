//! Sessions: their lifecycle and pruning.

use super::*;

integration_tests::on_both!(
    crate::persistence::database;
    sessions_lifecycle,
    prune_deletes_ended_sessions_in_batches,
);

async fn sessions_lifecycle(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy::default();
    let owner = stored_user(&db, "erin").await.id;
    let other = stored_user(&db, "frank").await.id;
    let a = login(&store, owner, t(10), &policy).await;
    let b = login(&store, owner, t(20), &policy).await;
    let c = login(&store, owner, t(30), &policy).await;
    let f = login(&store, other, t(40), &policy).await;

    assert_eq!(
        store.find(a.session.id).await.unwrap(),
        Some(a.session.clone())
    );
    // How a family began is stored with it.
    let two_factor = Session::start(
        SessionId::from_uuid(Uuid::new_v4()),
        other,
        t(41),
        policy.session_max_age,
        None,
        None,
    )
    .begun_with(domain::AuthMethods::PasswordAndOtp);
    let family = Family::start(two_factor.clone(), hash(7), &policy);
    store
        .create(&family.session, &family.tokens[0])
        .await
        .unwrap();
    assert_eq!(
        store.find(two_factor.id).await.unwrap(),
        Some(two_factor.clone())
    );
    assert_eq!(a.session.methods, domain::AuthMethods::Password);
    store
        .revoke(two_factor.id, RevokeReason::Logout, t(42))
        .await
        .unwrap();
    assert_eq!(
        store
            .find(SessionId::from_uuid(Uuid::new_v4()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_by_token(&a.tokens[0].hash).await.unwrap(),
        Some(a.session.clone())
    );
    assert_eq!(store.find_by_token(&hash(99)).await.unwrap(), None);

    let live: Vec<_> = store
        .list_live(owner, t(50))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        live,
        vec![c.session.id, b.session.id, a.session.id],
        "newest first, only the owner's"
    );

    // Revoke one: live before => true; again => false.
    assert!(
        store
            .revoke(b.session.id, RevokeReason::UserRevoked, t(60))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke(b.session.id, RevokeReason::Logout, t(61))
            .await
            .unwrap()
    );
    let stored = store.find(b.session.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(t(60)));
    assert_eq!(
        stored.revoke_reason,
        Some(RevokeReason::UserRevoked),
        "the first revocation is kept"
    );
    let live: Vec<_> = store
        .list_live(owner, t(62))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![c.session.id, a.session.id]);

    // A session whose only token expired is not listed although the session itself is not over.
    let short = TokenPolicy {
        refresh_ttl: Duration::from_secs(5),
        ..policy
    };
    let s = login(&store, owner, t(70), &short).await;
    assert!(
        store
            .list_live(owner, t(74))
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == s.session.id)
    );
    assert!(
        !store
            .list_live(owner, t(75))
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == s.session.id)
    );

    // An expired session cannot be revoked (it was not live).
    let tiny = TokenPolicy {
        session_max_age: Duration::from_secs(5),
        ..policy
    };
    let e = login(&store, owner, t(80), &tiny).await;
    assert!(
        !store
            .revoke(e.session.id, RevokeReason::UserRevoked, t(85))
            .await
            .unwrap()
    );

    // Revoke all: every live session of the owner (not the ended one), none
    // of the other user's.
    let mut ids = store
        .revoke_all_for_user(owner, None, RevokeReason::Logout, t(90))
        .await
        .unwrap();
    ids.sort();
    let mut expected = vec![a.session.id, c.session.id, s.session.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(
        store
            .revoke_all_for_user(owner, None, RevokeReason::Logout, t(91))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_live(owner, t(92)).await.unwrap().is_empty());
    let ended = store.find(e.session.id).await.unwrap().unwrap();
    assert_eq!((ended.revoked_at, ended.revoke_reason), (None, None));
    assert_eq!(store.list_live(other, t(92)).await.unwrap().len(), 1);
    assert_eq!(
        store.find(f.session.id).await.unwrap().unwrap().revoked_at,
        None
    );

    let since: HashSet<_> = store
        .revoked_since(t(60))
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(since.len(), 4);
    assert!(since.contains(&b.session.id));
    let since: HashSet<_> = store
        .revoked_since(t(61))
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(since.len(), 3, "revoked at or after the instant only");

    // Client-supplied text that a column would refuse is stored cleaned, not a failure.
    let odd = Session::start(
        SessionId::from_uuid(Uuid::new_v4()),
        other,
        t(100),
        policy.session_max_age,
        Some(format!("agent\0{}", "a".repeat(2_000))),
        Some("x".repeat(100)),
    );
    let first = Family::start(odd.clone(), hash(7), &policy)
        .tokens
        .remove(0);
    store
        .create(&odd, &first)
        .await
        .expect("create with odd client text");
    let stored = store.find(odd.id).await.unwrap().unwrap();
    assert_eq!(stored.user_agent.as_deref().map(str::len), Some(512));
    assert!(!stored.user_agent.unwrap().contains('\0'));
    assert_eq!(stored.ip.map(|ip| ip.len()), Some(64));
    // All but one (a password change keeps the caller's session).
    let keep = login(&store, owner, t(93), &policy).await;
    let gone = login(&store, owner, t(94), &policy).await;
    assert_eq!(
        store
            .revoke_all_for_user(
                owner,
                Some(keep.session.id),
                RevokeReason::PasswordChanged,
                t(95)
            )
            .await
            .unwrap(),
        vec![gone.session.id]
    );
    let revoked = store.find(gone.session.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoke_reason, Some(RevokeReason::PasswordChanged));
    assert_eq!(
        store
            .find(keep.session.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    store
        .revoke(keep.session.id, RevokeReason::Logout, t(96))
        .await
        .unwrap();
    assert!(store.list_live(owner, t(97)).await.unwrap().is_empty());
}

async fn prune_deletes_ended_sessions_in_batches(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy {
        session_max_age: Duration::from_secs(100),
        ..TokenPolicy::default()
    };
    let owner = stored_user(&db, "grace").await.id;
    let mut ended = Vec::new();
    for i in 0..5 {
        // Expired at t(100 + i).
        ended.push(login(&store, owner, t(i), &policy).await);
    }
    let revoked = login(&store, owner, t(150), &policy).await;
    store
        .revoke(revoked.session.id, RevokeReason::Logout, t(160))
        .await
        .unwrap();
    let recent = login(&store, owner, t(170), &policy).await;
    store
        .revoke(recent.session.id, RevokeReason::Logout, t(300))
        .await
        .unwrap();
    let live = login(&store, owner, t(290), &policy).await;
    // Give one ended family a rotated token too.
    let now = t(10);
    let out = store
        .refresh(&ended[4].tokens[0].hash, &successor(1), now, &policy)
        .await
        .unwrap();
    assert!(matches!(out, RefreshOutcome::Rotated { .. }));
    assert_eq!(
        count_rows(&db, "refresh_tokens").await,
        9,
        "8 first tokens and one successor"
    );

    // Ended before t(200): the 5 expired + the one revoked at t(160); not the one revoked at t(300).
    assert_eq!(store.prune(t(200), 4).await.unwrap(), 4);
    assert_eq!(store.prune(t(200), 4).await.unwrap(), 2);
    assert_eq!(store.prune(t(200), 4).await.unwrap(), 0);
    for f in &ended {
        assert_eq!(store.find(f.session.id).await.unwrap(), None);
    }
    assert_eq!(store.find(revoked.session.id).await.unwrap(), None);
    assert!(store.find(recent.session.id).await.unwrap().is_some());
    assert!(store.find(live.session.id).await.unwrap().is_some());
    assert_eq!(count_rows(&db, "sessions").await, 2);
    assert_eq!(
        count_rows(&db, "refresh_tokens").await,
        2,
        "tokens went with their sessions"
    );
}

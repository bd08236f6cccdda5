//! Refresh rotation in SQL against the domain rule, under concurrency.

use super::*;

integration_tests::on_both!(
    crate::persistence::database;
    refresh_outcomes_follow_the_domain_rule,
    fifty_concurrent_refreshes_mint_one_successor,
    fifty_concurrent_replays_after_the_grace_revoke_the_family,
);

fn decision_of(outcome: &RefreshOutcome) -> &'static str {
    match outcome {
        RefreshOutcome::Rotated { .. } => "rotate",
        RefreshOutcome::GraceReplay { .. } => "grace",
        RefreshOutcome::ReuseDetected { .. } => "reuse",
        RefreshOutcome::Refused(refusal) => refusal_of(*refusal),
    }
}

fn refusal_of(refusal: RefreshRefusal) -> &'static str {
    match refusal {
        RefreshRefusal::Unknown => "unknown",
        RefreshRefusal::Expired => "expired",
        RefreshRefusal::SessionExpired => "session_expired",
        RefreshRefusal::Revoked => "revoked",
    }
}

fn name_of(d: RotationDecision) -> &'static str {
    match d {
        RotationDecision::Rotate { .. } => "rotate",
        RotationDecision::GraceReplay => "grace",
        RotationDecision::ReuseDetected => "reuse",
        RotationDecision::Refuse(refusal) => refusal_of(refusal),
    }
}

/// Presents `token` at `now` both to the store and to the in-memory reference
/// family, and checks that they agree on the decision and on the state after it.
async fn present(
    store: &SeaSessionStore,
    reference: &mut Family,
    token: &TokenHash,
    now: Timestamp,
    policy: &TokenPolicy,
    n: u64,
) -> RefreshOutcome {
    let succ = successor(n);
    let outcome = store
        .refresh(token, &succ, now, policy)
        .await
        .expect("refresh");
    let expected = reference.refresh(token, now, policy, succ.hash);
    assert_eq!(decision_of(&outcome), name_of(expected), "at {now:?}");
    match &outcome {
        RefreshOutcome::Rotated {
            session,
            successor: minted,
        } => {
            assert_eq!(session, &reference.session);
            assert_eq!(Some(minted), reference.current());
            assert_eq!(minted.parent, Some(*token));
        }
        RefreshOutcome::GraceReplay {
            session,
            current,
            seal,
        } => {
            assert_eq!(session, &reference.session);
            assert_eq!(Some(current), reference.current());
            // The seal stored when `token` was rotated: made with the successor's number.
            assert_eq!(
                seal.expect("the parent is sealed inside the grace")[31],
                0xA5
            );
        }
        RefreshOutcome::ReuseDetected { session } => {
            assert_eq!(session, &reference.session);
            assert_eq!(session.revoke_reason, Some(RevokeReason::ReuseDetected));
        }
        RefreshOutcome::Refused(_) => {}
    }
    if !matches!(outcome, RefreshOutcome::Refused(RefreshRefusal::Unknown)) {
        // Whatever happened, the stored family is the reference family.
        let stored = store
            .find(reference.session.id)
            .await
            .unwrap()
            .expect("session");
        assert_eq!(stored, reference.session);
    }
    outcome
}

async fn refresh_outcomes_follow_the_domain_rule(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy {
        refresh_ttl: Duration::from_secs(100),
        reuse_grace: Duration::from_secs(10),
        session_max_age: Duration::from_secs(1_000),
    };
    let owner = stored_user(&db, "judy").await.id;

    // Rotate, then grace replay of the parent, then reuse after the grace.
    let mut f = login(&store, owner, t(0), &policy).await;
    let t0 = f.tokens[0].hash;
    let out = present(&store, &mut f, &t0, t(1), &policy, 1).await;
    let RefreshOutcome::Rotated { successor: t1, .. } = out else {
        panic!("rotate")
    };
    let RefreshOutcome::GraceReplay { current, seal, .. } =
        present(&store, &mut f, &t0, t(5), &policy, 2).await
    else {
        panic!("grace")
    };
    assert_eq!(current.hash, t1.hash);
    assert_eq!(
        seal,
        Some(successor(1).seal),
        "the grace answer returns the seal stored at rotation"
    );
    assert_eq!(
        count_tokens(&db, "session_id", (*f.session.id.as_uuid()).into()).await,
        2,
        "grace minted nothing"
    );
    let t2 = match present(&store, &mut f, &t1.hash, t(6), &policy, 3).await {
        RefreshOutcome::Rotated { successor, .. } => successor,
        other => panic!("rotate, got {other:?}"),
    };
    // A grandparent is reuse even inside the grace.
    present(&store, &mut f, &t0, t(7), &policy, 4).await;
    assert!(f.session.is_revoked());
    // A revoked family stays revoked, even for its current token.
    assert!(matches!(
        present(&store, &mut f, &t2.hash, t(8), &policy, 5).await,
        RefreshOutcome::Refused(RefreshRefusal::Revoked)
    ));

    // Parent after the grace: reuse.
    let mut g = login(&store, owner, t(0), &policy).await;
    let g0 = g.tokens[0].hash;
    present(&store, &mut g, &g0, t(1), &policy, 6).await;
    assert!(matches!(
        present(&store, &mut g, &g0, t(11), &policy, 7).await,
        RefreshOutcome::ReuseDetected { .. }
    ));

    // Idle expiry of a token, then absolute expiry of the family.
    let mut h = login(&store, owner, t(0), &policy).await;
    let h0 = h.tokens[0].hash;
    assert!(matches!(
        present(&store, &mut h, &h0, t(100), &policy, 8).await,
        RefreshOutcome::Refused(RefreshRefusal::Expired)
    ));
    let mut k = login(&store, owner, t(0), &policy).await;
    let mut token = k.tokens[0].hash;
    for (i, at) in (90..1_000).step_by(90).enumerate() {
        match present(&store, &mut k, &token, t(at), &policy, 100 + i as u64).await {
            RefreshOutcome::Rotated { successor, .. } => token = successor.hash,
            other => panic!("rotate at {at}, got {other:?}"),
        }
    }
    assert!(matches!(
        present(&store, &mut k, &token, t(1_000), &policy, 200).await,
        RefreshOutcome::Refused(RefreshRefusal::SessionExpired)
    ));

    // Unknown token.
    let mut none = login(&store, owner, t(0), &policy).await;
    assert!(matches!(
        present(&store, &mut none, &hash(12345), t(1), &policy, 9).await,
        RefreshOutcome::Refused(RefreshRefusal::Unknown)
    ));
}

/// Presents `token` from `n` tasks at once, each with its own successor.
pub(super) async fn concurrently(
    store: &SeaSessionStore,
    token: TokenHash,
    now: Timestamp,
    policy: TokenPolicy,
    n: u64,
) -> Vec<(SuccessorToken, RefreshOutcome)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n as usize));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            let succ = successor(1_000 + i);
            tokio::spawn(async move {
                barrier.wait().await;
                let outcome = store.refresh(&token, &succ, now, &policy).await;
                (succ, outcome)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        let (succ, outcome) = task.await.expect("task");
        let outcome = outcome.unwrap_or_else(|e| panic!("a concurrent refresh failed: {e:?}"));
        results.push((succ, outcome));
    }
    results
}

async fn fifty_concurrent_refreshes_mint_one_successor(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy::default();
    let owner = stored_user(&db, "kate").await.id;
    let f = login(&store, owner, t(0), &policy).await;
    let presented = f.tokens[0].hash;

    let results = concurrently(&store, presented, t(1), policy, 50).await;
    let winners: Vec<_> = results
        .iter()
        .filter_map(|(succ, o)| match o {
            RefreshOutcome::Rotated { successor, .. } => Some((succ.clone(), successor.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation");
    let (winner_succ, winner_token) = &winners[0];
    assert_eq!(winner_token.hash, winner_succ.hash);
    for (_, outcome) in &results {
        match outcome {
            RefreshOutcome::Rotated { .. } => {}
            RefreshOutcome::GraceReplay {
                current,
                seal,
                session,
            } => {
                assert_eq!(
                    current, winner_token,
                    "every grace answer names the one successor"
                );
                assert_eq!(*seal, Some(winner_succ.seal));
                assert!(!session.is_revoked());
            }
            other => panic!("neither the successor nor the grace answer: {other:?}"),
        }
    }
    assert_eq!(
        count_tokens(&db, "parent_hash", presented.as_bytes().to_vec().into()).await,
        1,
        "one successor row"
    );
    assert_eq!(
        count_tokens(&db, "session_id", (*f.session.id.as_uuid()).into()).await,
        2
    );
    assert!(
        !store
            .find(f.session.id)
            .await
            .unwrap()
            .unwrap()
            .is_revoked()
    );
}

async fn fifty_concurrent_replays_after_the_grace_revoke_the_family(db: Database) {
    let store = SeaSessionStore::new(db.clone());
    let policy = TokenPolicy::default();
    let owner = stored_user(&db, "leo").await.id;
    let f = login(&store, owner, t(0), &policy).await;
    let parent = f.tokens[0].hash;
    assert!(matches!(
        store
            .refresh(&parent, &successor(1), t(1), &policy)
            .await
            .unwrap(),
        RefreshOutcome::Rotated { .. }
    ));

    let after_grace = t(1).plus(policy.reuse_grace);
    let results = concurrently(&store, parent, after_grace, policy, 50).await;
    let reuse = results
        .iter()
        .filter(|(_, o)| matches!(o, RefreshOutcome::ReuseDetected { .. }))
        .count();
    let revoked = results
        .iter()
        .filter(|(_, o)| matches!(o, RefreshOutcome::Refused(RefreshRefusal::Revoked)))
        .count();
    assert_eq!(
        (reuse, revoked),
        (1, 49),
        "one detects the reuse, the others find the family revoked"
    );
    let stored = store.find(f.session.id).await.unwrap().unwrap();
    assert_eq!(stored.revoke_reason, Some(RevokeReason::ReuseDetected));
    assert_eq!(stored.revoked_at, Some(after_grace));
    assert_eq!(
        count_tokens(&db, "session_id", (*f.session.id.as_uuid()).into()).await,
        2,
        "nothing minted"
    );
}

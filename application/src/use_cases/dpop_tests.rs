//! DPoP binding on fakes: a login with a proved key binds its family and
//! its tokens' `cnf`; a bound family refreshes only with that key, and a
//! refusal rotates and revokes nothing; an unbound family ignores a key.

use domain::dpop::{Jkt, ProofRefusal};

use super::fakes::secret;
use super::tests::{client, login, world_with_alice};
use super::*;
use crate::ClientInfo;
use crate::ports::SecurityEventKind;

fn with_key(key: &str) -> ClientInfo {
    ClientInfo {
        key: Some(Jkt(key.into())),
        ..client()
    }
}

#[tokio::test]
async fn a_login_with_a_key_binds_the_family_and_its_tokens() {
    let w = world_with_alice().await;
    let bound = w
        .logins
        .login("alice", secret("correct horse"), &with_key("k1"))
        .await
        .unwrap()
        .done()
        .unwrap();
    assert_eq!(bound.session.jkt, Some(Jkt("k1".into())));
    let claims = w.tokens.claims_of(&bound.access.token).unwrap();
    assert_eq!(claims.cnf, Some(Jkt("k1".into())));

    let refreshed = w
        .sessions
        .refresh(Some(bound.refresh.secret.expose()), &with_key("k1"))
        .await
        .expect("the same key refreshes");
    let claims = w.tokens.claims_of(&refreshed.access.token).unwrap();
    assert_eq!(
        claims.cnf,
        Some(Jkt("k1".into())),
        "every token of the family"
    );

    let plain = login(&w).await;
    assert_eq!(plain.session.jkt, None);
    assert_eq!(w.tokens.claims_of(&plain.access.token).unwrap().cnf, None);
}

#[tokio::test]
async fn a_bound_family_refreshes_only_with_its_key_and_a_refusal_changes_nothing() {
    let w = world_with_alice().await;
    let bound = w
        .logins
        .login("alice", secret("correct horse"), &with_key("k1"))
        .await
        .unwrap()
        .done()
        .unwrap();
    let token = bound.refresh.secret.expose().to_owned();
    for (client, refusal) in [
        (client(), ProofRefusal::Missing),
        (with_key("k2"), ProofRefusal::OtherKey),
    ] {
        let r = w.sessions.refresh(Some(&token), &client).await;
        assert!(
            matches!(r, Err(RefreshError::DpopProof(got)) if got == refusal),
            "{r:?}"
        );
        assert_eq!(w.events.last().kind, SecurityEventKind::DpopProofRefused);
        assert_eq!(w.events.last().reason.as_deref(), Some(refusal.as_str()));
    }
    // Nothing was rotated: the token still refreshes, once, with the key.
    let next = w
        .sessions
        .refresh(Some(&token), &with_key("k1"))
        .await
        .expect("not rotated before");
    assert!(!next.grace_replay);
    // A rotated token replayed without the key revokes nothing either.
    let replay = w.sessions.refresh(Some(&token), &client()).await;
    assert!(
        matches!(replay, Err(RefreshError::DpopProof(_))),
        "{replay:?}"
    );
    w.sessions
        .refresh(Some(next.refresh.secret.expose()), &with_key("k1"))
        .await
        .expect("the family lives");

    // An unbound family ignores a key.
    let plain = login(&w).await;
    w.sessions
        .refresh(Some(plain.refresh.secret.expose()), &with_key("k9"))
        .await
        .expect("ignored");
}

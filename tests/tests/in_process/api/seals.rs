//! The refresh-grace seals (security review, finding 1): a copy of the
//! database and any stale refresh token must not lead to a live token.
//!
//! The attacker below holds a snapshot of `refresh_tokens` and one or more
//! rotated tokens of a family, and walks the chain the way the v1 seals
//! allowed: open the seal on the token's row, find its child's hash, repeat.

use std::collections::HashMap;
use std::time::Duration;

use application::{RefreshSecret, SealKey};
use authd::Config;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::app::{Backend, TestApp, spawn_app};
use sea_orm::{ConnectionTrait as _, Statement};
use sha2::{Digest as _, Sha256};

integration_tests::on_both!(std::future::ready; a_database_copy_and_a_stale_token_open_nothing);

/// One stored token, as a database copy shows it.
struct Row {
    parent: Option<Vec<u8>>,
    seal: Option<Vec<u8>>,
}

async fn snapshot(app: &TestApp) -> HashMap<Vec<u8>, Row> {
    let conn = app.running.database.connection();
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT hash, parent_hash, successor_seal FROM refresh_tokens",
        ))
        .await
        .expect("reading refresh_tokens");
    rows.into_iter()
        .map(|r| {
            let hash: Vec<u8> = r.try_get_by_index(0).unwrap();
            let parent: Option<Vec<u8>> = r.try_get_by_index(1).unwrap();
            let seal: Option<Vec<u8>> = r.try_get_by_index(2).unwrap();
            (hash, Row { parent, seal })
        })
        .collect()
}

fn raw(token: &str) -> [u8; 32] {
    URL_SAFE_NO_PAD
        .decode(token)
        .expect("base64url")
        .try_into()
        .expect("32 bytes")
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(raw(token)).to_vec()
}

/// Opens one seal: with `key` as the service does, or without one.
fn open(token: &str, seal: &[u8; 32], child: &[u8], key: Option<&SealKey>) -> Option<String> {
    let expected = domain::TokenHash::from_bytes(child.try_into().ok()?);
    match key {
        Some(key) => RefreshSecret::parse(token)?
            .open_successor(key, seal, &expected)
            .map(|s| s.expose().to_owned()),
        None => {
            // The v1 derivation, SHA-256(label || parent): it needed no secret.
            let mut h = Sha256::new();
            h.update(b"authd/refresh-grace-seal/v1\0");
            h.update(raw(token));
            let pad: [u8; 32] = h.finalize().into();
            let candidate: [u8; 32] = std::array::from_fn(|i| pad[i] ^ seal[i]);
            (Sha256::digest(candidate).as_slice() == child)
                .then(|| URL_SAFE_NO_PAD.encode(candidate))
                // Or the v2 derivation under a guessed (all-zero, the
                // application's test default) key.
                .or_else(|| {
                    RefreshSecret::parse(token)?
                        .open_successor(&SealKey::from_bytes([0; 32]), seal, &expected)
                        .map(|s| s.expose().to_owned())
                })
        }
    }
}

/// Walks from `token` seal by seal; the last token reached, if any step opened.
fn walk(rows: &HashMap<Vec<u8>, Row>, token: &str, key: Option<&SealKey>) -> Option<String> {
    let mut at = token.to_owned();
    let mut reached = None;
    for _ in 0..100 {
        let h = hash(&at);
        let Some(seal) = rows.get(&h).and_then(|r| r.seal.clone()) else {
            break;
        };
        let Some((child, _)) = rows.iter().find(|(_, r)| r.parent.as_deref() == Some(&h)) else {
            break;
        };
        let seal: [u8; 32] = seal.try_into().expect("a 32-byte seal");
        let Some(next) = open(&at, &seal, child, key) else {
            break;
        };
        reached = Some(next.clone());
        at = next;
    }
    reached
}

pub async fn a_database_copy_and_a_stale_token_open_nothing(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            refresh_reuse_grace: Duration::from_secs(2),
            ..Config::default()
        },
    )
    .await;
    let s = app.signed_in("alice").await;
    let mut chain = vec![s.refresh.clone()];
    for _ in 0..5 {
        let r = app.refresh(chain.last().unwrap()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        chain.push(r.refresh_cookie().unwrap());
    }
    let current = chain.last().unwrap().clone();
    let (stale, parent) = (&chain[..4], &chain[4]);

    let rows = snapshot(&app).await;
    let sealed: Vec<&Vec<u8>> = rows
        .iter()
        .filter(|(_, r)| r.seal.is_some())
        .map(|(h, _)| h)
        .collect();
    assert_eq!(
        sealed,
        vec![&hash(parent)],
        "only the direct parent of the current token holds a seal"
    );
    // The attacker: the copy and every rotated token, without the server key.
    for token in &chain[..5] {
        assert_eq!(
            walk(&rows, token, None),
            None,
            "a seal opened without the key"
        );
    }
    // Even with the key (which is not in the database), older tokens lead nowhere...
    let key = &app.running.use_cases.config.seal_key;
    for token in stale {
        assert_eq!(walk(&rows, token, Some(key)), None, "a stale token walked");
    }
    // ...and the walk itself is sound: the parent's seal opens to the current token.
    assert_eq!(
        walk(&rows, parent, Some(key)).as_deref(),
        Some(current.as_str())
    );

    // When the grace has passed the last seal is erased (the sweep runs every second).
    app.clock.advance(Duration::from_secs(2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let left = snapshot(&app)
            .await
            .into_values()
            .filter(|r| r.seal.is_some())
            .count();
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} seals outlived the grace by 8 s"
        );
    }
    // The family is untouched: its current token still rotates.
    assert_eq!(app.refresh(&current).await.status, 200);
}

//! The signing-key set: what every process reads, the first key added once,
//! a retirement and its promotion in one transaction, private keys sealed.

use super::*;
use adapters::crypto::key_ring::seal_private;
use adapters::crypto::key_seal::KeySeal;
use adapters::persistence::SeaSigningKeyStore;
use application::SealKey;
use application::ports::{SigningKeyStore, StoredKey};
use domain::{Algorithm, KeyRecord};

integration_tests::on_both!(
    crate::persistence::database;
    keys_are_stored_whole_and_the_first_key_is_added_once,
    a_retirement_and_its_promotion_land_together,
);

fn key(kid: &str, created: i64, signs_from: i64) -> StoredKey {
    StoredKey {
        record: KeyRecord {
            kid: kid.to_owned(),
            alg: Algorithm::Rs256,
            created_at: Timestamp::from_unix_millis(created),
            signs_from: Timestamp::from_unix_millis(signs_from),
            retired_at: None,
        },
        public_pem: format!("public of {kid}"),
        sealed_private: vec![1, 2, 3, 0, 255],
    }
}

async fn keys_are_stored_whole_and_the_first_key_is_added_once(db: Database) {
    let store = SeaSigningKeyStore::new(db.clone());
    assert!(store.list().await.unwrap().is_empty());
    assert!(store.insert(&key("a", 10, 10), true).await.unwrap());
    // A second "first key" (another process starting at the same time) is not added.
    assert!(!store.insert(&key("b", 11, 11), true).await.unwrap());
    assert!(store.insert(&key("c", 20, 30), false).await.unwrap());
    assert!(
        !store.insert(&key("c", 21, 31), false).await.unwrap(),
        "same kid"
    );
    let listed = store.list().await.unwrap();
    assert_eq!(
        listed,
        vec![key("a", 10, 10), key("c", 20, 30)],
        "oldest first, whole"
    );
}

async fn a_retirement_and_its_promotion_land_together(db: Database) {
    let store = SeaSigningKeyStore::new(db.clone());
    store.insert(&key("a", 10, 10), true).await.unwrap();
    store.insert(&key("b", 20, 1_000), false).await.unwrap();
    store
        .retire("a", Some("b"), Timestamp::from_unix_millis(50))
        .await
        .unwrap();
    let listed = store.list().await.unwrap();
    assert_eq!(
        listed[0].record.retired_at,
        Some(Timestamp::from_unix_millis(50))
    );
    assert_eq!(listed[1].record.signs_from, Timestamp::from_unix_millis(50));
    assert_eq!(listed[1].record.retired_at, None);
}

/// The private key in the table is sealed: its DER appears nowhere in the
/// row, and it opens only under the server secret it was sealed with.
#[tokio::test]
async fn private_keys_are_stored_sealed() {
    let db = crate::persistence::database(Backend::Sqlite).await;
    let secret = SealKey::from_bytes([9; SealKey::LEN]);
    let private = integration_tests::app::test_signing_key();
    let minted = seal_private(&KeySeal::new(&secret), &private.clone().into()).unwrap();
    let stored = StoredKey {
        record: KeyRecord::first(
            minted.kid.clone(),
            Algorithm::Rs256,
            Timestamp::from_unix_millis(1),
        ),
        public_pem: minted.public_pem.clone(),
        sealed_private: minted.sealed_private.clone(),
    };
    SeaSigningKeyStore::new(db.clone())
        .insert(&stored, true)
        .await
        .unwrap();
    let row = &SeaSigningKeyStore::new(db).list().await.unwrap()[0];
    let der = private.to_pkcs8_der().unwrap();
    assert!(
        !row.sealed_private
            .windows(32)
            .any(|w| der.windows(32).any(|d| d == w)),
        "no 32-byte run of the private key's DER is in the row"
    );
    let opened = KeySeal::new(&secret)
        .open(&row.record.kid, Algorithm::Rs256, &row.sealed_private)
        .unwrap();
    assert_eq!(&**opened, &**der);
    let other = SealKey::from_bytes([8; SealKey::LEN]);
    assert!(
        KeySeal::new(&other)
            .open(&row.record.kid, Algorithm::Rs256, &row.sealed_private)
            .is_err()
    );
}

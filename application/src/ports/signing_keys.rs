//! The signing-key set: where every process reads it, and how keys are made.

use async_trait::async_trait;
use domain::{Algorithm, KeyRecord, Timestamp};

/// A key of the set as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Its algorithm and times.
    pub record: KeyRecord,
    /// The public key, SPKI PEM.
    pub public_pem: String,
    /// The private key, sealed by the adapter that made it under a key that
    /// is not in the store; opaque here.
    pub sealed_private: Vec<u8>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// The shared store of the key set (a table every process of a deployment
/// reads).
#[async_trait]
pub trait SigningKeyStore: Send + Sync + 'static {
    /// Every key, retired ones included, oldest first.
    ///
    /// # Errors
    /// Storage failures.
    async fn list(&self) -> anyhow::Result<Vec<StoredKey>>;

    /// Adds `key`, or, with `only_if_empty`, adds it only when the store
    /// holds no key at all (the first start); says whether it was added.
    ///
    /// # Errors
    /// Storage failures.
    async fn insert(&self, key: &StoredKey, only_if_empty: bool) -> anyhow::Result<bool>;

    /// Withdraws `retire` at `now` and, in the same transaction, lets
    /// `promote` sign from `now`.
    ///
    /// # Errors
    /// Storage failures.
    async fn retire(
        &self,
        retire: &str,
        promote: Option<&str>,
        now: Timestamp,
    ) -> anyhow::Result<()>;
}

/// A new key pair, its private half already sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedKey {
    /// Key id (RFC 7638 thumbprint of the public key).
    pub kid: String,
    /// The public key, SPKI PEM.
    pub public_pem: String,
    /// The sealed private key.
    pub sealed_private: Vec<u8>,
}

impl std::fmt::Debug for MintedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Makes key pairs (slow for RSA: implementations run off the async threads).
#[async_trait]
pub trait KeyMinter: Send + Sync + 'static {
    /// A new key pair for `alg`.
    ///
    /// # Errors
    /// Key generation or sealing failed.
    async fn mint(&self, alg: Algorithm) -> anyhow::Result<MintedKey>;
}

//! Manage the signing-key set: create the first key, rotate, retire, list
//! (`authd keys ...`). The rules are `domain::signing_keys`'.

use std::sync::Arc;
use std::time::Duration;

use domain::signing_keys::{self, RetireError};
use domain::{Algorithm, KeyRecord, KeyState};

use crate::ports::{Clock, KeyMinter, MintedKey, SigningKeyStore, StoredKey};

/// The key-set operations, on the ports they need.
#[derive(Clone)]
pub struct SigningKeys {
    /// The shared key set.
    pub store: Arc<dyn SigningKeyStore>,
    /// Makes new keys of `alg`.
    pub minter: Arc<dyn KeyMinter>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// `JWT_ALG`: the algorithm of keys created from now on.
    pub alg: Algorithm,
    /// `KEY_PUBLISH_AHEAD`: how long a rotated-in key is published before it signs.
    pub publish_ahead: Duration,
    /// `ACCESS_TOKEN_EXPIRY`: how long a replaced key stays accepted.
    pub access_ttl: Duration,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("alg", &self.alg)
            .field("publish_ahead", &self.publish_ahead)
            .finish_non_exhaustive()
    }
}

/// A key and its state now, for `authd keys list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    /// The key.
    pub record: KeyRecord,
    /// Its state now.
    pub state: KeyState,
}

/// What a retirement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    /// The key that signs from now on, when the retired key was signing.
    pub now_signing: Option<String>,
}

/// Why `authd keys retire` refused.
#[derive(Debug, thiserror::Error)]
pub enum RetireKeyError {
    /// Unknown or already retired.
    #[error(transparent)]
    Refused(#[from] RetireError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl SigningKeys {
    /// Gives an empty set its first key, signing at once: `existing` (the
    /// key files of a version before the key set, keeping their kid) or a
    /// new key of `alg`. Says which kid it added, if any; processes starting
    /// together add one key between them.
    ///
    /// # Errors
    /// Storage, or making the key, failed.
    pub async fn ensure_first(
        &self,
        existing: impl FnOnce() -> anyhow::Result<Option<(Algorithm, MintedKey)>>,
    ) -> anyhow::Result<Option<String>> {
        if !self.store.list().await?.is_empty() {
            return Ok(None);
        }
        let (alg, key) = match existing()? {
            Some(found) => found,
            None => (self.alg, self.minter.mint(self.alg).await?),
        };
        let kid = key.kid.clone();
        let record = KeyRecord::first(kid.clone(), alg, self.clock.now());
        let added = self.store.insert(&stored(record, key), true).await?;
        Ok(added.then_some(kid))
    }

    /// Adds a key of `alg`, published now, signing after `publish_ahead`.
    ///
    /// # Errors
    /// Storage, or making the key, failed.
    pub async fn rotate(&self) -> anyhow::Result<KeyRecord> {
        let key = self.minter.mint(self.alg).await?;
        let record = KeyRecord::rotated_in(
            key.kid.clone(),
            self.alg,
            self.clock.now(),
            self.publish_ahead,
        );
        if !self
            .store
            .insert(&stored(record.clone(), key), false)
            .await?
        {
            anyhow::bail!("a key with kid {} exists already", record.kid);
        }
        Ok(record)
    }

    /// Withdraws `kid` at once. Retiring the signing key makes the newest
    /// published key current, or a new key when none is left.
    ///
    /// # Errors
    /// [`RetireKeyError`].
    pub async fn retire(&self, kid: &str) -> Result<Retired, RetireKeyError> {
        let records = self.records().await?;
        let now = self.clock.now();
        let plan = signing_keys::retire(&records, kid, now, self.access_ttl)?;
        if plan.needs_new_key {
            // The replacement signs at once: there is nothing else to sign with.
            let key = self.minter.mint(self.alg).await?;
            let record = KeyRecord::first(key.kid.clone(), self.alg, now);
            self.store.insert(&stored(record, key), false).await?;
        }
        self.store
            .retire(&plan.retire, plan.promote.as_deref(), now)
            .await?;
        let after = self.records().await?;
        let now_signing = signing_keys::current(&after, now)
            .filter(|_| {
                plan.promote.is_some() || plan.needs_new_key || was_current(&records, kid, now)
            })
            .map(|k| k.kid.clone());
        Ok(Retired { now_signing })
    }

    /// Every key with its state now, oldest first.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn list(&self) -> anyhow::Result<Vec<KeyView>> {
        let records = self.records().await?;
        let now = self.clock.now();
        Ok(records
            .iter()
            .map(|r| KeyView {
                record: r.clone(),
                state: signing_keys::state(&records, r, now, self.access_ttl),
            })
            .collect())
    }

    async fn records(&self) -> anyhow::Result<Vec<KeyRecord>> {
        Ok(self
            .store
            .list()
            .await?
            .into_iter()
            .map(|k| k.record)
            .collect())
    }
}

fn was_current(records: &[KeyRecord], kid: &str, now: domain::Timestamp) -> bool {
    signing_keys::current(records, now).is_some_and(|k| k.kid == kid)
}

fn stored(record: KeyRecord, key: MintedKey) -> StoredKey {
    StoredKey {
        record,
        public_pem: key.public_pem,
        sealed_private: key.sealed_private,
    }
}

//! The signing-key set as one process holds it: read from the shared store,
//! re-read every few seconds, and used to sign and verify.
//!
//! Which key signs and which are accepted is decided by
//! `domain::signing_keys` at each signature and at each re-read; this file
//! only loads keys and keeps the loaded set fresh. A process that only
//! verifies (the WebSocket service) holds no private key.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use application::ports::{
    AccessTokenSigner, AccessTokenVerifier, Clock, InvalidToken, KeyMinter, MintedKey,
    PublishedKey, SigningKeyStore, StoredKey,
};
use async_trait::async_trait;
use domain::{AccessClaims, Algorithm, KeyRecord, Timestamp, signing_keys};

use super::jws_keys::{KeyPair, PublicJwk};
use super::jwt::{JwtSigner, JwtVerifier};
use super::key_seal::KeySeal;

/// How often a process re-reads the key set: every process follows a
/// rotation or a retirement within this (the contract allows 10 s).
pub const FOLLOW_EVERY: Duration = Duration::from_secs(3);

/// Settings of a [`KeyRing`].
#[derive(Debug, Clone)]
pub struct KeyRingConfig {
    /// `JWT_ISSUER`.
    pub issuer: String,
    /// `JWT_AUDIENCE`.
    pub audience: String,
    /// `ACCESS_TOKEN_EXPIRY`: how long a replaced key stays accepted.
    pub access_ttl: Duration,
}

/// The loaded set: the records, a signer per published key whose private
/// half this process holds, and a verifier of the published keys.
struct Loaded {
    records: Vec<KeyRecord>,
    published: Vec<String>,
    signers: HashMap<String, JwtSigner>,
    verifier: JwtVerifier,
}

/// The key set of this process: signs with the current key, verifies with
/// every published one.
pub struct KeyRing {
    store: Arc<dyn SigningKeyStore>,
    /// `None`: verify only, no private key is opened.
    seal: Option<KeySeal>,
    clock: Arc<dyn Clock>,
    config: KeyRingConfig,
    loaded: RwLock<Arc<Loaded>>,
    version: AtomicU64,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loaded = self.snapshot();
        f.debug_struct("KeyRing")
            .field("published", &loaded.published)
            .field("signs", &self.seal.is_some())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Reads the key set from `store`; with `seal`, opens the private keys
    /// of the published ones to sign with them.
    ///
    /// # Errors
    /// The store failed, a key does not parse or open, or no key is current.
    pub async fn load(
        store: Arc<dyn SigningKeyStore>,
        seal: Option<KeySeal>,
        clock: Arc<dyn Clock>,
        config: KeyRingConfig,
    ) -> anyhow::Result<Self> {
        let keys = store.list().await?;
        let loaded = build(&keys, seal.as_ref(), clock.now(), &config, None)?;
        Ok(Self {
            store,
            seal,
            clock,
            config,
            loaded: RwLock::new(Arc::new(loaded)),
            version: AtomicU64::new(0),
        })
    }

    fn snapshot(&self) -> Arc<Loaded> {
        Arc::clone(
            &self
                .loaded
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Re-reads the set; rebuilds what it holds when a key was added,
    /// withdrawn, or left the published set with time. Says whether it did.
    ///
    /// # Errors
    /// The store failed or a new key does not parse or open (the loaded
    /// set stays in use).
    pub async fn refresh(&self) -> anyhow::Result<bool> {
        let keys = self.store.list().await?;
        let now = self.clock.now();
        let old = self.snapshot();
        let records: Vec<KeyRecord> = keys.iter().map(|k| k.record.clone()).collect();
        if records == old.records && published_kids(&records, now, &self.config) == old.published {
            return Ok(false);
        }
        let loaded = build(&keys, self.seal.as_ref(), now, &self.config, Some(&old))?;
        tracing::info!(published = ?loaded.published, current = ?signing_keys::current(&records, now).map(|k| &k.kid), "signing keys changed");
        *self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    /// Re-reads the set every [`FOLLOW_EVERY`], for as long as the ring is in use.
    pub async fn follow(ring: std::sync::Weak<Self>) {
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(ring) = ring.upgrade() else { return };
            if let Err(e) = ring.refresh().await {
                tracing::warn!(error = %format!("{e:#}"), "cannot re-read the signing keys; keeping the loaded ones");
            }
        }
    }
}

fn published_kids(records: &[KeyRecord], now: Timestamp, config: &KeyRingConfig) -> Vec<String> {
    signing_keys::published(records, now, config.access_ttl)
        .into_iter()
        .map(|k| k.kid.clone())
        .collect()
}

/// Parses the published keys of `keys` (reusing what `old` already parsed).
fn build(
    keys: &[StoredKey],
    seal: Option<&KeySeal>,
    now: Timestamp,
    config: &KeyRingConfig,
    old: Option<&Loaded>,
) -> anyhow::Result<Loaded> {
    let records: Vec<KeyRecord> = keys.iter().map(|k| k.record.clone()).collect();
    let published = published_kids(&records, now, config);
    let mut signers = HashMap::new();
    let mut publics = Vec::new();
    for key in keys.iter().filter(|k| published.contains(&k.record.kid)) {
        let kid = &key.record.kid;
        let alg = key.record.alg;
        // The key is read as a key of its record's algorithm, and only
        // verifies that algorithm's signatures.
        let public = PublicJwk::from_pem(alg, &key.public_pem)
            .with_context(|| format!("the public key of signing key {kid} ({alg})"))?;
        if public.kid() != kid {
            bail!("signing key {kid}: its public key has kid {}", public.kid());
        }
        publics.push(public);
        let Some(seal) = seal else { continue };
        if let Some(signer) = old.and_then(|o| o.signers.get(kid)) {
            signers.insert(kid.clone(), signer.clone());
            continue;
        }
        let der = seal.open(kid, alg, &key.sealed_private)?;
        let private = KeyPair::from_pkcs8_der(alg, &der)
            .with_context(|| format!("the private key of signing key {kid} ({alg})"))?;
        if private.kid() != kid {
            bail!(
                "signing key {kid}: its private key has kid {}",
                private.kid()
            );
        }
        signers.insert(kid.clone(), JwtSigner::new(private));
    }
    if seal.is_some() && signing_keys::current(&records, now).is_none() {
        bail!("no signing key is current (run `authd keys rotate`)");
    }
    Ok(Loaded {
        records,
        published,
        signers,
        verifier: JwtVerifier::new(publics, config.issuer.clone(), config.audience.clone()),
    })
}

#[async_trait]
impl AccessTokenSigner for KeyRing {
    async fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let loaded = self.snapshot();
        let now = self.clock.now();
        let current =
            signing_keys::current(&loaded.records, now).context("no signing key is current")?;
        let signer = loaded
            .signers
            .get(&current.kid)
            .with_context(|| format!("the private key of {} is not loaded", current.kid))?;
        signer.sign(claims).await
    }
}

impl AccessTokenVerifier for KeyRing {
    fn published_keys(&self) -> Vec<PublishedKey> {
        self.snapshot().verifier.published_keys()
    }

    fn verify(
        &self,
        token: &str,
        now: Timestamp,
        leeway_secs: i64,
    ) -> Result<AccessClaims, InvalidToken> {
        self.snapshot().verifier.verify(token, now, leeway_secs)
    }

    fn key_set_version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    fn kid_of(&self, token: &str) -> Option<String> {
        self.snapshot().verifier.kid_of(token)
    }

    fn accepts_key(&self, kid: &str) -> bool {
        self.snapshot().verifier.accepts_key(kid)
    }
}

/// Seals `private` for the store: a key of the set, under `seal`.
///
/// # Errors
/// Encoding or sealing failed.
pub fn seal_private(seal: &KeySeal, private: &KeyPair) -> anyhow::Result<MintedKey> {
    let der = private.to_pkcs8_der()?;
    Ok(MintedKey {
        kid: private.kid().to_owned(),
        public_pem: private.public().to_spki_pem()?,
        sealed_private: seal.seal(private.kid(), private.alg(), &der)?,
    })
}

/// Makes key pairs of any algorithm (RSA keys of `rsa_bits` bits), sealed
/// under the server secret.
#[derive(Debug, Clone)]
pub struct Minter {
    seal: KeySeal,
    rsa_bits: usize,
}

impl Minter {
    /// RSA keys of `rsa_bits` bits (4096 in production), every key sealed by `seal`.
    pub fn new(seal: KeySeal, rsa_bits: usize) -> Self {
        Self { seal, rsa_bits }
    }
}

#[async_trait]
impl KeyMinter for Minter {
    async fn mint(&self, alg: Algorithm) -> anyhow::Result<MintedKey> {
        let bits = self.rsa_bits;
        // Seconds for a 4096-bit RSA key: off the async threads.
        let private = tokio::task::spawn_blocking(move || KeyPair::generate(alg, bits))
            .await
            .context("key generation task failed")??;
        seal_private(&self.seal, &private)
    }
}

//! Checking the DPoP proof of a request (contract v3, "DPoP"): its JWS
//! (the [`DpopVerifier`]), its claims against the request and the clock
//! (`domain::dpop`), and its `jti`, accepted once: across every process at
//! logins and refreshes (the [`DpopReplayStore`]), within this process for
//! every other request (a bounded set in memory).

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher as _, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::TokenHash;
use domain::dpop::{self, Jkt, ProofRefusal, Target};
use sha2::{Digest as _, Sha256};

use crate::ClientInfo;
use crate::ports::security_events::report;
use crate::ports::{
    Clock, DpopReplayStore, DpopVerifier, SecurityEvent, SecurityEventKind, SecurityEvents,
};

/// Proof ids this process remembers at most (for requests other than
/// logins and refreshes): what a hash table of 2^21 slots holds before it
/// grows, at about 25 bytes an id (an 8-byte fingerprint in the table and
/// in its second's list), ~45 MiB at the cap. An id is forgotten once its
/// proof is stale (`DPOP_PROOF_MAX_AGE` after its `iat`, 61 s for proofs
/// made as they are sent), so the cap is reached only above ~30,000 DPoP
/// requests a second in one process, more than a process verifies on the
/// 2 cores it was measured on. At the cap the proof is refused
/// (`replay_cache_full`), never accepted unremembered: a client retries
/// with a new proof a moment later.
pub const LOCAL_JTI_CAP: usize = (1 << 21) / 8 * 7;

/// Where a proof's `jti` must be unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayScope {
    /// Logins and refreshes: every process (the database).
    EveryProcess,
    /// Everything else: this process.
    ThisProcess,
}

/// A proof that did not pass, with the reason the audit trail records.
#[derive(Debug, thiserror::Error)]
pub enum DpopError {
    /// Refused; the reason is snake_case and names no part of the proof.
    #[error("DPoP proof refused: {0}")]
    Refused(&'static str),
    /// The replay store failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The proof checks of a process.
pub struct DpopProofs {
    verifier: Arc<dyn DpopVerifier>,
    used: Arc<dyn DpopReplayStore>,
    local: Mutex<LocalJtis>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn SecurityEvents>,
    max_age: Duration,
}

impl std::fmt::Debug for DpopProofs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopProofs")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl DpopProofs {
    /// Proof checks on these ports; `max_age` is `DPOP_PROOF_MAX_AGE`.
    pub fn new(
        verifier: Arc<dyn DpopVerifier>,
        used: Arc<dyn DpopReplayStore>,
        clock: Arc<dyn Clock>,
        events: Arc<dyn SecurityEvents>,
        max_age: Duration,
    ) -> Self {
        Self {
            verifier,
            used,
            local: Mutex::new(LocalJtis::new(LOCAL_JTI_CAP)),
            clock,
            events,
            max_age,
        }
    }

    /// Checks `proof`, presented with a request to `target` (and, for a
    /// request with an access token, that token): the key it proves, or why
    /// not. A refusal is audited `dpop_proof_refused` with its reason.
    ///
    /// # Errors
    /// [`DpopError::Refused`]; storage failures.
    pub async fn check(
        &self,
        proof: &str,
        target: &Target<'_>,
        access_token: Option<&str>,
        scope: ReplayScope,
        client: &ClientInfo,
    ) -> Result<Jkt, DpopError> {
        let result = self.judge(proof, target, access_token, scope).await;
        if let Err(DpopError::Refused(reason)) = &result {
            tracing::info!(reason, "DPoP proof refused");
            let event = SecurityEvent::new(
                SecurityEventKind::DpopProofRefused,
                self.clock.now(),
                client,
            )
            .reason(reason);
            report(self.events.as_ref(), event).await;
        }
        if result.is_ok() {
            let event = SecurityEvent::new(
                SecurityEventKind::DpopProofAccepted,
                self.clock.now(),
                client,
            );
            report(self.events.as_ref(), event).await;
        }
        result
    }

    async fn judge(
        &self,
        proof: &str,
        target: &Target<'_>,
        access_token: Option<&str>,
        scope: ReplayScope,
    ) -> Result<Jkt, DpopError> {
        let claims = self
            .judge_claims(proof, target, access_token)
            .map_err(DpopError::Refused)?;
        match scope {
            ReplayScope::EveryProcess => {
                let id = jti_id(&claims.jkt, &claims.jti);
                let until = self.clock.now().plus(dpop::replay_window(self.max_age));
                if !self.used.use_once(&id, until).await? {
                    return Err(DpopError::Refused(ProofRefusal::Replayed.as_str()));
                }
                Ok(claims.jkt)
            }
            ReplayScope::ThisProcess => self.remember_here(claims).map_err(DpopError::Refused),
        }
    }

    /// [`Self::check`] within this process, without waiting on anything
    /// (a WebSocket handshake decides synchronously): the key, or the
    /// refusal's reason, which the caller reports with [`Self::report`].
    ///
    /// # Errors
    /// The reason of the refusal.
    pub fn check_here(
        &self,
        proof: &str,
        target: &Target<'_>,
        access_token: Option<&str>,
    ) -> Result<Jkt, &'static str> {
        let claims = self.judge_claims(proof, target, access_token)?;
        self.remember_here(claims)
    }

    /// Reports the outcome of a [`Self::check_here`].
    pub async fn report(&self, outcome: Result<(), &'static str>, client: &ClientInfo) {
        let now = self.clock.now();
        let event = match outcome {
            Ok(()) => SecurityEvent::new(SecurityEventKind::DpopProofAccepted, now, client),
            Err(reason) => {
                tracing::info!(reason, "DPoP proof refused");
                SecurityEvent::new(SecurityEventKind::DpopProofRefused, now, client).reason(reason)
            }
        };
        report(self.events.as_ref(), event).await;
    }

    /// The JWS and the claims against the request and the clock.
    fn judge_claims(
        &self,
        proof: &str,
        target: &Target<'_>,
        access_token: Option<&str>,
    ) -> Result<dpop::ProofClaims, &'static str> {
        let claims = self.verifier.verify(proof)?;
        let ath = access_token.map(token_hash);
        dpop::check_proof(
            &claims,
            target,
            self.clock.now(),
            self.max_age,
            ath.as_deref(),
        )
        .map_err(ProofRefusal::as_str)?;
        Ok(claims)
    }

    /// The `jti` of `claims` into this process's set, once.
    fn remember_here(&self, claims: dpop::ProofClaims) -> Result<Jkt, &'static str> {
        let now = self.clock.now().unix_seconds();
        let id = jti_id(&claims.jkt, &claims.jti);
        let last = dpop::fresh_until(claims.iat, self.max_age);
        let mut local = self
            .local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match local.use_once(&id, last, now) {
            Some(true) => Ok(claims.jkt),
            Some(false) => Err(ProofRefusal::Replayed.as_str()),
            None => Err("replay_cache_full"),
        }
    }

    /// Ids in this process's set (for the metrics).
    pub fn remembered(&self) -> usize {
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// `ath`: the base64url SHA-256 of an access token (RFC 9449 §4.2).
pub fn token_hash(token: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// A proof's id as stored: SHA-256 over its key's thumbprint and its `jti`
/// (two clients may pick the same `jti`; one client may not use it twice).
fn jti_id(jkt: &Jkt, jti: &str) -> TokenHash {
    let mut h = Sha256::new();
    h.update(b"dpop-jti\0");
    h.update(jkt.0.as_bytes());
    h.update([0]);
    h.update(jti.as_bytes());
    TokenHash::from_bytes(h.finalize().into())
}

/// The ids this process has seen, each until the last second its proof is
/// fresh. An id is kept as a 64-bit fingerprint keyed at random per
/// process: two ids share one with a chance of about 2^-43 at the cap, which
/// refuses a proof as a replay (never accepts one), and no one outside the
/// process can aim at it.
#[derive(Debug)]
struct LocalJtis {
    seen: HashSet<u64>,
    /// The fingerprints by the last second they must be kept.
    expiring: BTreeMap<i64, Vec<u64>>,
    keys: RandomState,
    cap: usize,
}

impl LocalJtis {
    fn new(cap: usize) -> Self {
        Self {
            seen: HashSet::new(),
            expiring: BTreeMap::new(),
            keys: RandomState::new(),
            cap,
        }
    }

    fn len(&self) -> usize {
        self.seen.len()
    }

    /// `Some(true)` the first time, `Some(false)` for a replay, `None` when
    /// the set is full of ids still fresh. `last` is the last second `id`
    /// must be kept; `now` is the clock's second.
    fn use_once(&mut self, id: &TokenHash, last: i64, now: i64) -> Option<bool> {
        self.forget_before(now);
        let print = self.keys.hash_one(id.as_bytes());
        if self.seen.contains(&print) {
            return Some(false);
        }
        if self.seen.len() >= self.cap {
            return None;
        }
        self.seen.insert(print);
        self.expiring.entry(last).or_default().push(print);
        Some(true)
    }

    /// Forgets the ids whose last second is before `now`, and gives back
    /// the table's memory once a burst has passed.
    fn forget_before(&mut self, now: i64) {
        let mut forgot = false;
        while let Some(entry) = self.expiring.first_entry() {
            if *entry.key() >= now {
                break;
            }
            for print in entry.remove() {
                self.seen.remove(&print);
            }
            forgot = true;
        }
        if forgot && self.seen.capacity() > 4 * self.seen.len() + 4096 {
            self.seen.shrink_to(2 * self.seen.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> TokenHash {
        TokenHash::from_bytes([n; 32])
    }

    #[test]
    fn local_ids_are_used_once_forgotten_after_their_last_second_and_capped() {
        let mut set = LocalJtis::new(2);
        assert_eq!(set.use_once(&id(1), 60, 0), Some(true));
        assert_eq!(set.use_once(&id(1), 70, 10), Some(false));
        assert_eq!(set.use_once(&id(2), 100, 10), Some(true));
        assert_eq!(set.use_once(&id(3), 71, 11), None, "full: refused");
        assert_eq!(
            set.use_once(&id(1), 70, 60),
            Some(false),
            "kept to its last second"
        );
        assert_eq!(set.use_once(&id(3), 121, 61), Some(true), "1 forgotten");
        assert_eq!(set.use_once(&id(1), 121, 61), None, "2 and 3 still held");
        assert_eq!(set.len(), 2);
        assert_eq!(set.use_once(&id(1), 161, 101), Some(true), "2 forgotten");
        assert_eq!(set.use_once(&id(3), 161, 101), Some(false));
        assert_eq!(set.use_once(&id(4), 200, 200), Some(true));
        assert_eq!(set.len(), 1, "1 and 3 forgotten");
    }

    #[test]
    fn a_burst_gives_its_memory_back() {
        let mut set = LocalJtis::new(LOCAL_JTI_CAP);
        for n in 0..200_000u32 {
            let mut bytes = [0; 32];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            assert_eq!(
                set.use_once(&TokenHash::from_bytes(bytes), 60, 0),
                Some(true)
            );
        }
        let burst = set.seen.capacity();
        assert!(burst >= 200_000);
        assert_eq!(set.use_once(&id(1), 200, 100), Some(true));
        assert_eq!(set.len(), 1);
        assert!(set.seen.capacity() < burst / 100, "{}", set.seen.capacity());
        assert!(set.expiring.len() == 1);
    }

    #[test]
    fn the_token_hash_is_rfc_9449s() {
        // RFC 9449 §7.1: the ath of the example access token.
        assert_eq!(
            token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}

//! Sender-constrained sessions (contract v3, "DPoP"): what checks a proof's
//! signature, and where used proof ids are remembered by every process.

use async_trait::async_trait;
use domain::dpop::ProofClaims;
use domain::{Timestamp, TokenHash};

/// Verifies a DPoP proof's JWS: its header (`typ`, `alg`, a public `jwk`),
/// its signature by that key, and the claims' types. What the claims must
/// say is `domain::dpop`'s.
pub trait DpopVerifier: Send + Sync + 'static {
    /// The claims and the key's thumbprint of `compact`.
    ///
    /// # Errors
    /// Why it was refused: a short snake_case reason (for the audit trail
    /// and the metrics, never the proof).
    fn verify(&self, compact: &str) -> Result<ProofClaims, &'static str>;
}

/// The proof ids used at logins and refreshes, seen by every process.
#[async_trait]
pub trait DpopReplayStore: Send + Sync + 'static {
    /// Records `id` until `expires_at`: `true` the first time, `false` when
    /// it was recorded before (by any process, however many race).
    ///
    /// # Errors
    /// Storage failures.
    async fn use_once(&self, id: &TokenHash, expires_at: Timestamp) -> anyhow::Result<bool>;

    /// Forgets the ids whose window ended before `now`; how many.
    ///
    /// # Errors
    /// Storage failures.
    async fn prune(&self, now: Timestamp) -> anyhow::Result<u64>;
}

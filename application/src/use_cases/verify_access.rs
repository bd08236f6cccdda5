//! Verify an access token, including the revocation of its session.

use std::sync::Arc;

use domain::{AccessClaims, SessionId, Timestamp};

use crate::ports::{AccessTokenVerifier, Clock, InvalidToken, PublishedKey};
use crate::{Revocations, VerifiedTokens};

/// Clock leeway for `exp` and `nbf`, in seconds ([`domain::revocation::CLOCK_LEEWAY`]).
pub const CLOCK_LEEWAY_SECS: i64 = domain::revocation::CLOCK_LEEWAY.as_secs() as i64;

/// Checking access tokens (REST bearer tokens and WebSocket tokens), on
/// exactly the ports it needs. Cheap to clone: clones share the caches.
#[derive(Clone)]
pub struct AccessCheck {
    /// Signatures and claims.
    pub verifier: Arc<dyn AccessTokenVerifier>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Sessions revoked since their tokens were signed.
    pub revocations: Revocations,
    /// Claims verified before (`TOKEN_CACHE_SIZE`).
    pub verified: Arc<VerifiedTokens>,
    /// `ACCESS_TOKEN_EXPIRY`: no accepted token lives longer (plus leeway).
    pub access_ttl: std::time::Duration,
}

impl std::fmt::Debug for AccessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessCheck")
            .field("revocations", &self.revocations)
            .finish_non_exhaustive()
    }
}

impl AccessCheck {
    /// A check on `verifier` that keeps up to `cache_size` verified claims
    /// and refuses tokens that live longer than `access_ttl` (plus leeway).
    pub fn new(
        verifier: Arc<dyn AccessTokenVerifier>,
        clock: Arc<dyn Clock>,
        revocations: Revocations,
        cache_size: usize,
        access_ttl: std::time::Duration,
    ) -> Self {
        Self {
            verifier,
            clock,
            revocations,
            verified: Arc::new(VerifiedTokens::new(cache_size)),
            access_ttl,
        }
    }

    /// Verifies an access token: signature and claims, then that its session
    /// was not revoked (from memory, kept current by the revocation bus).
    ///
    /// # Errors
    /// [`InvalidToken`] naming the failed check.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, InvalidToken> {
        self.verify_with_leeway(token, CLOCK_LEEWAY_SECS)
    }

    /// Like [`Self::verify`] with a chosen leeway (the WebSocket side
    /// closes at `exp` exactly, so it checks with none).
    ///
    /// # Errors
    /// [`InvalidToken`] naming the failed check.
    pub fn verify_with_leeway(
        &self,
        token: &str,
        leeway_secs: i64,
    ) -> Result<AccessClaims, InvalidToken> {
        let now = self.clock.now();
        self.verified
            .follow_key_set(self.verifier.key_set_version());
        let key = self.verified.key(token);
        let claims = match key.and_then(|k| self.verified.get(&k)) {
            // The signature was checked before; the times are checked again.
            Some(claims) => check_times(claims, now, leeway_secs)?,
            None => {
                let claims = self.verifier.verify(token, now, leeway_secs)?;
                if let Some(k) = key {
                    self.verified.insert(k, claims.clone(), now);
                }
                claims
            }
        };
        if !domain::claims::lifetime_allowed(claims.iat, claims.exp, self.access_ttl) {
            return Err(InvalidToken::Lifetime);
        }
        if self.revocations.is_revoked(&claims.sid) {
            return Err(InvalidToken::Revoked);
        }
        Ok(claims)
    }

    /// Whether `token`'s signature was checked before and its claims are
    /// kept (a [`Self::verify`] of it costs no signature check).
    pub fn is_cached(&self, token: &str) -> bool {
        self.verified
            .follow_key_set(self.verifier.key_set_version());
        self.verified
            .key(token)
            .is_some_and(|k| self.verified.get(&k).is_some())
    }

    /// The signing key `token` names (its header's `kid`, unchecked: for
    /// claims verified already, to ask [`Self::accepts_key`] later).
    pub fn token_kid(&self, token: &str) -> Option<String> {
        self.verifier.kid_of(token)
    }

    /// Whether tokens signed by key `kid` still verify (a retired key's do not).
    pub fn accepts_key(&self, kid: &str) -> bool {
        self.verifier.accepts_key(kid)
    }

    /// Changes whenever the accepted signing keys change.
    pub fn key_set_version(&self) -> u64 {
        self.verifier.key_set_version()
    }

    /// The keys access tokens are verified with, for the JWKS.
    pub fn published_keys(&self) -> Vec<PublishedKey> {
        self.verifier.published_keys()
    }

    /// Whether a session was revoked (as far as this process has heard).
    pub fn is_session_revoked(&self, id: &SessionId) -> bool {
        self.revocations.is_revoked(id)
    }

    /// The current time from the clock port.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// `exp` and `nbf` of already verified claims against `now`, by the same
/// rule the verifier applies ([`domain::check_token_times`]).
fn check_times(
    claims: AccessClaims,
    now: Timestamp,
    leeway_secs: i64,
) -> Result<AccessClaims, InvalidToken> {
    domain::check_token_times(claims.exp, claims.nbf, now, leeway_secs)?;
    Ok(claims)
}

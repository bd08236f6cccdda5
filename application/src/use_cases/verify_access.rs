//! Verify an access token, including the revocation of its session.

use domain::{AccessClaims, Timestamp};

use crate::AuthService;
use crate::ports::InvalidToken;
use crate::service::CLOCK_LEEWAY_SECS;

impl AuthService {
    /// Verifies an access token: signature and claims, then that its session
    /// was not revoked (from memory, kept current by the revocation bus).
    ///
    /// # Errors
    /// [`InvalidToken`] naming the failed check.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, InvalidToken> {
        self.verify_access_with_leeway(token, CLOCK_LEEWAY_SECS)
    }

    /// Like [`Self::verify_access`] with a chosen leeway (the WebSocket side
    /// closes at `exp` exactly, so it checks with none).
    ///
    /// # Errors
    /// [`InvalidToken`] naming the failed check.
    pub fn verify_access_with_leeway(
        &self,
        token: &str,
        leeway_secs: i64,
    ) -> Result<AccessClaims, InvalidToken> {
        let now = self.ports.clock.now();
        self.verified
            .follow_key_set(self.ports.verifier.key_set_version());
        let key = self.verified.key(token);
        let claims = match key.and_then(|k| self.verified.get(&k)) {
            // The signature was checked before; the times are checked again.
            Some(claims) => check_times(claims, now, leeway_secs)?,
            None => {
                let claims = self.ports.verifier.verify(token, now, leeway_secs)?;
                if let Some(k) = key {
                    self.verified.insert(k, claims.clone(), now);
                }
                claims
            }
        };
        if self.revocations.revoked.contains(&claims.sid) {
            return Err(InvalidToken::Revoked);
        }
        Ok(claims)
    }

    /// Whether `token`'s signature was checked before and its claims are
    /// kept (a [`Self::verify_access`] of it costs no signature check).
    pub fn is_access_cached(&self, token: &str) -> bool {
        self.verified
            .follow_key_set(self.ports.verifier.key_set_version());
        self.verified
            .key(token)
            .is_some_and(|k| self.verified.get(&k).is_some())
    }

    /// The signing key `token` names (its header's `kid`, unchecked: for
    /// claims verified already, to ask [`Self::accepts_key`] later).
    pub fn token_kid(&self, token: &str) -> Option<String> {
        self.ports.verifier.kid_of(token)
    }

    /// Whether tokens signed by key `kid` still verify (a retired key's do not).
    pub fn accepts_key(&self, kid: &str) -> bool {
        self.ports.verifier.accepts_key(kid)
    }

    /// Changes whenever the accepted signing keys change.
    pub fn key_set_version(&self) -> u64 {
        self.ports.verifier.key_set_version()
    }

    /// Whether a session was revoked (as far as this process has heard).
    pub fn is_session_revoked(&self, id: &domain::SessionId) -> bool {
        self.revocations.revoked.contains(id)
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

//! Verify an access token, including the revocation of its session.

use domain::AccessClaims;

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
        let claims = self
            .ports
            .verifier
            .verify(token, self.ports.clock.now(), leeway_secs)?;
        if self.revoked.contains(&claims.sid) {
            return Err(InvalidToken::Revoked);
        }
        Ok(claims)
    }

    /// Whether a session was revoked (as far as this process has heard).
    pub fn is_session_revoked(&self, id: &domain::SessionId) -> bool {
        self.revoked.contains(id)
    }
}

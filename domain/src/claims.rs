//! The claims of an access token (contract: "Tokens").

use std::time::Duration;

use uuid::Uuid;

use crate::session::SessionId;
use crate::time::Timestamp;
use crate::user::UserId;

/// The `exp` (Unix seconds) of an access token issued at `iat` for a session
/// that ends at `session_end`: `ttl` later, but never after the session's
/// absolute end (contract v2), and never before `iat`.
pub fn access_token_exp(iat: Timestamp, ttl: Duration, session_end: Timestamp) -> i64 {
    let issued = iat.unix_seconds();
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    issued
        .saturating_add(ttl)
        .min(session_end.unix_seconds())
        .max(issued)
}

/// Claims of an RS256 access token. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer (`JWT_ISSUER`).
    pub iss: String,
    /// Audience (`JWT_AUDIENCE`).
    pub aud: String,
    /// The user.
    pub sub: UserId,
    /// The session (token family).
    pub sid: SessionId,
    /// Unique token id.
    pub jti: Uuid,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// The username, for display.
    pub username: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_token_ends_with_its_session() {
        let iat = Timestamp::from_unix_seconds(1_000);
        let ttl = Duration::from_secs(900);
        // A long session: the token lifetime.
        assert_eq!(
            access_token_exp(iat, ttl, iat.plus(Duration::from_secs(86_400))),
            1_900
        );
        // SESSION_MAX_AGE=20s: 20 s, not 900.
        assert_eq!(
            access_token_exp(iat, ttl, iat.plus(Duration::from_secs(20))),
            1_020
        );
        // A session that has just ended: expired at once, never before issue.
        assert_eq!(
            access_token_exp(iat, ttl, iat.minus(Duration::from_secs(5))),
            1_000
        );
        assert_eq!(
            access_token_exp(iat, Duration::MAX, iat.plus(Duration::from_secs(1))),
            1_001
        );
    }
}

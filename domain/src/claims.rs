//! The claims of an access token (contract: "Tokens").

use uuid::Uuid;

use crate::session::SessionId;
use crate::user::UserId;

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

//! Refresh-token records: only a hash of the token is ever kept.

use crate::session::SessionId;
use crate::time::Timestamp;

/// The SHA-256 digest of a refresh token, the only form that is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Wraps a digest computed elsewhere (the domain has no crypto).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A short prefix identifies a row in a log without giving much away.
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// One refresh token of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Hash of the token (its identity).
    pub hash: TokenHash,
    /// The family it belongs to.
    pub session_id: SessionId,
    /// The token it replaced; `None` for the one minted at login.
    pub parent: Option<TokenHash>,
    /// When it was minted.
    pub issued_at: Timestamp,
    /// Idle expiry: `issued_at + REFRESH_TOKEN_EXPIRY`, cut at the session's end.
    pub expires_at: Timestamp,
    /// When it was rotated (replaced by a successor), if it was.
    pub rotated_at: Option<Timestamp>,
}

impl RefreshToken {
    /// A fresh, unrotated token.
    pub fn mint(
        hash: TokenHash,
        session_id: SessionId,
        parent: Option<TokenHash>,
        issued_at: Timestamp,
        expires_at: Timestamp,
    ) -> Self {
        Self {
            hash,
            session_id,
            parent,
            issued_at,
            expires_at,
            rotated_at: None,
        }
    }

    /// Seconds from `now` until it expires (never negative): the cookie's `Max-Age`.
    pub fn max_age_seconds(&self, now: Timestamp) -> i64 {
        (self
            .expires_at
            .unix_millis()
            .saturating_sub(now.unix_millis())
            / 1000)
            .max(0)
    }
}

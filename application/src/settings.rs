//! The settings of the use cases (from the contract's configuration table).

use std::time::Duration;

use domain::TokenPolicy;

use crate::SealKey;

/// Settings of the use cases; each use case copies the ones it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `JWT_ISSUER`.
    pub issuer: String,
    /// `JWT_AUDIENCE`.
    pub audience: String,
    /// `ACCESS_TOKEN_EXPIRY`.
    pub access_ttl: Duration,
    /// Refresh-token lifetimes and the grace.
    pub token_policy: TokenPolicy,
    /// `ALLOW_REGISTRATION`.
    pub allow_registration: bool,
    /// `TOKEN_CACHE_SIZE`: access tokens whose verified claims are kept
    /// (0 verifies the signature on every request).
    pub token_cache_size: usize,
    /// `AUDIT_RETENTION`: how long stored security events are kept.
    pub audit_retention: Duration,
    /// The server secret of the refresh-grace seals (`REFRESH_SEAL_KEY_PATH`).
    pub seal_key: SealKey,
    /// `DPOP_PROOF_MAX_AGE`: how far a proof's `iat` may be from now.
    pub dpop_max_age: Duration,
    /// `EMAIL_VERIFY_EXPIRY`, `PASSWORD_RESET_EXPIRY`.
    pub mail_lifetimes: domain::email::MailLifetimes,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "auth".into(),
            audience: "api".into(),
            access_ttl: Duration::from_secs(900),
            token_policy: TokenPolicy::default(),
            allow_registration: true,
            token_cache_size: 10_000,
            audit_retention: Duration::from_secs(90 * 86_400),
            // Tests only: the wiring always sets the key read from its file.
            seal_key: SealKey::from_bytes([0; SealKey::LEN]),
            dpop_max_age: domain::dpop::DEFAULT_PROOF_MAX_AGE,
            mail_lifetimes: domain::email::MailLifetimes::default(),
        }
    }
}

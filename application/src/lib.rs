//! Use cases of the auth service, written against the ports they define.
//!
//! Nothing here knows HTTP, SQL or a runtime: adapters implement [`ports`],
//! and `bin` builds each use case of [`use_cases`] on the ports it needs.

pub mod client;
pub mod composition;
pub mod dpop_proofs;
pub mod issued_tokens;
pub mod mfa_token;
pub mod ports;
pub mod refresh_secret;
pub mod revocations;
pub mod revoked_sessions;
pub mod second_factor;
pub mod settings;
pub mod use_cases;
pub mod verified_tokens;

pub use client::ClientInfo;
pub use dpop_proofs::{DpopError, DpopProofs, ReplayScope};
pub use issued_tokens::{AccessTokenIssuer, IssuedAccessToken, IssuedRefreshToken};
pub use mfa_token::MfaToken;
pub use refresh_secret::{RefreshSecret, SealKey};
pub use revocations::Revocations;
pub use revoked_sessions::RevokedSessions;
pub use second_factor::SecondFactor;
pub use settings::AuthConfig;
pub use use_cases::{
    AccessCheck, Account, Housekeeping, Logins, Pruned, Readiness, Registration, Sessions,
    SigningKeys, UserAccounts,
};
pub use verified_tokens::VerifiedTokens;

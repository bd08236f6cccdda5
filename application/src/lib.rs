//! Use cases of the auth service, written against the ports they define.
//!
//! Nothing here knows HTTP, SQL or a runtime: adapters implement [`ports`] and
//! `bin` wires them into an [`AuthService`].

pub mod ports;
pub mod refresh_secret;
pub mod revoked_sessions;
pub mod service;
pub mod use_cases;
pub mod verified_tokens;

pub use refresh_secret::{RefreshSecret, SealKey};
pub use revoked_sessions::RevokedSessions;
pub use service::{
    AuthConfig, AuthService, ClientInfo, IssuedAccessToken, IssuedRefreshToken, Ports, Pruned,
};
pub use verified_tokens::VerifiedTokens;

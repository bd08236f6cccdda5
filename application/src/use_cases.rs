//! One file per use case; each adds methods to [`crate::AuthService`].

pub mod account;
pub mod login;
pub mod logout;
pub mod mfa;
pub mod refresh;
pub mod register;
pub mod sessions;
pub mod signing_keys;
pub mod verify_access;

#[cfg(test)]
pub(crate) mod fakes;

pub use account::AccountError;
pub use login::{LoginError, LoginOutcome};
pub use logout::LogoutScope;
pub use mfa::{MfaError, MfaLoginError, SecondFactor, TotpEnrolment, TwoFactorStatus};
pub use refresh::{RefreshError, RefreshResult};
pub use register::{RegisterError, UserAccounts};
pub use sessions::{RevokeSessionError, SessionView};
pub use signing_keys::{KeyView, RetireKeyError, Retired, SigningKeys};

#[cfg(test)]
mod login_tests;
#[cfg(test)]
mod mfa_tests;
#[cfg(test)]
mod refresh_tests;
#[cfg(test)]
mod tests;

//! The use cases: each a type that holds exactly the ports it uses, composed
//! by `bin`.

pub mod account;
pub mod email;
pub mod housekeeping;
pub mod login;
pub mod outbox;
pub mod passkeys;
pub mod readiness;
pub mod reauthentication;
pub mod register;
pub mod sessions;
pub mod signing_keys;
pub mod two_factor;
pub mod verify_access;

#[cfg(test)]
pub(crate) mod fakes;

pub use account::{Account, AccountError, AccountView};
pub use email::{EmailError, Emails, PasswordReplacement};
pub use housekeeping::{Housekeeping, Pruned};
pub use login::{LoginError, LoginOutcome, LoginStep, Logins, MfaLoginError};
pub use outbox::{Delivered, Outbox};
pub use passkeys::{CeremonyId, PasskeyError, PasskeyLoginError, PasskeyOptions, Passkeys};
pub use readiness::Readiness;
pub use reauthentication::Reauthentication;
pub use register::{RegisterError, Registration, UserAccounts};
pub use sessions::{
    LogoutScope, RefreshError, RefreshResult, RevokeSessionError, SessionView, Sessions,
};
pub use signing_keys::{KeyView, RetireKeyError, Retired, SigningKeys};
pub use two_factor::{MfaError, TotpEnrolment, TwoFactor, TwoFactorStatus};
pub use verify_access::{AccessCheck, CLOCK_LEEWAY_SECS};

#[cfg(test)]
mod dpop_tests;
#[cfg(test)]
mod email_tests;
#[cfg(test)]
mod login_tests;
#[cfg(test)]
mod mfa_tests;
#[cfg(test)]
mod passkey_tests;
#[cfg(test)]
mod refresh_tests;
#[cfg(test)]
mod tests;

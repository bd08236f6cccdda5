//! The rules of the auth service, free of I/O, runtimes and frameworks.
//!
//! Time and randomness come in as values: every function here is pure, so the
//! rotation state machine can be tested exhaustively (see `rotation.rs`).

pub mod audit;
pub mod claims;
pub mod dpop;
pub mod email;
pub mod housekeeping;
pub mod passkey;
pub mod password;
pub mod refresh_token;
pub mod revocation;
pub mod rotation;
pub mod session;
pub mod signing_keys;
pub mod sockets;
pub mod throttle;
pub mod time;
pub mod totp;
pub mod user;

pub use claims::{
    AccessClaims, AuthMethods, MAX_ACCESS_TOKEN_BYTES, TimeRefusal, access_token_exp,
    check_token_times,
};
pub use password::{PasswordPolicyError, check_password_policy};
pub use refresh_token::{RefreshToken, TokenHash};
pub use rotation::{
    Family, FamilyState, LogoutDecision, RefreshRefusal, RotationDecision, TokenPolicy,
    decide_logout, decide_refresh,
};
pub use session::{RevokeReason, Session, SessionId};
pub use signing_keys::{Algorithm, KeyRecord, KeyState};
pub use throttle::{Admission, ThrottlePolicy, ThrottleScope, ThrottleWindow, admit};
pub use time::Timestamp;
pub use user::{PasswordHash, User, UserId, Username, UsernameError, fold_name};

//! The ports: what the use cases need from the outside world, one file each.

pub mod access_token;
pub mod clock;
pub mod dpop;
pub mod health_check;
pub mod login_throttle;
pub mod mail_store;
pub mod mailer;
pub mod mfa_store;
pub mod passkeys;
pub mod password_hasher;
pub mod random_source;
pub mod revocation_bus;
pub mod security_events;
pub mod session_store;
pub mod signing_keys;
pub mod totp_codes;
pub mod user_repository;

pub use access_token::{
    AccessTokenSigner, AccessTokenVerifier, InvalidToken, KeyParams, PublishedKey,
};
pub use clock::Clock;
pub use dpop::{DpopReplayStore, DpopVerifier};
pub use health_check::{HealthCheck, PoolStats, StorageUnavailable};
pub use login_throttle::{LoginThrottle, ThrottleKey, ThrottlePolicy, ThrottleScope};
pub use mail_store::{
    ClaimedMail, Issued, MailStore, NewMailToken, QueuedMail, SetAddressError, StoredMailToken,
};
pub use mailer::{DeliveryError, MailSeal, Mailer, OutboxSignal, OutgoingMail};
pub use mfa_store::{MfaChallenge, MfaStore, TotpSecret};
pub use passkeys::{
    AssertionClaim, Ceremony, CeremonyKind, CredentialId, Passkey, PasskeyExists, PasskeyRejected,
    PasskeyStore, PasskeyUser, RegisteredCredential, RelyingParty, StartedCeremony,
    VerifiedAssertion,
};
pub use password_hasher::{HashTicket, Overloaded, PasswordCheck, PasswordHasher};
pub use random_source::RandomSource;
pub use revocation_bus::{FeedStatus, RevocationBus, RevocationListener};
pub use security_events::{
    AuditTrail, LoginMethod, SecurityEvent, SecurityEventKind, SecurityEvents,
};
pub use session_store::{
    RefreshOutcome, RefreshRefusal, SessionStore, SuccessorToken, TokenFamily,
};
pub use signing_keys::{KeyMinter, MintedKey, SigningKeyStore, StoredKey};
pub use totp_codes::{NewTotpSecret, TotpCodes};
pub use user_repository::{InsertUserError, UserRepository};

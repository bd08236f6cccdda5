//! Passkeys (contract v3, "Passkeys"): the WebAuthn relying party that
//! checks the ceremonies' cryptography, and where passkeys, user handles
//! and the ceremonies between their two steps are stored.
//!
//! The rules around the ceremonies (lifetime, single use, names, the
//! signature counter, whose credential an assertion may be, the `amr`) are
//! `domain::passkey`'s.

use async_trait::async_trait;
use domain::{Timestamp, TokenHash, UserId};
use uuid::Uuid;

/// A WebAuthn credential id (raw bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialId(pub Vec<u8>);

/// Who is registering, as the authenticator is told.
#[derive(Debug, Clone)]
pub struct PasskeyUser {
    /// The opaque handle (`user.id`), never the username or the user id.
    pub handle: Vec<u8>,
    /// `user.name` and `user.displayName`: the username.
    pub name: String,
}

/// The first step of a ceremony: what the browser gets, and what the
/// finish needs (stored between the two, readable by no client).
#[derive(Debug, Clone)]
pub struct StartedCeremony {
    /// The `publicKey` member: `PublicKeyCredentialCreationOptionsJSON` or
    /// `PublicKeyCredentialRequestOptionsJSON`.
    pub options: serde_json::Value,
    /// The relying party's state of the ceremony (its challenge among it).
    pub state: Vec<u8>,
}

/// A credential whose registration verified.
#[derive(Debug, Clone)]
pub struct RegisteredCredential {
    /// Its id.
    pub id: CredentialId,
    /// The relying party's encoding of its public key and of what the
    /// registration fixed about it.
    pub public_key: Vec<u8>,
    /// The signature counter at registration.
    pub counter: u32,
    /// BE: it may be synced to other devices.
    pub backup_eligible: bool,
    /// BS: it is backed up now.
    pub backup_state: bool,
}

/// What an assertion claims before anything is verified: which credential
/// signed it and for which user handle.
#[derive(Debug, Clone)]
pub struct AssertionClaim {
    /// `rawId`.
    pub credential: CredentialId,
    /// `response.userHandle`.
    pub user_handle: Option<Vec<u8>>,
}

/// An assertion that verified against its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// Its signature counter.
    pub counter: u32,
    /// BE.
    pub backup_eligible: bool,
    /// BS.
    pub backup_state: bool,
}

/// A ceremony's credential did not verify (any check: challenge, origin,
/// `type`, rpIdHash, flags, algorithm, attestation, signature, or a
/// credential that does not parse). The reason is for the logs and the
/// audit trail only; the client learns `invalid_passkey`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the passkey did not verify: {0}")]
pub struct PasskeyRejected(pub String);

/// The WebAuthn relying party (`WEBAUTHN_RP_ID`, `WEBAUTHN_ORIGINS`).
pub trait RelyingParty: Send + Sync + 'static {
    /// Registration options for `user`, who already holds `exclude`
    /// (`excludeCredentials`): a discoverable credential with user
    /// verification, attestation `none`.
    ///
    /// # Errors
    /// The library refused the options (a bug, not the user's).
    fn start_registration(
        &self,
        user: &PasskeyUser,
        exclude: &[CredentialId],
    ) -> anyhow::Result<StartedCeremony>;

    /// Verifies `credential` (a `RegistrationResponseJSON`) against the
    /// ceremony's `state`.
    ///
    /// # Errors
    /// [`PasskeyRejected`]: anything that does not verify.
    fn finish_registration(
        &self,
        state: &[u8],
        credential: &str,
    ) -> Result<RegisteredCredential, PasskeyRejected>;

    /// Login options for a discoverable credential: no `allowCredentials`.
    ///
    /// # Errors
    /// As for [`Self::start_registration`].
    fn start_login(&self) -> anyhow::Result<StartedCeremony>;

    /// Reads which credential an `AuthenticationResponseJSON` is of.
    ///
    /// # Errors
    /// [`PasskeyRejected`]: it does not parse.
    fn read_assertion(&self, credential: &str) -> Result<AssertionClaim, PasskeyRejected>;

    /// Verifies `credential` against the login's `state`, the stored
    /// credential (its public key and flags) and the `user_handle` it
    /// presented (whose user the caller has judged). The counter is not
    /// judged here: that is `domain::passkey::counter_grew`'s.
    ///
    /// # Errors
    /// [`PasskeyRejected`]: anything that does not verify.
    fn finish_login(
        &self,
        state: &[u8],
        credential: &str,
        stored: &Passkey,
        user_handle: &[u8],
    ) -> Result<VerifiedAssertion, PasskeyRejected>;
}

/// A stored passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// Its id in the API (`DELETE /api/passkeys/{id}`).
    pub id: Uuid,
    /// Its owner.
    pub user: UserId,
    /// The WebAuthn credential id.
    pub credential: CredentialId,
    /// [`RegisteredCredential::public_key`].
    pub public_key: Vec<u8>,
    /// The signature counter of its last use.
    pub counter: u32,
    /// BE, fixed at registration.
    pub backup_eligible: bool,
    /// BS of its last use.
    pub backup_state: bool,
    /// Its name.
    pub name: String,
    /// Registered at.
    pub created_at: Timestamp,
    /// Its last login.
    pub last_used_at: Option<Timestamp>,
}

/// Which step a stored ceremony is waiting to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// `POST /api/passkeys/registration`, by `user`.
    Registration,
    /// `POST /api/login/passkey`.
    Login,
}

/// A ceremony between its two steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    /// The SHA-256 of its `registrationId` / `loginId`.
    pub id: TokenHash,
    /// Registration or login.
    pub kind: CeremonyKind,
    /// The user registering; `None` for a login.
    pub user: Option<UserId>,
    /// [`StartedCeremony::state`].
    pub state: Vec<u8>,
    /// Its end.
    pub expires_at: Timestamp,
}

/// A passkey was not added: its credential id is registered (to anyone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this credential is registered")]
pub struct PasskeyExists;

/// Where passkeys live.
#[async_trait]
pub trait PasskeyStore: Send + Sync + 'static {
    /// The user's handle; `candidate` becomes it on the first call.
    ///
    /// # Errors
    /// Storage failures (also: the user is gone).
    async fn user_handle(&self, user: UserId, candidate: &[u8]) -> anyhow::Result<Vec<u8>>;

    /// Whose handle `handle` is.
    ///
    /// # Errors
    /// Storage failures.
    async fn user_of_handle(&self, handle: &[u8]) -> anyhow::Result<Option<UserId>>;

    /// Stores a ceremony between its two steps.
    ///
    /// # Errors
    /// Storage failures.
    async fn save_ceremony(&self, ceremony: &Ceremony) -> anyhow::Result<()>;

    /// Takes the ceremony `id` of `kind` and `user` away and returns it: of
    /// any number of concurrent calls, in any process, one gets it. Another
    /// user's is neither returned nor taken. Expired ones are returned too
    /// (the caller judges the time) but are gone all the same.
    ///
    /// # Errors
    /// Storage failures.
    async fn take_ceremony(
        &self,
        id: &TokenHash,
        kind: CeremonyKind,
        user: Option<UserId>,
    ) -> anyhow::Result<Option<Ceremony>>;

    /// Deletes the ceremonies that expired before `now`; how many.
    ///
    /// # Errors
    /// Storage failures.
    async fn prune_ceremonies(&self, now: Timestamp) -> anyhow::Result<u64>;

    /// Adds a passkey.
    ///
    /// # Errors
    /// [`PasskeyExists`] in the chain when its credential id is taken;
    /// storage failures.
    async fn add(&self, passkey: &Passkey) -> anyhow::Result<()>;

    /// The user's passkeys, oldest first.
    ///
    /// # Errors
    /// Storage failures.
    async fn list(&self, user: UserId) -> anyhow::Result<Vec<Passkey>>;

    /// The passkey of a credential id.
    ///
    /// # Errors
    /// Storage failures.
    async fn find(&self, credential: &CredentialId) -> anyhow::Result<Option<Passkey>>;

    /// Deletes the user's passkey `id`; `false` when the user has none by
    /// that id (another user's included).
    ///
    /// # Errors
    /// Storage failures.
    async fn remove(&self, user: UserId, id: Uuid) -> anyhow::Result<bool>;

    /// Records a login with passkey `id`, whose counter was `seen` when the
    /// login read it: the new counter, BS, and the time. `false` (nothing
    /// written) when the counter is no longer `seen` (another login with
    /// the same counter won the race: a clone) or the passkey is gone.
    ///
    /// # Errors
    /// Storage failures.
    async fn record_use(
        &self,
        id: Uuid,
        seen: u32,
        assertion: VerifiedAssertion,
        now: Timestamp,
    ) -> anyhow::Result<bool>;

    /// How many passkeys the user has.
    ///
    /// # Errors
    /// Storage failures.
    async fn count(&self, user: UserId) -> anyhow::Result<u64>;
}

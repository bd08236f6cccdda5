//! Where two-factor login keeps its state (contract: "Two-factor login"):
//! a user's TOTP secret (sealed by the caller before it gets here), their
//! recovery codes (hashes only), and the `mfaToken`s of logins waiting for
//! their second factor (hashes only). The rules (which step a code may
//! match, how many wrong codes a token takes, when an enrolment expires)
//! are `domain::totp`'s; the store makes each decision's write atomic, so
//! that two processes never both accept one code.

use async_trait::async_trait;
use domain::{Timestamp, TokenHash, UserId};

/// A user's TOTP secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpSecret {
    /// The secret, sealed (never readable from the store).
    pub sealed: Vec<u8>,
    /// When the enrolment began.
    pub created_at: Timestamp,
    /// When it was confirmed; `None` while pending.
    pub confirmed_at: Option<Timestamp>,
    /// The step of the last accepted code.
    pub last_step: Option<u64>,
}

/// A login waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// The SHA-256 of the `mfaToken`.
    pub hash: TokenHash,
    /// Whose password was right.
    pub user: UserId,
    /// The client it was given to: its address and user agent.
    pub client_ip: Option<String>,
    /// The user agent it was given to.
    pub user_agent: Option<String>,
    /// Its end.
    pub expires_at: Timestamp,
    /// Wrong codes so far.
    pub wrong_codes: u32,
}

/// Two-factor login's storage.
#[async_trait]
pub trait MfaStore: Send + Sync + 'static {
    /// The user's TOTP secret, pending or confirmed.
    ///
    /// # Errors
    /// Storage failures.
    async fn totp(&self, user: UserId) -> anyhow::Result<Option<TotpSecret>>;

    /// Stores a pending enrolment, replacing a pending one; `false` (and
    /// nothing stored) when a confirmed one exists.
    ///
    /// # Errors
    /// Storage failures.
    async fn begin_totp(&self, user: UserId, sealed: &[u8], now: Timestamp)
    -> anyhow::Result<bool>;

    /// Counts a wrong confirming code against the pending enrolment that
    /// began at `began`, and voids it (deletes it, if still pending) once
    /// `domain::totp::enrolment_usable` says no; returns the count (0 when
    /// no such enrolment is pending).
    ///
    /// # Errors
    /// Storage failures.
    async fn count_wrong_enrolment_code(
        &self,
        user: UserId,
        began: Timestamp,
    ) -> anyhow::Result<u32>;

    /// Confirms the pending enrolment that began at `began` (the one the
    /// caller checked the code against), records `step` as used and stores
    /// the recovery codes' hashes, in one transaction; `false` (nothing
    /// changed) when that enrolment is no longer pending.
    ///
    /// # Errors
    /// Storage failures.
    async fn confirm_totp(
        &self,
        user: UserId,
        began: Timestamp,
        step: u64,
        recovery: &[TokenHash],
        now: Timestamp,
    ) -> anyhow::Result<bool>;

    /// Turns two-factor login off: the secret and the recovery codes go;
    /// `false` when there was none.
    ///
    /// # Errors
    /// Storage failures.
    async fn remove_totp(&self, user: UserId) -> anyhow::Result<bool>;

    /// Records `step` as the last used one if it is later than the stored
    /// one (compare and set); `false` when it is not: the code was accepted
    /// already, here or in another process.
    ///
    /// # Errors
    /// Storage failures.
    async fn use_step(&self, user: UserId, step: u64) -> anyhow::Result<bool>;

    /// Spends a recovery code; `false` when it is unknown or was used.
    ///
    /// # Errors
    /// Storage failures.
    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &TokenHash,
        now: Timestamp,
    ) -> anyhow::Result<bool>;

    /// How many of the user's recovery codes are unused.
    ///
    /// # Errors
    /// Storage failures.
    async fn recovery_codes_left(&self, user: UserId) -> anyhow::Result<u32>;

    /// Stores a new challenge.
    ///
    /// # Errors
    /// Storage failures.
    async fn create_challenge(&self, challenge: &MfaChallenge) -> anyhow::Result<()>;

    /// The challenge of a token hash, if it exists and has not ended at `now`.
    ///
    /// # Errors
    /// Storage failures.
    async fn challenge(
        &self,
        hash: &TokenHash,
        now: Timestamp,
    ) -> anyhow::Result<Option<MfaChallenge>>;

    /// Counts one more wrong code; returns the count (atomic across processes).
    ///
    /// # Errors
    /// Storage failures.
    async fn count_wrong_code(&self, hash: &TokenHash) -> anyhow::Result<u32>;

    /// Ends a challenge (used, or used up); `false` when it was ended
    /// already (another request won).
    ///
    /// # Errors
    /// Storage failures.
    async fn end_challenge(&self, hash: &TokenHash) -> anyhow::Result<bool>;

    /// Ends every outstanding challenge of `user` (a password change, a
    /// reset, two-factor login turned off: a phishing relay holding an
    /// `mfaToken` cannot finish the login); returns how many.
    ///
    /// # Errors
    /// Storage failures.
    async fn end_challenges_of(&self, user: UserId) -> anyhow::Result<u64>;

    /// Deletes challenges that ended before `now`; returns how many.
    ///
    /// # Errors
    /// Storage failures.
    async fn prune_challenges(&self, now: Timestamp) -> anyhow::Result<u64>;
}

//! Where addresses, the tokens sent by mail and the outbox are kept.
//!
//! A token is stored only as its SHA-256 hash. A mail waiting in the
//! outbox is stored sealed (its bodies hold the token), in the same
//! transaction as its token, so a mail is never lost between the two; it is
//! deleted once delivered.

use async_trait::async_trait;
use domain::email::{EmailAddress, MailPurpose};
use domain::{Timestamp, TokenHash, UserId};

/// A token about to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMailToken {
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// Whose.
    pub user: UserId,
    /// What for.
    pub purpose: MailPurpose,
    /// The address it is sent to (and, for `Verify`, the one it proves).
    pub address: EmailAddress,
    /// For a reset: a digest of the password hash it was issued under.
    pub password_stamp: Option<String>,
    /// When.
    pub issued_at: Timestamp,
    /// Until when.
    pub expires_at: Timestamp,
}

/// A token as stored, found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMailToken {
    /// Whose.
    pub user: UserId,
    /// What for.
    pub purpose: MailPurpose,
    /// The address it went to, as given.
    pub address: String,
    /// For a reset: see [`NewMailToken::password_stamp`].
    pub password_stamp: Option<String>,
    /// Until when.
    pub expires_at: Timestamp,
    /// Whether it was used.
    pub used: bool,
    /// Whether a token for the same user and purpose was issued after it.
    pub superseded: bool,
}

/// A mail for the outbox, sealed by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// Its id (see `OutgoingMail::id`).
    pub id: String,
    /// The sealed `OutgoingMail`.
    pub sealed: Vec<u8>,
    /// When it was queued; it is due at once.
    pub queued_at: Timestamp,
}

/// A mail this process claimed for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMail {
    /// Its id.
    pub id: String,
    /// The sealed `OutgoingMail`.
    pub sealed: Vec<u8>,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// What [`MailStore::issue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// The token and its mail are stored.
    Queued,
    /// Refused by `domain::email::mail_allowed` (the hourly cap): nothing stored.
    CapReached,
}

/// The address is verified on another account.
#[derive(Debug, thiserror::Error)]
pub enum SetAddressError {
    /// Another account has it, verified.
    #[error("address taken")]
    Taken,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Persistent addresses, mail tokens and the outbox.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// Stores `token` and `mail` in one transaction. First counts the
    /// user's tokens of the same purpose issued since `token.issued_at`
    /// less `domain::email::RESET_MAIL_WINDOW` and stores nothing unless
    /// `domain::email::mail_allowed` (exact under concurrency: the count
    /// and the insert are one transaction holding the user's row or the
    /// write lock).
    ///
    /// # Errors
    /// Storage failures (nothing is stored then).
    async fn issue(&self, token: &NewMailToken, mail: &QueuedMail) -> anyhow::Result<Issued>;

    /// The token with this hash, if any.
    ///
    /// # Errors
    /// Storage failures.
    async fn find_token(&self, hash: &TokenHash) -> anyhow::Result<Option<StoredMailToken>>;

    /// Marks the token used at `now`; `false` when it was already (another
    /// request used it first) or is gone.
    ///
    /// # Errors
    /// Storage failures.
    async fn use_token(&self, hash: &TokenHash, now: Timestamp) -> anyhow::Result<bool>;

    /// Makes `address` the user's verified address (replacing any other),
    /// at `now`.
    ///
    /// # Errors
    /// [`SetAddressError::Taken`] when another account has it (compared
    /// case-insensitively), also under a concurrent verification.
    async fn set_verified(
        &self,
        user: UserId,
        address: &EmailAddress,
        now: Timestamp,
    ) -> Result<(), SetAddressError>;

    /// The user's verified address, as given.
    ///
    /// # Errors
    /// Storage failures.
    async fn verified_address(&self, user: UserId) -> anyhow::Result<Option<String>>;

    /// The address waiting for verification: that of the user's newest
    /// verify token, when it is unused and unexpired at `now`.
    ///
    /// # Errors
    /// Storage failures.
    async fn pending_address(&self, user: UserId, now: Timestamp)
    -> anyhow::Result<Option<String>>;

    /// The account whose verified address is `address` (case-insensitive).
    ///
    /// # Errors
    /// Storage failures.
    async fn owner_of(&self, address: &EmailAddress) -> anyhow::Result<Option<UserId>>;

    /// Claims up to `limit` mails due at `now` (not delivered, not given
    /// up, not claimed by a process whose lease runs past `now`) until
    /// `lease_until`, counting an attempt for each. Two processes never
    /// claim one mail at once (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the
    /// write lock on SQLite).
    ///
    /// # Errors
    /// Storage failures.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<ClaimedMail>>;

    /// A claimed mail was delivered: it goes.
    ///
    /// # Errors
    /// Storage failures.
    async fn delivered(&self, id: &str) -> anyhow::Result<()>;

    /// A claimed mail failed for now: due again at `at`, unclaimed.
    /// `error` (no bodies) is kept for the operator.
    ///
    /// # Errors
    /// Storage failures.
    async fn retry_at(&self, id: &str, at: Timestamp, error: &str) -> anyhow::Result<()>;

    /// A claimed mail will never go: kept, marked given up at `now`, its
    /// sealed bodies erased.
    ///
    /// # Errors
    /// Storage failures.
    async fn give_up(&self, id: &str, now: Timestamp, error: &str) -> anyhow::Result<()>;

    /// Deletes tokens that expired before `before` (a token is kept at
    /// least `domain::email::RESET_MAIL_WINDOW` after it was issued, so the
    /// hourly reset cap still counts it) and given-up mails queued before
    /// it; how many rows went.
    ///
    /// # Errors
    /// Storage failures.
    async fn prune(&self, before: Timestamp) -> anyhow::Result<u64>;
}

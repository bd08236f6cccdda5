//! Where sessions (token families) and their refresh tokens are kept.

use async_trait::async_trait;
use domain::{
    RefreshToken, RevokeReason, Session, SessionId, Timestamp, TokenHash, TokenPolicy, UserId,
};

/// The successor a rotation would mint.
#[derive(Clone, PartialEq, Eq)]
pub struct SuccessorToken {
    /// Hash of the successor.
    pub hash: TokenHash,
    /// The successor sealed under a key derived from the presented token
    /// (see [`crate::RefreshSecret::seal_successor`]); stored on the presented
    /// token's row so that a grace replay can return the same successor.
    pub seal: [u8; 32],
}

impl std::fmt::Debug for SuccessorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuccessorToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// A stored token with its family, as [`domain::FamilyState`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFamily {
    /// The family.
    pub session: Session,
    /// The token's record.
    pub presented: RefreshToken,
    /// The family's unrotated token, if it has one.
    pub current: Option<RefreshToken>,
}

impl TokenFamily {
    /// The state the domain's rules read.
    pub fn state(&self) -> domain::FamilyState<'_> {
        domain::FamilyState {
            session: &self.session,
            presented: &self.presented,
            current: self.current.as_ref(),
        }
    }
}

/// Refusals of a refresh that change nothing in the store: the domain's
/// decision itself, so that no store maps it.
pub use domain::RefreshRefusal;

/// What a refresh did, after it was applied atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The presented token was rotated; `successor` was stored.
    Rotated {
        /// The family, with `last_used_at` updated.
        session: Session,
        /// The new current token.
        successor: RefreshToken,
    },
    /// The presented token is the direct parent of the current one and was
    /// rotated inside the grace: nothing changed.
    GraceReplay {
        /// The family.
        session: Session,
        /// The family's current token.
        current: RefreshToken,
        /// The seal stored on the presented token when it was rotated;
        /// `None` once it was erased (the grace passed on another process's clock).
        seal: Option<[u8; 32]>,
    },
    /// A rotated token was replayed outside the grace: the store revoked the
    /// family (reason [`RevokeReason::ReuseDetected`]).
    ReuseDetected {
        /// The family, now revoked.
        session: Session,
    },
    /// Refused without a change.
    Refused(RefreshRefusal),
}

/// Sessions and refresh tokens.
///
/// Implementations must make [`SessionStore::refresh`] atomic: N concurrent
/// calls with one token mint exactly one successor, and every other call sees
/// the grace replay or, outside the grace, reuse. The rule itself is
/// [`domain::decide_refresh`]; `domain::Family::refresh` shows how to apply it.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session with its first token.
    ///
    /// # Errors
    /// Storage failures.
    async fn create(&self, session: &Session, first: &RefreshToken) -> anyhow::Result<()>;

    /// Presents the token with hash `presented` at `now`: decides with
    /// [`domain::decide_refresh`] and applies the decision in one transaction.
    ///
    /// A rotation stores `successor.seal` on the presented token and erases
    /// every other seal of the family; reuse detection erases them all.
    ///
    /// # Errors
    /// Storage failures (nothing is applied then).
    async fn refresh(
        &self,
        presented: &TokenHash,
        successor: &SuccessorToken,
        now: Timestamp,
        policy: &TokenPolicy,
    ) -> anyhow::Result<RefreshOutcome>;

    /// The session that the token with this hash belongs to.
    ///
    /// # Errors
    /// Storage failures.
    async fn find_by_token(&self, hash: &TokenHash) -> anyhow::Result<Option<Session>>;

    /// The family of the token with this hash, read without a change: the
    /// session, the token's own record and the family's current token.
    ///
    /// # Errors
    /// Storage failures.
    async fn token_family(&self, hash: &TokenHash) -> anyhow::Result<Option<TokenFamily>>;

    /// A session by id.
    ///
    /// # Errors
    /// Storage failures.
    async fn find(&self, id: SessionId) -> anyhow::Result<Option<Session>>;

    /// The user's sessions that are neither revoked nor past their absolute
    /// lifetime and still hold an unexpired current token, newest first.
    ///
    /// # Errors
    /// Storage failures.
    async fn list_live(&self, user: UserId, now: Timestamp) -> anyhow::Result<Vec<Session>>;

    /// Revokes one session if it is live ([`domain::Session::revoke`]'s
    /// rule); returns whether it did.
    ///
    /// # Errors
    /// Storage failures.
    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: Timestamp,
    ) -> anyhow::Result<bool>;

    /// Revokes every live session of a user but `except`
    /// ([`domain::Session::revoke`]'s rule); returns their ids.
    ///
    /// # Errors
    /// Storage failures.
    async fn revoke_all_for_user(
        &self,
        user: UserId,
        except: Option<SessionId>,
        reason: RevokeReason,
        now: Timestamp,
    ) -> anyhow::Result<Vec<SessionId>>;

    /// Sessions revoked at or after `since` (to warm a cache of revoked ids).
    ///
    /// # Errors
    /// Storage failures.
    async fn revoked_since(&self, since: Timestamp) -> anyhow::Result<Vec<SessionId>>;

    /// Deletes at most `batch` sessions (with their tokens) that ended before
    /// `ended_before`: revoked then, or past their absolute lifetime then.
    /// Returns how many sessions were deleted.
    ///
    /// # Errors
    /// Storage failures.
    async fn prune(&self, ended_before: Timestamp, batch: u64) -> anyhow::Result<u64>;

    /// Erases the grace seals of tokens rotated before `rotated_before`
    /// ([`domain::TokenPolicy::seals_needed_since`]); returns how many.
    ///
    /// # Errors
    /// Storage failures.
    async fn erase_seals(&self, rotated_before: Timestamp) -> anyhow::Result<u64>;
}

//! The brute-force throttle of the login (contract: "Brute force").

use std::time::Duration;

use async_trait::async_trait;
use domain::Timestamp;

/// One username from one client address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThrottleKey {
    /// The user's case-folded username, or the keyed pseudonym of a name
    /// that matches no user (never a name as typed).
    pub username: String,
    /// The client address.
    pub client: String,
}

impl ThrottleKey {
    /// `username` from `client`'s address (`unknown` when the edge saw none).
    pub fn new(username: String, client: &crate::ClientInfo) -> Self {
        Self {
            username,
            client: client.ip.clone().unwrap_or_else(|| "unknown".into()),
        }
    }
}

pub use domain::ThrottlePolicy;

/// Slots per key in fixed windows, decided by [`domain::throttle::admit`]:
/// a login takes a slot before its password is checked and keeps it when the
/// check fails; once a window's slots are taken, logins for the key are
/// refused until it closes. A success clears the key.
#[async_trait]
pub trait LoginThrottle: Send + Sync + 'static {
    /// Takes a slot for `key` at `now`, atomically across every process of
    /// the store: `None` when taken (check the password), `Some(retry_after)`
    /// when refused.
    ///
    /// # Errors
    /// Storage failures (no slot is taken then).
    async fn take_slot(
        &self,
        key: &ThrottleKey,
        now: Timestamp,
    ) -> anyhow::Result<Option<Duration>>;

    /// Gives back one slot taken in the key's window (a right password whose
    /// login still waits for its second factor: it is no failure, and it
    /// must not clear the failures either). Nothing when none is taken.
    ///
    /// # Errors
    /// Storage failures.
    async fn release(&self, key: &ThrottleKey) -> anyhow::Result<()>;

    /// Forgets the key's failures (after a successful login).
    ///
    /// # Errors
    /// Storage failures.
    async fn clear(&self, key: &ThrottleKey) -> anyhow::Result<()>;

    /// Deletes the windows that closed before `now`; returns how many went.
    ///
    /// # Errors
    /// Storage failures.
    async fn prune(&self, now: Timestamp) -> anyhow::Result<u64>;
}

//! The brute-force throttle of the login (contract: "Brute force").

use std::time::Duration;

use async_trait::async_trait;
use domain::Timestamp;

/// One username from one client address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThrottleKey {
    /// The case-folded username as typed (also for usernames that do not exist).
    pub username: String,
    /// The client address.
    pub client: String,
}

/// `LOGIN_MAX_FAILURES` within `LOGIN_FAILURE_WINDOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed in one window.
    pub max_failures: u32,
    /// Window length, counted from the first failure of the window.
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Counts failed logins per key in fixed windows: a window opens at the first
/// failure; once it holds `max_failures`, logins for the key are refused
/// until the window closes. A success clears the key.
#[async_trait]
pub trait LoginThrottle: Send + Sync + 'static {
    /// `Some(retry_after)` when logins for `key` are refused at `now`.
    ///
    /// # Errors
    /// Storage failures.
    async fn blocked_for(
        &self,
        key: &ThrottleKey,
        now: Timestamp,
    ) -> anyhow::Result<Option<Duration>>;

    /// Counts one failed login at `now` (opening a new window when the last one closed).
    ///
    /// # Errors
    /// Storage failures.
    async fn record_failure(&self, key: &ThrottleKey, now: Timestamp) -> anyhow::Result<()>;

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

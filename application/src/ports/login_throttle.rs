//! The brute-force throttle of the login (contract: "Brute force").

use std::time::Duration;

use async_trait::async_trait;
use domain::Timestamp;

/// One username from one client address block, or (for second factors)
/// from every address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThrottleKey {
    /// The user's case-folded username, or the keyed pseudonym of a name
    /// that matches no user (never a name as typed).
    pub username: String,
    /// The client's address block ([`domain::throttle::client_block`]: an
    /// IPv6 address by its /64), or [`Self::EVERY_ADDRESS`].
    pub client: String,
}

impl ThrottleKey {
    /// The `client` of a key that counts every address: no address is
    /// written so.
    pub const EVERY_ADDRESS: &'static str = "*";

    /// `username` from `client`'s address block (`unknown` when the edge saw
    /// no address).
    pub fn new(username: String, client: &crate::ClientInfo) -> Self {
        let client = match client.ip.as_deref() {
            None => "unknown".into(),
            Some(ip) => match ip.parse() {
                Ok(ip) => domain::throttle::client_block(ip).to_string(),
                Err(_) => ip.to_owned(),
            },
        };
        Self { username, client }
    }

    /// The second factors of `username` from every address (contract v3).
    pub fn second_factors_of(username: String) -> Self {
        Self {
            username,
            client: Self::EVERY_ADDRESS.into(),
        }
    }

    /// What the key's window counts, and so which policy judges it.
    pub fn scope(&self) -> ThrottleScope {
        if self.client == Self::EVERY_ADDRESS {
            ThrottleScope::SecondFactors
        } else {
            ThrottleScope::FromAddress
        }
    }
}

pub use domain::{ThrottlePolicy, ThrottleScope};

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

    /// Forgets every failure counted for `username` (case-folded), from
    /// every address and for the second factors (after a password reset).
    ///
    /// # Errors
    /// Storage failures.
    async fn clear_user(&self, username: &str) -> anyhow::Result<()>;

    /// Deletes the windows that closed before `now`; returns how many went.
    ///
    /// # Errors
    /// Storage failures.
    async fn prune(&self, now: Timestamp) -> anyhow::Result<u64>;
}

//! How many sockets one user, and one client address, may hold at once.
//!
//! A slot is taken per user at the handshake (once the token names the
//! user) and per address as soon as the connection is accepted, so that
//! handshakes in progress count too; both are given back when the
//! connection ends. Addresses of trusted proxies (everything behind Nginx
//! arrives from it, and Nginx bounds each client with `limit_conn`) and
//! loopback are not bounded per address.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use domain::UserId;

use crate::net::IpNet;

/// Counts per key, bounded by a maximum.
#[derive(Debug)]
struct Counts<K> {
    max: usize,
    open: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Copy + Send + Sync + 'static> Counts<K> {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::default(),
        })
    }

    /// A slot for `key`, or `None` at the maximum.
    fn take(self: &Arc<Self>, key: K) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.get(&key).copied().unwrap_or(0);
        if !domain::sockets::slot_free(n, self.max) {
            return None;
        }
        open.insert(key, n + 1);
        let counts = Arc::clone(self);
        Some(Slot(Some(Box::new(move || counts.give_back(key)))))
    }

    fn give_back(&self, key: K) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&key);
            }
        }
    }
}

/// A taken slot; dropping it gives it back (the default: none taken).
#[derive(Default)]
pub(crate) struct Slot(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(give_back) = self.0.take() {
            give_back();
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

/// The per-user and per-address bounds of one WebSocket listener.
#[derive(Debug)]
pub(crate) struct Limits {
    per_user: Arc<Counts<UserId>>,
    per_address: Arc<Counts<IpAddr>>,
    unbounded: Vec<IpNet>,
}

impl Limits {
    pub(crate) fn new(per_user: usize, per_address: usize, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            per_user: Counts::new(per_user),
            per_address: Counts::new(per_address),
            unbounded: trusted_proxies,
        }
    }

    /// A slot for `user`, or `None` when the user holds the maximum.
    pub(crate) fn take_user(&self, user: UserId) -> Option<Slot> {
        self.per_user.take(user)
    }

    /// A slot for a connection from `peer`: `Some(None)` when the address is
    /// not bounded, `None` when it holds the maximum.
    pub(crate) fn take_address(&self, peer: IpAddr) -> Option<Option<Slot>> {
        let peer = peer.to_canonical();
        let trusted = self.unbounded.iter().any(|net| net.contains(peer));
        if !domain::sockets::address_bounded(peer.is_loopback(), trusted) {
            return Some(None);
        }
        self.per_address.take(peer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let limits = Limits::new(2, 1, vec!["10.0.0.0/8".parse().unwrap()]);
        let alice = UserId::from_uuid(Uuid::from_u128(1));
        let bob = UserId::from_uuid(Uuid::from_u128(2));
        let a1 = limits.take_user(alice).unwrap();
        let _a2 = limits.take_user(alice).unwrap();
        assert!(limits.take_user(alice).is_none());
        assert!(
            limits.take_user(bob).is_some(),
            "another user is not affected"
        );
        drop(a1);
        assert!(
            limits.take_user(alice).is_some(),
            "a closed socket frees its slot"
        );

        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let held = limits.take_address(client).unwrap();
        assert!(held.is_some());
        assert!(limits.take_address(client).is_none());
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert!(
            limits.take_address(mapped).is_none(),
            "one address either way"
        );
        for free in ["127.0.0.1", "::1", "10.1.2.3"] {
            let ip: IpAddr = free.parse().unwrap();
            assert!(matches!(limits.take_address(ip), Some(None)), "{free}");
        }
        drop(held);
        assert!(limits.take_address(client).is_some());
        assert!(limits.per_address.open.lock().unwrap().len() <= 1);
    }
}

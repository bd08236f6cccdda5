//! Slots per key under a maximum, and per client address: the caps both
//! edges put on how much one client may hold at once (WebSockets, REST
//! connections).
//!
//! An address counts by its block ([`domain::throttle::client_block`]: an
//! IPv6 address by its /64). Loopback and trusted proxies are not bounded
//! ([`domain::sockets::address_bounded`]): everything behind Nginx arrives
//! from it, and Nginx bounds each client with `limit_conn`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::IpNet;

/// Counts per key, bounded by a maximum.
#[derive(Debug)]
pub(crate) struct Counts<K> {
    max: usize,
    open: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Copy + Send + Sync + 'static> Counts<K> {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::default(),
        })
    }

    /// A slot for `key`, or `None` at the maximum.
    pub(crate) fn take(self: &Arc<Self>, key: K) -> Option<Slot> {
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

/// Slots per client address block, but for loopback and trusted proxies.
#[derive(Debug)]
pub(crate) struct AddressCap {
    counts: Arc<Counts<IpAddr>>,
    unbounded: Vec<IpNet>,
}

impl AddressCap {
    /// At most `max` per block; `trusted_proxies` unbounded.
    pub(crate) fn new(max: usize, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            counts: Counts::new(max),
            unbounded: trusted_proxies,
        }
    }

    /// A slot for a connection from `peer`: `Some(None)` when the address is
    /// not bounded, `None` when its block holds the maximum.
    pub(crate) fn take(&self, peer: IpAddr) -> Option<Option<Slot>> {
        let peer = peer.to_canonical();
        let trusted = self.unbounded.iter().any(|net| net.contains(peer));
        if !domain::sockets::address_bounded(peer.is_loopback(), trusted) {
            return Some(None);
        }
        self.counts
            .take(domain::throttle::client_block(peer))
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_by_block_and_slots_are_given_back() {
        let cap = AddressCap::new(1, vec!["10.0.0.0/8".parse().unwrap()]);
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let held = cap.take(client).unwrap();
        assert!(held.is_some());
        assert!(cap.take(client).is_none());
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert!(cap.take(mapped).is_none(), "one address either way");
        for free in ["127.0.0.1", "::1", "10.1.2.3"] {
            let ip: IpAddr = free.parse().unwrap();
            assert!(matches!(cap.take(ip), Some(None)), "{free}");
        }
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let one = cap.take(v6("2001:db8:0:1::1")).unwrap();
        assert!(one.is_some());
        assert!(cap.take(v6("2001:db8:0:1::2")).is_none(), "the same /64");
        assert!(cap.take(v6("2001:db8:0:2::1")).is_some(), "another /64");
        drop(held);
        assert!(
            cap.take(client).is_some(),
            "a closed connection frees its slot"
        );
        assert!(cap.counts.open.lock().unwrap().len() <= 2);
    }
}

//! How many sockets one user, and one client address, may hold at once.
//!
//! A slot is taken per user at the handshake (once the token names the
//! user) and per address as soon as the connection is accepted, so that
//! handshakes in progress count too; both are given back when the
//! connection ends. Addresses count as in [`crate::net::address_cap`] (an
//! IPv6 client by its /64; trusted proxies and loopback not bounded).

use std::net::IpAddr;
use std::sync::Arc;

use domain::UserId;

use crate::net::IpNet;
pub(crate) use crate::net::address_cap::Slot;
use crate::net::address_cap::{AddressCap, Counts};

/// The per-user and per-address bounds of one WebSocket listener.
#[derive(Debug)]
pub(crate) struct Limits {
    per_user: Arc<Counts<UserId>>,
    per_address: AddressCap,
}

impl Limits {
    pub(crate) fn new(per_user: usize, per_address: usize, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            per_user: Counts::new(per_user),
            per_address: AddressCap::new(per_address, trusted_proxies),
        }
    }

    /// A slot for `user`, or `None` when the user holds the maximum.
    pub(crate) fn take_user(&self, user: UserId) -> Option<Slot> {
        self.per_user.take(user)
    }

    /// A slot for a connection from `peer`: `Some(None)` when the address is
    /// not bounded, `None` when it holds the maximum.
    pub(crate) fn take_address(&self, peer: IpAddr) -> Option<Option<Slot>> {
        self.per_address.take(peer)
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
        assert!(limits.take_address(client).is_none(), "per address too");
    }
}

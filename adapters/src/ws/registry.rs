//! The index session id -> live connections, so that a revocation costs the
//! connections it closes and not a scan of all of them; and the doorbell
//! each connection is rung with, at revocation and at shutdown.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use domain::SessionId;
use futures_util::task::AtomicWaker;

/// Shards, so that connects and disconnects of many sessions rarely contend.
const SHARDS: usize = 32;

/// What the registry keeps of a connection.
pub(crate) type Doorbell = Arc<Bell>;

/// Why a bell rang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rung {
    /// The connection's session was revoked.
    Revoked,
    /// The service is shutting down.
    Shutdown,
    /// The accepted signing keys changed: is the connection's still one?
    Keys,
}

const REVOKED: u8 = 1;
const SHUTDOWN: u8 = 2;
const KEYS: u8 = 4;

/// A connection's doorbell. A ring stays (a connection it rang for ends),
/// so it is never lost between two polls; polling it needs no state of its
/// own in the polling future, unlike a `Notify`'s or a channel's waiters:
/// a parked connection costs what it must keep, nothing more.
#[derive(Debug, Default)]
pub(crate) struct Bell {
    rung: AtomicU8,
    waker: AtomicWaker,
}

impl Bell {
    /// Rings: the connection's next poll sees it.
    pub(crate) fn ring(&self, why: Rung) {
        let bit = match why {
            Rung::Revoked => REVOKED,
            Rung::Shutdown => SHUTDOWN,
            Rung::Keys => KEYS,
        };
        self.rung.fetch_or(bit, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Whether it rang (shutdown first), registering the task otherwise.
    pub(crate) fn poll_rung(&self, cx: &mut Context<'_>) -> Poll<Rung> {
        self.waker.register(cx.waker());
        match self.rung.load(Ordering::SeqCst) {
            0 => Poll::Pending,
            bits if bits & SHUTDOWN != 0 => Poll::Ready(Rung::Shutdown),
            bits if bits & REVOKED != 0 => Poll::Ready(Rung::Revoked),
            _ => Poll::Ready(Rung::Keys),
        }
    }

    /// Takes back a [`Rung::Keys`] ring once the connection has looked at
    /// its key (the others stay: the connection ends on them).
    pub(crate) fn answered_keys(&self) {
        self.rung.fetch_and(!KEYS, Ordering::SeqCst);
    }

    /// Waits until it rings.
    pub(crate) async fn rung(&self) -> Rung {
        std::future::poll_fn(|cx| self.poll_rung(cx)).await
    }
}

/// Connections by session id.
#[derive(Debug)]
pub(crate) struct Registry {
    shards: Vec<Mutex<HashMap<SessionId, HashMap<u64, Doorbell>>>>,
    hasher: RandomState,
    next_id: AtomicU64,
    /// Set at shutdown: a connection filed after it is rung at once.
    closing: AtomicBool,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            next_id: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        }
    }
}

impl Registry {
    fn shard(&self, sid: &SessionId) -> &Mutex<HashMap<SessionId, HashMap<u64, Doorbell>>> {
        let index = usize::try_from(self.hasher.hash_one(sid) % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// A fresh connection id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Files connection `id` under `sid` (rung at once if the service is
    /// shutting down).
    pub(crate) fn insert(&self, sid: SessionId, id: u64, bell: Doorbell) {
        self.shard(&sid)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(sid)
            .or_default()
            .insert(id, bell.clone());
        // After the insertion: either `shut_down` finds it, or this sees the flag.
        if self.closing.load(Ordering::SeqCst) {
            bell.ring(Rung::Shutdown);
        }
    }

    /// Rings every connection for shutdown, and every one filed later.
    pub(crate) fn shut_down(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.ring_all(Rung::Shutdown);
    }

    /// Rings every filed connection.
    pub(crate) fn ring_all(&self, why: Rung) {
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for bell in shard.values().flat_map(HashMap::values) {
                bell.ring(why);
            }
        }
    }

    /// Forgets connection `id` filed under `sid`.
    pub(crate) fn remove(&self, sid: SessionId, id: u64) {
        let mut shard = self
            .shard(&sid)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(conns) = shard.get_mut(&sid) {
            conns.remove(&id);
            if conns.is_empty() {
                shard.remove(&sid);
            }
        }
    }

    /// Refiles connection `id` from session `from` to session `to` (a reauth
    /// with a token of another session of the same user).
    pub(crate) fn move_to(&self, from: SessionId, to: SessionId, id: u64, bell: Doorbell) {
        if from != to {
            self.remove(from, id);
            self.insert(to, id, bell);
        }
    }

    /// Rings every connection of a revoked session and forgets them; returns
    /// how many there were.
    pub(crate) fn revoke(&self, sid: SessionId) -> usize {
        let conns = self
            .shard(&sid)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&sid);
        let conns = conns.unwrap_or_default();
        for bell in conns.values() {
            bell.ring(Rung::Revoked);
        }
        conns.len()
    }

    /// How many connections are filed (for logs and tests).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .map(HashMap::len)
                    .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn sid(n: u128) -> SessionId {
        SessionId::from_uuid(Uuid::from_u128(n))
    }

    #[tokio::test]
    async fn revocation_rings_only_that_session() {
        let registry = Registry::default();
        let (a1, a2, b) = (
            Doorbell::default(),
            Doorbell::default(),
            Doorbell::default(),
        );
        registry.insert(sid(1), 1, a1.clone());
        registry.insert(sid(1), 2, a2.clone());
        registry.insert(sid(2), 3, b.clone());
        assert_eq!(registry.revoke(sid(1)), 2);
        assert_eq!(a1.rung().await, Rung::Revoked);
        assert_eq!(a2.rung().await, Rung::Revoked);
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.revoke(sid(1)), 0);
        registry.move_to(sid(2), sid(3), 3, b);
        assert_eq!(registry.revoke(sid(2)), 0);
        assert_eq!(registry.revoke(sid(3)), 1);
        assert_eq!(registry.len(), 0);
    }

    #[tokio::test]
    async fn shutdown_rings_every_connection_and_every_later_one() {
        let registry = Registry::default();
        let (before, after) = (Doorbell::default(), Doorbell::default());
        registry.insert(sid(1), 1, before.clone());
        registry.shut_down();
        assert_eq!(before.rung().await, Rung::Shutdown);
        registry.insert(sid(2), 2, after.clone());
        assert_eq!(after.rung().await, Rung::Shutdown);
        // Shutdown wins over a revocation.
        assert_eq!(registry.revoke(sid(1)), 1);
        assert_eq!(before.rung().await, Rung::Shutdown);
    }

    #[test]
    fn removal_forgets_empty_sessions() {
        let registry = Registry::default();
        registry.insert(sid(1), 1, Doorbell::default());
        registry.remove(sid(1), 1);
        registry.remove(sid(1), 1);
        assert_eq!(registry.len(), 0);
        assert!(
            registry
                .shards
                .iter()
                .all(|s| s.lock().map(|m| m.is_empty()).unwrap_or(false))
        );
    }
}

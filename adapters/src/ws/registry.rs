//! The index session id -> live connections, so that a revocation costs the
//! connections it closes and not a scan of all of them.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use domain::SessionId;
use tokio::sync::Notify;

/// Shards, so that connects and disconnects of many sessions rarely contend.
const SHARDS: usize = 32;

/// What the registry keeps of a connection: a doorbell rung at revocation.
/// A `Notify` keeps a permit, so a ring is never lost between two polls.
pub(crate) type Doorbell = Arc<Notify>;

/// Connections by session id.
#[derive(Debug)]
pub(crate) struct Registry {
    shards: Vec<Mutex<HashMap<SessionId, HashMap<u64, Doorbell>>>>,
    hasher: RandomState,
    next_id: AtomicU64,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            next_id: AtomicU64::new(0),
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

    /// Files connection `id` under `sid`.
    pub(crate) fn insert(&self, sid: SessionId, id: u64, bell: Doorbell) {
        let mut shard = self
            .shard(&sid)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.entry(sid).or_default().insert(id, bell);
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
            bell.notify_one();
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
        a1.notified().await;
        a2.notified().await;
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.revoke(sid(1)), 0);
        registry.move_to(sid(2), sid(3), 3, b);
        assert_eq!(registry.revoke(sid(2)), 0);
        assert_eq!(registry.revoke(sid(3)), 1);
        assert_eq!(registry.len(), 0);
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

//! Session ids revoked recently, so that their access tokens stop working at
//! once without a database query per request.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use domain::{SessionId, Timestamp};

/// How many inserts between two sweeps of forgotten ids.
const SWEEP_EVERY: usize = 1024;

/// Revoked session ids, remembered as long as an access token of theirs could
/// still be valid. Kept current by the revocation bus.
#[derive(Debug, Clone)]
pub struct RevokedSessions {
    inner: Arc<RwLock<Inner>>,
    remember_for: Duration,
}

#[derive(Debug, Default)]
struct Inner {
    revoked_at: HashMap<SessionId, Timestamp>,
    inserts_since_sweep: usize,
}

impl RevokedSessions {
    /// Forgets ids `remember_for` after they were added (access-token lifetime plus leeway).
    pub fn new(remember_for: Duration) -> Self {
        Self {
            inner: Arc::default(),
            remember_for,
        }
    }

    /// Adds a revoked id; `true` when it was not known yet.
    pub fn insert(&self, id: SessionId, now: Timestamp) -> bool {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.inserts_since_sweep += 1;
        if inner.inserts_since_sweep >= SWEEP_EVERY {
            let horizon = now.minus(self.remember_for);
            inner.revoked_at.retain(|_, at| *at >= horizon);
            inner.inserts_since_sweep = 0;
        }
        match inner.revoked_at.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(now);
                true
            }
        }
    }

    /// Whether `id` was revoked.
    pub fn contains(&self, id: &SessionId) -> bool {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .revoked_at
            .contains_key(id)
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .revoked_at
            .len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

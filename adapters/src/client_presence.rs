//! Whether the client of the request being served is still connected.
//!
//! The HTTP edge runs each request inside [`watching`] with the presence of
//! its connection, which the listener marks gone when the peer closes or
//! resets it. Work that is costly and useless once nobody waits for the
//! answer (a password check queued behind others) asks [`current`] and
//! skips itself. Anything else runs to the end, as before: a request's
//! writes are never cut half-way because its client left.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One connection's presence; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Presence(Arc<AtomicBool>);

impl Presence {
    /// A connected client.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client has gone (closed, reset, or timed out).
    pub fn mark_gone(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`Self::mark_gone`] was called.
    pub fn is_gone(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

tokio::task_local! {
    static PRESENCE: Presence;
}

/// Runs `work` as the request of the client whose presence is `presence`.
pub async fn watching<F: Future>(presence: Presence, work: F) -> F::Output {
    PRESENCE.scope(presence, work).await
}

/// The presence of the client of the request this task is serving, if any.
pub fn current() -> Option<Presence> {
    PRESENCE.try_with(Clone::clone).ok()
}

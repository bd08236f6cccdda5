//! The kids of the connections' tokens, one allocation per key.

use std::sync::Arc;

/// Interned key ids: a connection holds an `Arc<String>` of its token's kid
/// (a thin pointer, 8 bytes of the serving task's 512), shared by every
/// connection of that key.
#[derive(Debug, Default)]
pub(crate) struct KidNames(std::sync::Mutex<Vec<Arc<String>>>);

impl KidNames {
    pub(crate) fn name(&self, kid: Option<String>) -> Option<Arc<String>> {
        let kid = kid?;
        let mut names = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(name) = names.iter().find(|n| ***n == kid) {
            return Some(Arc::clone(name));
        }
        // Few keys live at once; forget those no connection holds.
        names.retain(|n| Arc::strong_count(n) > 1);
        let name = Arc::new(kid);
        names.push(Arc::clone(&name));
        Some(name)
    }
}

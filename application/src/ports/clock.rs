//! The time.

use domain::Timestamp;

/// Tells the time; tests use a settable one.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

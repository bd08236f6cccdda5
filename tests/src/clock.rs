//! A clock the tests move forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use application::ports::Clock;
use domain::Timestamp;

/// The system clock plus an offset the test moves forward: until
/// [`TestClock::advance`] is called it tells the real time, so timers on
/// the wall clock (the WebSocket's) and the service agree.
#[derive(Debug, Clone, Default)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).expect("a test advances by less than i64 ms");
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        let real = adapters::system::SystemClock.now();
        Timestamp::from_unix_millis(real.unix_millis() + self.0.load(Ordering::SeqCst))
    }
}

/// The wall clock's Unix seconds (for claims a test forges or checks).
pub fn unix_now() -> i64 {
    adapters::system::SystemClock.now().unix_seconds()
}

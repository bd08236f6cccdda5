//! The real clock, the operating system's CSPRNG, the open-file limit and
//! the allocator setting.

#[cfg(test)]
pub(crate) mod alloc_meter;
mod allocator;
mod fd_limit;

pub use allocator::tune_allocator;
pub use fd_limit::raise_open_file_limit;

use application::ports::{Clock, RandomSource};
use domain::Timestamp;

/// Wall-clock time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_unix_millis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }
}

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // Without entropy no token may be minted: stopping is the only safe answer.
        #[expect(
            clippy::expect_used,
            reason = "no entropy, no token: stopping is the answer"
        )]
        getrandom::fill(buf).expect("the operating system's random source failed");
    }
}

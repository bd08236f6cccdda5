//! How long a revocation matters, where a read of recent revocations starts,
//! and when a process's revocation feed counts as down.
//!
//! Every process keeps the ids of revoked sessions so that their access
//! tokens stop working without a query per request. It hears of them in two
//! ways: a push (PostgreSQL `NOTIFY`, or a call inside the process) and a
//! periodic read of the sessions revoked recently, which also serves as the
//! catch-up after an outage. The rules of both are here, once.

use std::time::Duration;

use crate::Timestamp;

/// Clock leeway for `exp` and `nbf` (the contract allows at most 30 s).
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(30);

/// Extra time a revocation is remembered beyond the last access token it can
/// concern (clock differences between processes, a slow start).
const HORIZON_MARGIN: Duration = Duration::from_secs(60);

/// How far each read of recent revocations reaches back before the start of
/// the previous successful read: a revocation written by a process whose
/// clock lags, or committed a moment after it was stamped, is still seen.
pub const READ_OVERLAP: Duration = Duration::from_secs(10);

/// How long a feed may be down before the process reports itself degraded.
pub const FEED_DOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a revoked session must be remembered: an access token issued just
/// before the revocation lives `access_ttl`, and is accepted [`CLOCK_LEEWAY`]
/// past its `exp`.
pub fn revocation_horizon(access_ttl: Duration) -> Duration {
    access_ttl
        .saturating_add(CLOCK_LEEWAY)
        .saturating_add(HORIZON_MARGIN)
}

/// Where the next read of revoked sessions starts.
///
/// `last_read` is when the last successful read *started* (by this process's
/// clock); `None` before the first one. After an outage of any length the read
/// therefore covers the whole gap, but never more than the horizon: older
/// revocations concern only access tokens that have expired.
pub fn read_since(last_read: Option<Timestamp>, now: Timestamp, access_ttl: Duration) -> Timestamp {
    let floor = now.minus(revocation_horizon(access_ttl));
    match last_read {
        Some(at) => at.minus(READ_OVERLAP).max(floor),
        None => floor,
    }
}

/// Whether a feed that has been down since `down_since` (`None`: up) makes the
/// process degraded at `now`.
pub fn feed_degraded(down_since: Option<Timestamp>, now: Timestamp) -> bool {
    down_since.is_some_and(|since| now.since(since) > FEED_DOWN_GRACE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TTL: Duration = Duration::from_secs(900);

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(secs)
    }

    #[test]
    fn the_horizon_follows_the_token_lifetime() {
        assert_eq!(revocation_horizon(TTL), Duration::from_secs(990));
        let day = Duration::from_secs(86_400);
        assert_eq!(revocation_horizon(day), day + Duration::from_secs(90));
        assert_eq!(revocation_horizon(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn the_first_read_reaches_back_one_horizon() {
        assert_eq!(read_since(None, t(10_000), TTL), t(10_000 - 990));
    }

    #[test]
    fn a_catch_up_after_a_long_outage_covers_the_whole_gap_of_a_long_token_lifetime() {
        // Tokens live 6 h; the feed was down for 3 h: every revocation of
        // those 3 h is read again (a fixed one-hour cap would miss two).
        let ttl = Duration::from_secs(6 * 3600);
        let last = t(100_000);
        let now = t(100_000 + 3 * 3600);
        assert_eq!(read_since(Some(last), now, ttl), t(100_000 - 10));
    }

    #[test]
    fn an_outage_longer_than_the_horizon_reads_one_horizon() {
        assert_eq!(read_since(Some(t(0)), t(100_000), TTL), t(100_000 - 990));
    }

    #[test]
    fn degraded_only_after_the_grace() {
        assert!(!feed_degraded(None, t(100)));
        assert!(!feed_degraded(Some(t(100)), t(105)));
        assert!(feed_degraded(Some(t(100)), t(106)));
    }

    proptest! {
        /// A read never starts later than the previous read (minus the
        /// overlap), and never earlier than the horizon: nothing that can
        /// still matter is skipped, nothing expired is read.
        #[test]
        fn reads_cover_the_gap_within_the_horizon(
            last in 0i64..1_000_000,
            gap in 0i64..1_000_000,
            ttl in 1u64..200_000,
        ) {
            let ttl = Duration::from_secs(ttl);
            let (last, now) = (t(last), t(last + gap));
            let since = read_since(Some(last), now, ttl);
            let floor = now.minus(revocation_horizon(ttl));
            prop_assert!(since >= floor);
            prop_assert!(since <= last.minus(READ_OVERLAP).max(floor));
            prop_assert!(since <= now);
        }
    }
}

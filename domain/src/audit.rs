//! What the audit trail keeps: the quieting of repeated throttled attempts.

use std::time::Duration;

use crate::time::Timestamp;

/// After a throttled attempt of a (username, client address) pair is logged
/// and stored, the pair's further throttled attempts within this time are
/// only counted. Someone retrying a locked name as fast as they can would
/// otherwise write one row and one warning per request, where a rejected
/// attempt costs the server no hashing.
pub const THROTTLED_QUIET: Duration = Duration::from_secs(60);

/// Whether a throttled attempt at `now` is logged and stored, given when
/// the pair's last one was (`None`: never, or forgotten).
pub fn audit_throttled(last_audited: Option<Timestamp>, now: Timestamp) -> bool {
    // A clock that went back (another process's, or a correction) ends the
    // quiet rather than extend it.
    last_audited.is_none_or(|last| !(last <= now && now < last.plus(THROTTLED_QUIET)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_throttled_attempt_a_minute_per_pair() {
        let t = |s: i64| Timestamp::from_unix_millis(s * 1000);
        assert!(audit_throttled(None, t(0)));
        assert!(!audit_throttled(Some(t(0)), t(59)));
        assert!(audit_throttled(Some(t(0)), t(60)));
        assert!(audit_throttled(Some(t(10)), t(9)), "a clock that went back");
    }
}

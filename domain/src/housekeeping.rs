//! The housekeeping policy: how often and how much is deleted of what no
//! rule needs any more.

use std::time::Duration;

/// How often ended sessions, closed throttle windows, ended `mfaToken`s and
/// old audit events are pruned (a first pass at start).
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long an ended session (revoked or expired) is kept before it is
/// pruned: a week of history for `authd audit` and support.
pub const PRUNE_KEEP: Duration = Duration::from_secs(7 * 86_400);
/// Rows deleted per statement, so that no prune holds locks for long.
pub const PRUNE_BATCH: u64 = 1000;
/// How often the refresh-grace seals whose grace has passed are erased: a
/// seal outlives its grace by at most this.
pub const SEAL_SWEEP_EVERY: Duration = Duration::from_secs(1);

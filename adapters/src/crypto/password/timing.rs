//! Every password check answers no sooner than the slowest kind of stored
//! hash would: a login tells neither whether the user exists nor how the
//! account's hash was made (argon2id, an imported bcrypt or PBKDF2 hash, or a
//! hash that cannot be checked at all), nor anything about the password's
//! length.
//!
//! The cost of each kind (scheme and parameters, e.g. `2b$10` or
//! `pbkdf2-sha256$i=600000,l=32`) is a moving average of its own runs, seeded
//! at start for our argon2id and the usual imported schemes; the floor is the
//! largest of them, capped at [`MAX_FLOOR`]. The wait is a timer on the async
//! side, so it holds no hashing thread and costs no CPU.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The longest a check is stretched to: a stored hash slower than this (a
/// bcrypt cost of 13 or more) stands out, and its owner is told so in the logs.
pub(super) const MAX_FLOOR: Duration = Duration::from_secs(1);

/// The most kinds kept; stored hashes come from our own rows, so there are a
/// handful at most.
const MAX_KINDS: usize = 64;

/// The moving averages of each kind's cost.
#[derive(Debug, Default)]
pub(super) struct Floor {
    costs: Mutex<HashMap<String, Duration>>,
}

impl Floor {
    /// Adds one run of `kind` that took `took`.
    pub(super) fn record(&self, kind: &str, took: Duration) {
        let mut costs = self.costs.lock().unwrap_or_else(PoisonError::into_inner);
        let len = costs.len();
        match costs.get_mut(kind) {
            // Weight 1/8: a run slowed by a burst moves it a little.
            Some(average) => *average = (*average * 7 + took) / 8,
            None if len < MAX_KINDS => {
                if took > MAX_FLOOR {
                    tracing::warn!(
                        kind,
                        ms = took.as_millis(),
                        "a stored password hash takes longer to check than the timing floor covers; its logins can be told apart by time"
                    );
                }
                costs.insert(kind.to_owned(), took);
            }
            None => {}
        }
    }

    /// How long every check takes at least.
    pub(super) fn get(&self) -> Duration {
        let costs = self.costs.lock().unwrap_or_else(PoisonError::into_inner);
        costs
            .values()
            .copied()
            .max()
            .unwrap_or_default()
            .min(MAX_FLOOR)
    }
}

/// The kind of a stored hash: its scheme and parameters, without salt or
/// output (`$argon2id$v=19$m=19456,t=2,p=1`, `$2b$10`,
/// `$pbkdf2-sha256$i=600000,l=32`).
pub(super) fn kind_of(hash: &str) -> &str {
    let is_bcrypt = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
    let keep = if is_bcrypt {
        2
    } else {
        hash.matches('$').count().saturating_sub(2)
    };
    let end = hash
        .match_indices('$')
        .nth(keep)
        .map_or(hash.len(), |(i, _)| i);
    &hash[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_carry_no_salt_or_output() {
        assert_eq!(
            kind_of("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"),
            "$argon2id$v=19$m=19456,t=2,p=1"
        );
        assert_eq!(
            kind_of("$2b$10$LXuaCVGEZbZYxadu7fx2ieG/AlrzGvBaDdFNj3na2ukvGWtvXyWVW"),
            "$2b$10"
        );
        assert_eq!(
            kind_of("$pbkdf2-sha256$i=600000,l=32$YXV0aGQ$cg2/hSV734"),
            "$pbkdf2-sha256$i=600000,l=32"
        );
        assert_eq!(kind_of("garbage"), "garbage");
    }

    #[test]
    fn the_floor_is_the_slowest_kind_averaged_and_capped() {
        let floor = Floor::default();
        assert_eq!(floor.get(), Duration::ZERO);
        floor.record("a", Duration::from_millis(40));
        floor.record("b", Duration::from_millis(160));
        assert_eq!(floor.get(), Duration::from_millis(160));
        // One slow run moves the average by an eighth of the difference.
        floor.record("b", Duration::from_millis(240));
        assert_eq!(floor.get(), Duration::from_millis(170));
        floor.record("c", Duration::from_secs(5));
        assert_eq!(floor.get(), MAX_FLOOR);
    }
}

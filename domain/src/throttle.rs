//! The login throttle's rule (contract: "Brute force"), as a pure function.
//!
//! A login takes a *slot* of its (username, client) window before the
//! password is checked, atomically in the store: a failed login keeps its
//! slot, a successful one clears the window. So N simultaneous guesses get at
//! most `max_failures` password checks, whatever their timing. Stores call
//! [`admit`] under their lock and write back the window it returns.

use std::time::Duration;

use crate::time::Timestamp;

/// `LOGIN_MAX_FAILURES` within `LOGIN_FAILURE_WINDOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Password checks (failed, or in flight) allowed in one window.
    pub max_failures: u32,
    /// Window length, counted from the window's first attempt.
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// One key's stored window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleWindow {
    /// The window's first attempt.
    pub start: Timestamp,
    /// Slots taken in it (failed logins, and logins being checked).
    pub attempts: u32,
}

/// What [`admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Check the password; store `window` (the slot is taken).
    Admit {
        /// The key's window with this attempt counted.
        window: ThrottleWindow,
    },
    /// Refuse without checking: `429`, `Retry-After: retry_after`.
    Refuse {
        /// Until the window closes.
        retry_after: Duration,
    },
}

/// Whether a login for a key whose stored window is `current` may check a
/// password at `now`.
pub fn admit(
    current: Option<ThrottleWindow>,
    now: Timestamp,
    policy: &ThrottlePolicy,
) -> Admission {
    match current {
        Some(w) if now < w.start.plus(policy.window) => {
            if w.attempts >= policy.max_failures {
                Admission::Refuse {
                    retry_after: w.start.plus(policy.window).since(now),
                }
            } else {
                Admission::Admit {
                    window: ThrottleWindow {
                        start: w.start,
                        attempts: w.attempts + 1,
                    },
                }
            }
        }
        // No window, or it closed: this attempt opens one.
        _ => Admission::Admit {
            window: ThrottleWindow {
                start: now,
                attempts: 1,
            },
        },
    }
}

/// A window after one of its slots is given back (a right password whose
/// login still waits for its second factor): one attempt fewer, never below
/// none, same start. Stores apply it as one conditional update.
pub fn release(window: ThrottleWindow) -> ThrottleWindow {
    ThrottleWindow {
        start: window.start,
        attempts: window.attempts.saturating_sub(1),
    }
}

/// Whether a window stored as `start` has closed at `now` (prunable).
pub fn window_closed(start: Timestamp, now: Timestamp, policy: &ThrottlePolicy) -> bool {
    now >= start.plus(policy.window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_millis(s * 1000)
    }

    const P: ThrottlePolicy = ThrottlePolicy {
        max_failures: 3,
        window: Duration::from_secs(60),
    };

    #[test]
    fn at_most_max_slots_per_window() {
        let mut w = None;
        for i in 0..3 {
            match admit(w, t(i), &P) {
                Admission::Admit { window } => w = Some(window),
                other => panic!("attempt {i}: {other:?}"),
            }
        }
        assert_eq!(w.unwrap().attempts, 3);
        assert_eq!(
            admit(w, t(20), &P),
            Admission::Refuse {
                retry_after: Duration::from_secs(40)
            }
        );
        // The window closes 60 s after its first attempt; the next opens a new one.
        assert_eq!(
            admit(w, t(60), &P),
            Admission::Admit {
                window: ThrottleWindow {
                    start: t(60),
                    attempts: 1
                }
            }
        );
        assert_eq!(release(w.unwrap()).attempts, 2);
        assert_eq!(
            release(ThrottleWindow {
                start: t(0),
                attempts: 0
            })
            .attempts,
            0
        );
        assert!(!window_closed(t(0), t(59), &P));
        assert!(window_closed(t(0), t(60), &P));
    }
}

//! The login throttle's rule (contract: "Brute force"), as a pure function.
//!
//! A login takes a *slot* of its (username, client) window before the
//! password is checked, atomically in the store: a failed login keeps its
//! slot, a successful one clears the window. So N simultaneous guesses get at
//! most `max_failures` password checks, whatever their timing. Stores call
//! [`admit`] under their lock and write back the window it returns.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::time::Timestamp;

/// Wrong second factors (TOTP codes, recovery codes, passkey assertions)
/// one account may get within a window from every address together
/// (contract v3): an attacker who holds the password and many addresses
/// still gets this many guesses, then `429` from everywhere.
pub const SECOND_FACTORS_PER_ACCOUNT: u32 = 10;

/// What a throttle window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleScope {
    /// Logins (passwords and second factors) of one account from one client
    /// address block: `LOGIN_MAX_FAILURES` per window.
    FromAddress,
    /// Second factors of one account from every address:
    /// [`SECOND_FACTORS_PER_ACCOUNT`] per window.
    SecondFactors,
}

impl ThrottlePolicy {
    /// The policy of windows of `scope`, given the configured one (the
    /// window's length is the same for both).
    pub fn for_scope(self, scope: ThrottleScope) -> Self {
        match scope {
            ThrottleScope::FromAddress => self,
            ThrottleScope::SecondFactors => Self {
                max_failures: SECOND_FACTORS_PER_ACCOUNT,
                window: self.window,
            },
        }
    }
}

/// The block a client address counts as in every throttle and connection
/// cap (contract v3): an IPv4 address alone, an IPv6 address by its /64
/// (one host usually holds a whole /64 and can pick any address in it). An
/// IPv4-mapped IPv6 address is its IPv4 address.
pub fn client_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

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
    fn ipv6_addresses_count_by_their_64() {
        let block = |s: &str| client_block(s.parse().unwrap()).to_string();
        assert_eq!(block("192.0.2.7"), "192.0.2.7");
        assert_eq!(block("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(block("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(block("2001:db8:1:2::1"), block("2001:db8:1:2:ffff::9"));
        assert_ne!(block("2001:db8:1:2::1"), block("2001:db8:1:3::1"));
        assert_eq!(block("::1"), "::");
    }

    #[test]
    fn second_factors_have_their_own_cap_over_the_same_window() {
        let p = P.for_scope(ThrottleScope::SecondFactors);
        assert_eq!(p.max_failures, SECOND_FACTORS_PER_ACCOUNT);
        assert_eq!(p.window, P.window);
        assert_eq!(P.for_scope(ThrottleScope::FromAddress), P);
    }

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

//! Two-factor login with TOTP (contract: "Two-factor login"): which time
//! steps a code may match, and the one-use rule. The codes themselves are
//! computed by the crypto adapter (RFC 6238 over HMAC-SHA-1).
//!
//! A code belongs to a 30-second step. One step of clock drift is allowed
//! either way, and a step, once a code of it was accepted, never matches
//! again, nor does any step before it: a code seen over a shoulder or
//! replayed from a log is refused, also by another process (the last used
//! step is stored with the secret).

use std::time::Duration;

use crate::Timestamp;

/// Seconds per TOTP step (RFC 6238's default, what authenticator apps use).
pub const STEP_SECONDS: i64 = 30;

/// Digits per code.
pub const DIGITS: u32 = 6;

/// Steps of clock drift accepted either way.
pub const DRIFT_STEPS: u64 = 1;

/// How long an enrolment waits for its confirming code.
pub const ENROLMENT_TTL: Duration = Duration::from_secs(600);

/// How long an `mfaToken` (the second step of a login) lives.
pub const MFA_TOKEN_TTL: Duration = Duration::from_secs(300);

/// Wrong codes an `mfaToken` allows before it is used up.
pub const MFA_TOKEN_MAX_WRONG: u32 = 5;

/// Wrong confirming codes a pending enrolment allows; the next wrong one
/// voids it (security review 2, finding 4: without a bound, 3,000 guesses
/// in its 10 minutes would likely hit and turn two-factor login on with the
/// owner's secret and the guesser holding the recovery codes).
pub const ENROLMENT_MAX_WRONG: u32 = 5;

/// Recovery codes made at confirmation.
pub const RECOVERY_CODES: usize = 10;

/// The TOTP step of `at` (the counter `T` of RFC 6238 with `T0 = 0`).
pub fn step_of(at: Timestamp) -> u64 {
    u64::try_from(at.unix_seconds().div_euclid(STEP_SECONDS)).unwrap_or(0)
}

/// The steps a code presented at `now` may match, oldest first: the
/// current one and `DRIFT_STEPS` either side, minus every step at or before
/// `last_used` (the step of the last accepted code).
pub fn candidate_steps(now: Timestamp, last_used: Option<u64>) -> Vec<u64> {
    let current = step_of(now);
    let first = current.saturating_sub(DRIFT_STEPS);
    (first..=current + DRIFT_STEPS)
        .filter(|step| last_used.is_none_or(|used| *step > used))
        .collect()
}

/// Whether an enrolment that began at `began` still waits for its
/// confirming code at `now` (it lasts [`ENROLMENT_TTL`]).
pub fn enrolment_open(began: Timestamp, now: Timestamp) -> bool {
    now < began.plus(ENROLMENT_TTL)
}

/// Whether a password change or an account deletion also needs a second
/// factor (contract v3, "Two-factor login"; security review 2, finding 2):
/// when two-factor login is on and the caller's session did not begin with
/// a second factor (its `amr` is `["pwd"]`: it began before enrolment).
pub fn code_needed_for_account_change(two_factor_on: bool, session: crate::AuthMethods) -> bool {
    two_factor_on && !session.two_factor()
}

/// Whether a pending enrolment that has seen `wrong` wrong codes stays.
pub fn enrolment_usable(wrong: u32) -> bool {
    wrong < ENROLMENT_MAX_WRONG
}

/// Whether an `mfaToken` that has seen `wrong` wrong codes still takes one.
pub fn mfa_token_usable(wrong: u32) -> bool {
    wrong < MFA_TOKEN_MAX_WRONG
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(secs)
    }

    #[test]
    fn steps_are_30_seconds_from_the_epoch() {
        assert_eq!(step_of(at(59)), 1);
        assert_eq!(step_of(at(60)), 2);
        // RFC 6238 Appendix B: T = 0x23523EC at 1111111109, 0x23523ED at 1111111111.
        assert_eq!(step_of(at(1_111_111_109)), 0x0235_23EC);
        assert_eq!(step_of(at(1_111_111_111)), 0x0235_23ED);
        assert_eq!(step_of(at(-5)), 0, "before the epoch: no step");
    }

    #[test]
    fn one_step_of_drift_either_way() {
        let now = at(1_000_000_020); // step 33_333_334
        assert_eq!(
            candidate_steps(now, None),
            [33_333_333, 33_333_334, 33_333_335]
        );
    }

    #[test]
    fn an_accepted_step_and_every_earlier_one_never_match_again() {
        let now = at(1_000_000_020);
        assert_eq!(
            candidate_steps(now, Some(33_333_333)),
            [33_333_334, 33_333_335]
        );
        assert_eq!(candidate_steps(now, Some(33_333_334)), [33_333_335]);
        assert!(candidate_steps(now, Some(33_333_335)).is_empty());
        // A clock set back does not reopen old steps.
        assert!(candidate_steps(at(1_000_000_000 - 3_000), Some(33_333_335)).is_empty());
    }

    #[test]
    fn an_enrolment_waits_ten_minutes() {
        assert!(enrolment_open(at(1_000), at(1_000)));
        assert!(enrolment_open(at(1_000), at(1_599)));
        assert!(!enrolment_open(at(1_000), at(1_600)));
    }

    #[test]
    fn an_mfa_token_takes_five_wrong_codes() {
        assert!((0..5).all(mfa_token_usable));
        assert!(!mfa_token_usable(5));
        assert!(!mfa_token_usable(6));
    }
}

//! Email (contract v3, "Email"): which strings are addresses, which address
//! is the account's, the links' lifetimes and single use, a reset voided by
//! any password change or a newer reset, at most three reset mails an hour,
//! and how the outbox retries.

use std::time::Duration;

use crate::time::Timestamp;

/// `EMAIL_VERIFY_EXPIRY`'s default.
pub const DEFAULT_VERIFY_EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// `PASSWORD_RESET_EXPIRY`'s default.
pub const DEFAULT_RESET_EXPIRY: Duration = Duration::from_secs(30 * 60);
/// Reset mails an account is sent at most in [`RESET_MAIL_WINDOW`].
pub const RESET_MAILS_PER_WINDOW: u64 = 3;
/// Verification mails an account is sent at most in [`RESET_MAIL_WINDOW`]
/// (each `PUT /api/account/email` mails an address the caller names).
pub const VERIFY_MAILS_PER_WINDOW: u64 = 5;
/// The window of [`RESET_MAILS_PER_WINDOW`] and [`VERIFY_MAILS_PER_WINDOW`].
pub const RESET_MAIL_WINDOW: Duration = Duration::from_secs(3600);
/// The longest address accepted (RFC 5321's path limit less the brackets).
pub const MAX_ADDRESS_LEN: usize = 254;
/// Bytes of randomness in a token sent by mail (256 bits).
pub const MAIL_TOKEN_BYTES: usize = 32;

/// Why a string is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "an email address is local@domain.tld, at most 254 characters, without spaces or control characters"
)]
pub struct InvalidEmail;

/// An email address, as the user gave it, checked the practical way: one
/// `@`, something before it, a domain with a dot (not at either end) after
/// it, at most [`MAX_ADDRESS_LEN`] characters, no space or control
/// character. Compared case-insensitively ([`EmailAddress::canonical`]);
/// kept and written to as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Checks `text`.
    ///
    /// # Errors
    /// [`InvalidEmail`].
    pub fn parse(text: &str) -> Result<Self, InvalidEmail> {
        if text.is_empty()
            || text.chars().count() > MAX_ADDRESS_LEN
            || text.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(InvalidEmail);
        }
        let (local, domain) = text.split_once('@').ok_or(InvalidEmail)?;
        let dotted = domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.');
        if local.is_empty() || domain.contains('@') || !dotted || domain.contains("..") {
            return Err(InvalidEmail);
        }
        Ok(Self(text.to_owned()))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two addresses are compared in: lower-cased.
    pub fn canonical(&self) -> String {
        self.0.to_lowercase()
    }

    /// The part after the `@` (for logs, which name no whole address).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// What an account shows as its address (`GET /api/account`): the verified
/// one while there is one (a change takes effect only once verified), else
/// the address waiting for verification, else none. `true` when verified.
pub fn account_address<'a>(
    verified: Option<&'a str>,
    pending: Option<&'a str>,
) -> Option<(&'a str, bool)> {
    verified
        .map(|v| (v, true))
        .or_else(|| pending.map(|p| (p, false)))
}

/// The two things a mail carries a token for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailPurpose {
    /// Proves the address (`/?verify=`).
    Verify,
    /// Sets a new password (`/?reset=`).
    Reset,
}

impl MailPurpose {
    /// As stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }

    /// From the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "verify" => Some(Self::Verify),
            "reset" => Some(Self::Reset),
            _ => None,
        }
    }

    /// The link's query parameter.
    pub const fn link_param(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }
}

/// How long a token sent for `purpose` lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailLifetimes {
    /// `EMAIL_VERIFY_EXPIRY`.
    pub verify: Duration,
    /// `PASSWORD_RESET_EXPIRY`.
    pub reset: Duration,
}

impl Default for MailLifetimes {
    fn default() -> Self {
        Self {
            verify: DEFAULT_VERIFY_EXPIRY,
            reset: DEFAULT_RESET_EXPIRY,
        }
    }
}

impl MailLifetimes {
    /// When a token for `purpose` issued at `now` expires.
    pub fn expiry(&self, purpose: MailPurpose, now: Timestamp) -> Timestamp {
        now.plus(match purpose {
            MailPurpose::Verify => self.verify,
            MailPurpose::Reset => self.reset,
        })
    }
}

/// What the store knows of a token presented from a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTokenFacts {
    /// What it was sent for.
    pub purpose: MailPurpose,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Whether it was used already.
    pub used: bool,
    /// Whether a newer token for the same purpose went to the account since
    /// (a new address asked for, a new reset asked for).
    pub superseded: bool,
    /// For a reset: whether the account's password is still the one it was
    /// issued under (a change by any means voids it).
    pub password_unchanged: bool,
    /// For a reset: whether the address it was sent to is still the
    /// account's verified address (a token is bound to its address).
    pub address_current: bool,
}

/// Why a token from a mail is refused (all `400 invalid_token_in_mail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailTokenRefusal {
    /// No such token, or one for the other purpose.
    #[error("unknown token")]
    Unknown,
    /// Used already.
    #[error("token used")]
    Used,
    /// Past its lifetime.
    #[error("token expired")]
    Expired,
    /// A newer one was sent, or (verify) the address is no longer pending.
    #[error("token replaced")]
    Superseded,
    /// The password changed since it was sent.
    #[error("password changed since")]
    PasswordChanged,
}

/// Judges a token presented for `purpose` at `now`.
///
/// # Errors
/// See [`MailTokenRefusal`].
pub fn judge_mail_token(
    facts: Option<&MailTokenFacts>,
    purpose: MailPurpose,
    now: Timestamp,
) -> Result<(), MailTokenRefusal> {
    let facts = facts
        .filter(|f| f.purpose == purpose)
        .ok_or(MailTokenRefusal::Unknown)?;
    if facts.used {
        return Err(MailTokenRefusal::Used);
    }
    if now >= facts.expires_at {
        return Err(MailTokenRefusal::Expired);
    }
    if facts.superseded {
        return Err(MailTokenRefusal::Superseded);
    }
    if purpose == MailPurpose::Reset && !facts.address_current {
        return Err(MailTokenRefusal::Superseded);
    }
    if purpose == MailPurpose::Reset && !facts.password_unchanged {
        return Err(MailTokenRefusal::PasswordChanged);
    }
    Ok(())
}

/// Whether another reset mail may go to an account that was sent `sent`
/// of them in the last [`RESET_MAIL_WINDOW`].
pub const fn reset_mail_allowed(sent: u64) -> bool {
    sent < RESET_MAILS_PER_WINDOW
}

/// Whether another mail for `purpose` may go to an account that was sent
/// `sent` of them in the last [`RESET_MAIL_WINDOW`]: 3 resets, 5
/// verifications.
pub const fn mail_allowed(purpose: MailPurpose, sent: u64) -> bool {
    match purpose {
        MailPurpose::Reset => reset_mail_allowed(sent),
        MailPurpose::Verify => sent < VERIFY_MAILS_PER_WINDOW,
    }
}

/// The outbox: a mail is tried again after a failure that may pass (no
/// connection, a `4xx`), later each time, and given up once it is older
/// than [`OUTBOX_GIVE_UP`] (its link would have expired; a `5xx` gives up
/// at once).
pub const OUTBOX_GIVE_UP: Duration = DEFAULT_VERIFY_EXPIRY;
/// How long a process holds a mail it claimed before another may take it
/// (a process that died while sending).
pub const OUTBOX_LEASE: Duration = Duration::from_secs(60);

/// When to try a mail again after its `attempts`-th failed attempt: 5 s,
/// 10 s, 20 s, ... at most 10 minutes apart. `None`: give up (the mail was
/// queued at `queued_at`, longer ago than [`OUTBOX_GIVE_UP`]).
pub fn next_attempt(attempts: u32, queued_at: Timestamp, now: Timestamp) -> Option<Timestamp> {
    if now >= queued_at.plus(OUTBOX_GIVE_UP) {
        return None;
    }
    let secs = 5u64.saturating_mul(1u64 << attempts.saturating_sub(1).min(20));
    Some(now.plus(Duration::from_secs(secs.min(600))))
}

/// The link a mail carries: `public_url` (no trailing `/`) + `/?verify=` or
/// `/?reset=` + the token.
pub fn mail_link(public_url: &str, purpose: MailPurpose, token: &str) -> String {
    format!(
        "{}/?{}={token}",
        public_url.trim_end_matches('/'),
        purpose.link_param()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_the_practical_way() {
        for good in ["a@b.co", "Alice.Smith+tag@Example.COM", "x@sub.domain.org"] {
            assert!(EmailAddress::parse(good).is_ok(), "{good}");
        }
        let long = format!("{}@example.com", "a".repeat(243));
        assert_eq!(long.len(), 255);
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.co",
            "a@b.",
            "a@@b.co",
            "a@b@c.co",
            "a b@c.co",
            "a@b..co",
            "a\n@b.co",
            "a\u{7f}@b.co",
            long.as_str(),
        ] {
            assert_eq!(EmailAddress::parse(bad), Err(InvalidEmail), "{bad:?}");
        }
        assert!(EmailAddress::parse(&long[1..]).is_ok(), "254 characters");
        let a = EmailAddress::parse("Alice@Example.com").unwrap();
        assert_eq!(a.as_str(), "Alice@Example.com");
        assert_eq!(a.canonical(), "alice@example.com");
        assert_eq!(a.domain(), "Example.com");
    }

    #[test]
    fn the_account_shows_its_verified_address_until_a_new_one_is_verified() {
        assert_eq!(account_address(None, None), None);
        assert_eq!(
            account_address(None, Some("n@x.io")),
            Some(("n@x.io", false))
        );
        assert_eq!(
            account_address(Some("o@x.io"), Some("n@x.io")),
            Some(("o@x.io", true))
        );
    }

    fn facts(purpose: MailPurpose) -> MailTokenFacts {
        MailTokenFacts {
            purpose,
            expires_at: Timestamp::from_unix_seconds(100),
            used: false,
            superseded: false,
            password_unchanged: true,
            address_current: true,
        }
    }

    #[test]
    fn a_mail_token_is_single_use_timed_and_voided_by_newer_ones() {
        let t = Timestamp::from_unix_seconds;
        let v = MailPurpose::Verify;
        let r = MailPurpose::Reset;
        assert_eq!(judge_mail_token(Some(&facts(v)), v, t(99)), Ok(()));
        assert_eq!(
            judge_mail_token(None, v, t(0)),
            Err(MailTokenRefusal::Unknown)
        );
        assert_eq!(
            judge_mail_token(Some(&facts(v)), r, t(0)),
            Err(MailTokenRefusal::Unknown),
            "a verify token is no reset token"
        );
        assert_eq!(
            judge_mail_token(Some(&facts(v)), v, t(100)),
            Err(MailTokenRefusal::Expired)
        );
        let used = MailTokenFacts {
            used: true,
            ..facts(r)
        };
        assert_eq!(
            judge_mail_token(Some(&used), r, t(0)),
            Err(MailTokenRefusal::Used)
        );
        let newer = MailTokenFacts {
            superseded: true,
            ..facts(v)
        };
        assert_eq!(
            judge_mail_token(Some(&newer), v, t(0)),
            Err(MailTokenRefusal::Superseded)
        );
        let changed = MailTokenFacts {
            password_unchanged: false,
            ..facts(r)
        };
        assert_eq!(
            judge_mail_token(Some(&changed), r, t(0)),
            Err(MailTokenRefusal::PasswordChanged)
        );
        let changed_verify = MailTokenFacts {
            password_unchanged: false,
            ..facts(v)
        };
        assert_eq!(
            judge_mail_token(Some(&changed_verify), v, t(0)),
            Ok(()),
            "a password change leaves a pending address alone"
        );
    }

    #[test]
    fn three_reset_mails_and_five_verifications_an_hour() {
        assert!(reset_mail_allowed(0));
        assert!(reset_mail_allowed(2));
        assert!(!reset_mail_allowed(3));
        assert!(mail_allowed(MailPurpose::Reset, 2));
        assert!(!mail_allowed(MailPurpose::Reset, 3));
        assert!(mail_allowed(MailPurpose::Verify, 4));
        assert!(!mail_allowed(MailPurpose::Verify, 5));
    }

    #[test]
    fn the_outbox_backs_off_and_gives_up_after_a_day() {
        let t = Timestamp::from_unix_seconds;
        let after = |n, now| next_attempt(n, t(0), t(now)).map(|a| a.unix_seconds() - now);
        assert_eq!(after(1, 0), Some(5));
        assert_eq!(after(2, 0), Some(10));
        assert_eq!(after(3, 0), Some(20));
        assert_eq!(after(8, 0), Some(600));
        assert_eq!(after(u32::MAX, 0), Some(600));
        assert_eq!(after(1, 86_399), Some(5));
        assert_eq!(after(1, 86_400), None);
    }

    #[test]
    fn links_point_at_the_public_url() {
        assert_eq!(
            mail_link("https://auth.example.com/", MailPurpose::Reset, "abc"),
            "https://auth.example.com/?reset=abc"
        );
        assert_eq!(
            mail_link("http://127.0.0.1:3000", MailPurpose::Verify, "t"),
            "http://127.0.0.1:3000/?verify=t"
        );
    }
}

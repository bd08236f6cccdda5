//! Email (contract v3, "Email"): an address for the account, proved by a
//! link; a forgotten password set again by a link to the verified address.
//! Every mail is queued in the same transaction as its token (see
//! [`MailStore::issue`]) and sent by the outbox ([`super::outbox`]); no
//! request waits for the mail system.

use std::sync::Arc;

use domain::email::{
    EmailAddress, InvalidEmail, MailLifetimes, MailPurpose, MailTokenFacts, MailTokenRefusal,
    judge_mail_token, mail_link,
};
use domain::{
    AccessClaims, PasswordHash, PasswordPolicyError, RevokeReason, SessionId, User,
    check_password_policy,
};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use crate::ports::security_events::report;
use crate::ports::{
    Clock, Issued, LoginThrottle, MailSeal, MailStore, MfaStore, NewMailToken, OutboxSignal,
    OutgoingMail, Overloaded, PasswordHasher, QueuedMail, RandomSource, SecurityEvent,
    SecurityEventKind, SecurityEvents, SessionStore, SetAddressError, UserRepository,
};
use crate::refresh_secret::RefreshSecret;
use crate::second_factor::SecondFactor;
use crate::{ClientInfo, Revocations};

use super::AccountError;
use super::reauthentication::Reauthentication;

/// Why an email operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// Not an address (`400 invalid_email`).
    #[error(transparent)]
    InvalidEmail(#[from] InvalidEmail),
    /// The address is verified on another account (`409 email_taken`).
    #[error("email taken")]
    Taken,
    /// The token from the mail is unknown, used, expired or replaced
    /// (`400 invalid_token_in_mail`).
    #[error("invalid token in mail: {0}")]
    InvalidToken(#[from] MailTokenRefusal),
    /// The new password is out of policy (`400 weak_password`).
    #[error(transparent)]
    WeakPassword(#[from] PasswordPolicyError),
    /// The caller's password or code was refused, or the check throttled.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The password-hashing queue is full.
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    /// The account was sent as many verification mails as an hour allows
    /// (`429 rate_limited`).
    #[error("too many verification mails")]
    RateLimited {
        /// When to try again (at most).
        retry_after: std::time::Duration,
    },
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Setting a new password and ending every session with the old one: a
/// reset and `authd user set-password` share it.
#[derive(Clone)]
pub struct PasswordReplacement {
    /// The new hash.
    pub users: Arc<dyn UserRepository>,
    /// Hashes the new password.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Every family of the user ends.
    pub sessions: Arc<dyn SessionStore>,
    /// Outstanding `mfaToken`s end.
    pub mfa: Arc<dyn MfaStore>,
    /// The user's failed logins are forgotten.
    pub throttle: Arc<dyn LoginThrottle>,
    /// The audit trail.
    pub events: Arc<dyn SecurityEvents>,
    /// Now.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PasswordReplacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordReplacement")
            .finish_non_exhaustive()
    }
}

impl PasswordReplacement {
    /// Stores `new` (policy-checked, argon2id) as `user`'s password; every
    /// family of the user is revoked, their `mfaToken`s end, the login
    /// throttle forgets them; two-factor login stays as it was. Audited
    /// `password_reset` for `client`. Returns the revoked sessions, for the
    /// caller to announce.
    ///
    /// # Errors
    /// `WeakPassword`, `Overloaded`, storage failures.
    pub async fn replace(
        &self,
        user: &User,
        new: SecretString,
        client: &ClientInfo,
    ) -> Result<Vec<SessionId>, EmailError> {
        check_password_policy(new.expose_secret())?;
        let ticket = self.hasher.reserve()?;
        let hash = self.hasher.hash(ticket, new).await?;
        let now = self.clock.now();
        self.users.update_password_hash(user.id, &hash, now).await?;
        let revoked = self
            .sessions
            .revoke_all_for_user(user.id, None, RevokeReason::PasswordChanged, now)
            .await?;
        self.mfa.end_challenges_of(user.id).await?;
        self.throttle.clear_user(&user.username.canonical()).await?;
        tracing::info!(user = %user.id, sessions = revoked.len(), "password reset");
        let event = SecurityEvent::new(SecurityEventKind::PasswordReset, now, client)
            .user(user.id)
            .username(&user.username.canonical())
            .revoked(revoked.len());
        report(self.events.as_ref(), event).await;
        Ok(revoked)
    }
}

/// The email operations, on exactly the ports they need.
#[derive(Clone)]
pub struct Emails {
    /// Addresses, tokens, the outbox.
    pub store: Arc<dyn MailStore>,
    /// Seals queued mail.
    pub seal: Arc<dyn MailSeal>,
    /// Wakes this process's sender.
    pub signal: Arc<dyn OutboxSignal>,
    /// The users.
    pub users: Arc<dyn UserRepository>,
    /// Asks for the caller's password (and code) before a change.
    pub reauth: Reauthentication,
    /// A reset's new password.
    pub replacement: PasswordReplacement,
    /// Tells every process of the sessions a reset ended.
    pub revocations: Revocations,
    /// Tokens and mail ids.
    pub random: Arc<dyn RandomSource>,
    /// The audit trail.
    pub events: Arc<dyn SecurityEvents>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// `EMAIL_VERIFY_EXPIRY`, `PASSWORD_RESET_EXPIRY`.
    pub lifetimes: MailLifetimes,
}

impl std::fmt::Debug for Emails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emails")
            .field("lifetimes", &self.lifetimes)
            .finish_non_exhaustive()
    }
}

impl Emails {
    /// Queues a verification mail to `address` for `user` (at registration,
    /// or a change). `base` is where links point (`PUBLIC_URL`).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn send_verification(
        &self,
        user: &User,
        address: &EmailAddress,
        base: &str,
        client: &ClientInfo,
    ) -> Result<(), EmailError> {
        if self
            .queue(user, address, MailPurpose::Verify, None, base)
            .await?
            == Issued::CapReached
        {
            return Err(EmailError::RateLimited {
                retry_after: domain::email::RESET_MAIL_WINDOW,
            });
        }
        let event = SecurityEvent::new(
            SecurityEventKind::EmailVerificationSent,
            self.clock.now(),
            client,
        )
        .user(user.id)
        .username(&user.username.canonical());
        report(self.events.as_ref(), event).await;
        Ok(())
    }

    /// `PUT /api/account/email`: the caller's password (and a code, as for
    /// a password change), then a verification mail to `email`; the
    /// account's address changes only once it is verified.
    ///
    /// # Errors
    /// `InvalidEmail`, `Taken`, `Account` (credentials, code, throttle).
    pub async fn change_address(
        &self,
        caller: &AccessClaims,
        email: &str,
        password: SecretString,
        proof: Option<SecondFactor>,
        base: &str,
        client: &ClientInfo,
    ) -> Result<(), EmailError> {
        let address = EmailAddress::parse(email)?;
        let user = self
            .reauth
            .reauthenticate(caller, password, proof, client)
            .await?;
        if self
            .store
            .owner_of(&address)
            .await?
            .is_some_and(|owner| owner != user.id)
        {
            return Err(EmailError::Taken);
        }
        self.send_verification(&user, &address, base, client).await
    }

    /// `POST /api/email/verify`: the address the token was sent to becomes
    /// the account's, verified.
    ///
    /// # Errors
    /// `InvalidToken` (also when the address went to another account since).
    pub async fn verify(&self, token: &str, client: &ClientInfo) -> Result<(), EmailError> {
        let (hash, stored) = self.presented(token).await?;
        let now = self.clock.now();
        let facts = stored.as_ref().map(|s| facts(s, true, true));
        judge_mail_token(facts.as_ref(), MailPurpose::Verify, now)?;
        let stored = stored.ok_or(MailTokenRefusal::Unknown)?;
        let address =
            EmailAddress::parse(&stored.address).map_err(|_| MailTokenRefusal::Unknown)?;
        if !self.store.use_token(&hash, now).await? {
            return Err(MailTokenRefusal::Used.into());
        }
        match self.store.set_verified(stored.user, &address, now).await {
            Ok(()) => {}
            Err(SetAddressError::Taken) => return Err(MailTokenRefusal::Superseded.into()),
            Err(SetAddressError::Unexpected(e)) => return Err(e.into()),
        }
        tracing::info!(user = %stored.user, domain = address.domain(), "email verified");
        let event =
            SecurityEvent::new(SecurityEventKind::EmailVerified, now, client).user(stored.user);
        report(self.events.as_ref(), event).await;
        Ok(())
    }

    /// `POST /api/password/forgot`, after the answer (the caller does not
    /// wait for it): a reset mail to `address` when it is an account's
    /// verified address and the account was sent fewer than three this
    /// hour; nothing otherwise, and nothing tells which.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn forgot(
        &self,
        address: &EmailAddress,
        base: &str,
        client: &ClientInfo,
    ) -> anyhow::Result<()> {
        let Some(owner) = self.store.owner_of(address).await? else {
            return Ok(());
        };
        let Some(user) = self.users.find_by_id(owner).await? else {
            return Ok(());
        };
        // To the address as it was verified, not as the requester spelt it:
        // the local part may be case-sensitive (RFC 5321, 2.4), so another
        // spelling may be another mailbox.
        let Some(verified) = self.store.verified_address(owner).await? else {
            return Ok(());
        };
        let address = &EmailAddress::parse(&verified)
            .map_err(|_| anyhow::anyhow!("the verified address of {owner} does not parse"))?;
        let stamp = password_stamp(&user.password_hash);
        match self
            .queue(&user, address, MailPurpose::Reset, Some(stamp), base)
            .await?
        {
            Issued::CapReached => {
                tracing::info!(user = %user.id, "reset mail not sent: three this hour");
            }
            Issued::Queued => {
                let event = SecurityEvent::new(
                    SecurityEventKind::PasswordResetRequested,
                    self.clock.now(),
                    client,
                )
                .user(user.id)
                .username(&user.username.canonical());
                report(self.events.as_ref(), event).await;
            }
        }
        Ok(())
    }

    /// `POST /api/password/reset`: the token's account gets `new` (see
    /// [`PasswordReplacement::replace`]); its sockets close.
    ///
    /// # Errors
    /// `WeakPassword` (the token stays usable), `InvalidToken`.
    pub async fn reset(
        &self,
        token: &str,
        new: SecretString,
        client: &ClientInfo,
    ) -> Result<(), EmailError> {
        // A weak password costs no token.
        check_password_policy(new.expose_secret())?;
        let (hash, stored) = self.presented(token).await?;
        let (user, verified) = match &stored {
            Some(s) => (
                self.users.find_by_id(s.user).await?,
                self.store.verified_address(s.user).await?,
            ),
            None => (None, None),
        };
        let facts = stored.as_ref().zip(user.as_ref()).map(|(s, u)| {
            let sent_to = EmailAddress::parse(&s.address).map(|a| a.canonical());
            let current = verified
                .as_deref()
                .and_then(|v| EmailAddress::parse(v).ok())
                .map(|v| v.canonical());
            facts(
                s,
                s.password_stamp.as_deref() == Some(&password_stamp(&u.password_hash)),
                sent_to.ok().is_some_and(|a| Some(a) == current),
            )
        });
        let now = self.clock.now();
        judge_mail_token(facts.as_ref(), MailPurpose::Reset, now)?;
        let user = user.ok_or(MailTokenRefusal::Unknown)?;
        if !self.store.use_token(&hash, now).await? {
            return Err(MailTokenRefusal::Used.into());
        }
        let revoked = self.replacement.replace(&user, new, client).await?;
        self.revocations.announce(&revoked).await;
        Ok(())
    }

    /// The hash of a presented token and its row; a token that is not the
    /// form ours take is unknown without a lookup.
    async fn presented(
        &self,
        token: &str,
    ) -> Result<(domain::TokenHash, Option<crate::ports::StoredMailToken>), EmailError> {
        let secret = RefreshSecret::parse(token).ok_or(MailTokenRefusal::Unknown)?;
        let hash = secret.hash();
        let stored = self.store.find_token(&hash).await?;
        Ok((hash, stored))
    }

    /// Makes a token for `purpose`, and queues its mail with it.
    async fn queue(
        &self,
        user: &User,
        address: &EmailAddress,
        purpose: MailPurpose,
        password_stamp: Option<String>,
        base: &str,
    ) -> anyhow::Result<Issued> {
        // The same form as a refresh token: 256 random bits, base64url,
        // stored only as SHA-256.
        let secret = RefreshSecret::generate(self.random.as_ref());
        let now = self.clock.now();
        let token = NewMailToken {
            hash: secret.hash(),
            user: user.id,
            purpose,
            address: address.clone(),
            password_stamp,
            issued_at: now,
            expires_at: self.lifetimes.expiry(purpose, now),
        };
        let mail = compose(
            &self.random.uuid().simple().to_string(),
            user,
            address,
            purpose,
            &secret,
            base,
            &self.lifetimes,
        );
        let queued = QueuedMail {
            id: mail.id.clone(),
            sealed: self.seal.seal(&mail)?,
            queued_at: now,
        };
        let issued = self.store.issue(&token, &queued).await?;
        if issued == Issued::Queued {
            tracing::info!(
                user = %user.id,
                purpose = purpose.as_str(),
                domain = address.domain(),
                mail = %mail.id,
                "mail queued"
            );
            self.signal.mail_queued();
        }
        Ok(issued)
    }
}

/// What [`judge_mail_token`] needs of a stored token.
fn facts(
    stored: &crate::ports::StoredMailToken,
    password_unchanged: bool,
    address_current: bool,
) -> MailTokenFacts {
    MailTokenFacts {
        purpose: stored.purpose,
        expires_at: stored.expires_at,
        used: stored.used,
        superseded: stored.superseded,
        password_unchanged,
        address_current,
    }
}

/// A digest of the password hash a reset token is issued under: any change
/// of the password (a new hash, a new salt) voids the token.
pub fn password_stamp(hash: &PasswordHash) -> String {
    let digest = Sha256::digest(hash.as_str().as_bytes());
    data_encoding::HEXLOWER.encode(&digest[..16])
}

/// The mail for a token: the link and, on a line of its own, the token.
fn compose(
    id: &str,
    user: &User,
    address: &EmailAddress,
    purpose: MailPurpose,
    token: &RefreshSecret,
    base: &str,
    lifetimes: &MailLifetimes,
) -> OutgoingMail {
    let link = mail_link(base, purpose, token.expose());
    let name = user.username.as_str();
    let (subject, ask, action, lifetime, otherwise) = match purpose {
        MailPurpose::Verify => (
            "Confirm your email address",
            format!(
                "{} was given as the email address of the account {name}.",
                address.as_str()
            ),
            "confirm it",
            lifetimes.verify,
            "If it was not you, ignore this mail: the address stays unconfirmed.",
        ),
        MailPurpose::Reset => (
            "Reset your password",
            format!("Someone asked to reset the password of the account {name}."),
            "choose a new password",
            lifetimes.reset,
            "If it was not you, ignore this mail: your password stays as it is.",
        ),
    };
    let within = human(lifetime);
    let address = address.as_str();
    let text = format!(
        "{ask}\n\nOpen this link within {within} to {action}:\n\n{link}\n\n\
         Or paste the token into the page:\nToken: {token}\n\n{otherwise}\n",
        token = token.expose(),
    );
    let html = format!(
        "<!doctype html><html><body><p>{ask}</p><p>Open this link within {within} to \
         {action}:</p><p><a href=\"{link}\">{link}</a></p><p>Or paste the token into the \
         page:</p><pre>Token: {token}</pre><p>{otherwise}</p></body></html>\n",
        ask = escape(&ask),
        link = escape(&link),
        token = token.expose(),
    );
    OutgoingMail {
        id: id.to_owned(),
        to: address.to_owned(),
        subject: subject.to_owned(),
        text,
        html,
    }
}

/// "24 hours", "30 minutes".
fn human(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 3600 && s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// HTML text escaping.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

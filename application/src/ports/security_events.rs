//! What the use cases report about logins, refreshes and revocations: the
//! source of the security audit trail and of the outcome metrics.

use async_trait::async_trait;
use domain::{SessionId, Timestamp, UserId};

use crate::ClientInfo;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityEventKind {
    /// A login succeeded and started a session (token family).
    LoginSucceeded,
    /// A login was refused for bad credentials (unknown user or wrong password).
    LoginFailed,
    /// A login was refused by the brute-force throttle.
    LoginThrottled,
    /// A logout revoked `sessions_revoked` sessions.
    Logout,
    /// A user revoked one of their sessions (`DELETE /api/sessions/{id}`).
    SessionRevoked,
    /// A rotated refresh token was presented again outside the grace: its
    /// whole family was revoked.
    ReuseDetected,
    /// A refresh rotated the token.
    RefreshRotated,
    /// A refresh repeated within the grace got the current token again.
    RefreshGraceReplay,
    /// A refresh presented an expired token, or one of an expired session.
    RefreshExpired,
    /// A refresh presented a token of a revoked session.
    RefreshRevoked,
    /// A refresh presented no token, or one that is malformed or unknown.
    RefreshInvalid,
    /// A user changed their password; `sessions_revoked` other sessions ended.
    PasswordChanged,
    /// A password change or an account deletion was refused: the password
    /// presented with a valid access token was wrong.
    PasswordCheckFailed,
    /// A user's account was deleted (by the user, or by an operator with
    /// `authd user delete`); `sessions_revoked` sessions ended with it.
    AccountDeleted,
    /// A right password for a user with two-factor login: an `mfaToken`
    /// was handed out, and the login waits for its second factor.
    MfaChallenged,
    /// A login's second factor was refused: a wrong, replayed or used
    /// recovery code.
    MfaFailed,
    /// A login's second factor was a recovery code (one fewer is left).
    RecoveryCodeUsed,
    /// A user turned two-factor login on (confirmed a TOTP enrolment).
    MfaEnabled,
    /// A user turned two-factor login off.
    MfaDisabled,
    /// A second factor was refused unchecked: the account's wrong second
    /// factors from every address reached their cap in the window
    /// (contract v3).
    SecondFactorLocked,
    /// A user registered a passkey.
    PasskeyAdded,
    /// A user deleted a passkey.
    PasskeyRemoved,
    /// A passkey login was refused because the signature counter did not
    /// grow: another authenticator may hold a copy of the credential.
    PasskeyCloneSuspected,
    /// A DPoP proof passed every check (counted, not audited).
    DpopProofAccepted,
    /// A DPoP proof was refused; `reason` says which check.
    DpopProofRefused,
    /// A verification mail was queued for an address.
    EmailVerificationSent,
    /// An address was verified and became the account's.
    EmailVerified,
    /// A password-reset mail was queued.
    PasswordResetRequested,
    /// The password was set from a reset link (or by an operator).
    PasswordReset,
    /// The outbox gave a mail up (a `5xx`, or a day of failures).
    MailFailed,
}

impl SecurityEventKind {
    /// Every kind, for exporters that pre-register their series.
    pub const ALL: [Self; 30] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginThrottled,
        Self::Logout,
        Self::SessionRevoked,
        Self::ReuseDetected,
        Self::RefreshRotated,
        Self::RefreshGraceReplay,
        Self::RefreshExpired,
        Self::RefreshRevoked,
        Self::RefreshInvalid,
        Self::PasswordChanged,
        Self::PasswordCheckFailed,
        Self::AccountDeleted,
        Self::MfaChallenged,
        Self::MfaFailed,
        Self::RecoveryCodeUsed,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::SecondFactorLocked,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::PasskeyCloneSuspected,
        Self::DpopProofAccepted,
        Self::DpopProofRefused,
        Self::EmailVerificationSent,
        Self::EmailVerified,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::MailFailed,
    ];

    /// The stable snake_case name (stored in the audit table, used as a metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::Logout => "logout",
            Self::SessionRevoked => "session_revoked",
            Self::ReuseDetected => "reuse_detected",
            Self::RefreshRotated => "refresh_rotated",
            Self::RefreshGraceReplay => "refresh_grace_replay",
            Self::RefreshExpired => "refresh_expired",
            Self::RefreshRevoked => "refresh_revoked",
            Self::RefreshInvalid => "refresh_invalid",
            Self::PasswordChanged => "password_changed",
            Self::PasswordCheckFailed => "password_check_failed",
            Self::AccountDeleted => "account_deleted",
            Self::MfaChallenged => "mfa_challenged",
            Self::MfaFailed => "mfa_failed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::SecondFactorLocked => "second_factor_locked",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::PasskeyCloneSuspected => "passkey_clone_suspected",
            Self::DpopProofAccepted => "dpop_proof_accepted",
            Self::DpopProofRefused => "dpop_proof_refused",
            Self::EmailVerificationSent => "email_verification_sent",
            Self::EmailVerified => "email_verified",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::MailFailed => "mail_failed",
        }
    }

    /// The kind named `name` by [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the event belongs in the audit trail (persisted and logged on
    /// the `audit` target). Routine refreshes are only counted.
    pub const fn is_audited(self) -> bool {
        matches!(
            self,
            Self::LoginSucceeded
                | Self::LoginFailed
                | Self::LoginThrottled
                | Self::Logout
                | Self::SessionRevoked
                | Self::ReuseDetected
                | Self::PasswordChanged
                | Self::PasswordCheckFailed
                | Self::AccountDeleted
                | Self::MfaChallenged
                | Self::MfaFailed
                | Self::RecoveryCodeUsed
                | Self::MfaEnabled
                | Self::MfaDisabled
                | Self::SecondFactorLocked
                | Self::PasskeyAdded
                | Self::PasskeyRemoved
                | Self::PasskeyCloneSuspected
                | Self::DpopProofRefused
                | Self::EmailVerificationSent
                | Self::EmailVerified
                | Self::PasswordResetRequested
                | Self::PasswordReset
                | Self::MailFailed
        )
    }
}

/// How a login event's user was authenticated (`login_succeeded`,
/// `login_failed` and the throttle's events carry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginMethod {
    /// `POST /api/login`: the password.
    Password,
    /// `POST /api/login/mfa`: the second step, a TOTP or a recovery code.
    Totp,
    /// `POST /api/login/passkey`.
    Passkey,
}

impl LoginMethod {
    /// Every method, for exporters that pre-register their series.
    pub const ALL: [Self; 3] = [Self::Password, Self::Totp, Self::Passkey];

    /// The stable snake_case name (the audit table's `method`, a metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Totp => "totp",
            Self::Passkey => "passkey",
        }
    }

    /// The method named `name` by [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// One security event. Never carries a password or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// What happened.
    pub kind: SecurityEventKind,
    /// When.
    pub at: Timestamp,
    /// The user, when known.
    pub user: Option<UserId>,
    /// On login events: the user's username, case-folded; for a name that
    /// matches no user its keyed pseudonym ([`crate::SealKey::pseudonym`]),
    /// never the name as typed. At most 64 characters.
    pub username: Option<String>,
    /// The session (= token family) concerned, when there is one.
    pub session: Option<SessionId>,
    /// Sessions this event revoked.
    pub sessions_revoked: u32,
    /// On login events: how the user authenticated.
    pub method: Option<LoginMethod>,
    /// Why something was refused (a DPoP proof's failed check), snake_case.
    pub reason: Option<String>,
    /// The client that caused the event.
    pub client: ClientInfo,
}

impl SecurityEvent {
    /// An event of `kind` at `at` from `client`, with nothing else known yet.
    pub fn new(kind: SecurityEventKind, at: Timestamp, client: &ClientInfo) -> Self {
        Self {
            kind,
            at,
            user: None,
            username: None,
            session: None,
            sessions_revoked: 0,
            method: None,
            reason: None,
            client: client.clone(),
        }
    }

    /// With the reason of a refusal.
    #[must_use]
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// With the login method.
    #[must_use]
    pub fn method(mut self, method: LoginMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// With the user.
    #[must_use]
    pub fn user(mut self, user: UserId) -> Self {
        self.user = Some(user);
        self
    }

    /// With the session (token family).
    #[must_use]
    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// With the username as typed (case-folded, cut at 64 characters).
    #[must_use]
    pub fn username(mut self, typed: &str) -> Self {
        self.username = Some(domain::fold_name(
            &typed.chars().take(64).collect::<String>(),
        ));
        self
    }

    /// With the number of sessions revoked.
    #[must_use]
    pub fn revoked(mut self, sessions: usize) -> Self {
        self.sessions_revoked = u32::try_from(sessions).unwrap_or(u32::MAX);
        self
    }
}

/// Where security events go: metrics, the audit log and the audit table.
#[async_trait]
pub trait SecurityEvents: Send + Sync + 'static {
    /// Records `event`. A failure does not fail the use case that reported
    /// it: the service logs it and goes on.
    ///
    /// # Errors
    /// The audit trail could not be written.
    async fn record(&self, event: &SecurityEvent) -> anyhow::Result<()>;

    /// Deletes up to `batch` stored events older than `before`; returns how many.
    ///
    /// # Errors
    /// Storage failures.
    async fn prune(&self, before: Timestamp, batch: u64) -> anyhow::Result<u64>;
}

/// The stored audit trail (the `audit_events` table), where a
/// [`SecurityEvents`] implementation keeps the audited events.
#[async_trait]
pub trait AuditTrail: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `event`.
    ///
    /// # Errors
    /// Storage failures.
    async fn append(&self, event: &SecurityEvent) -> anyhow::Result<()>;

    /// Deletes up to `batch` stored events older than `before`; returns how many.
    ///
    /// # Errors
    /// Storage failures.
    async fn prune(&self, before: Timestamp, batch: u64) -> anyhow::Result<u64>;
}

/// Hands `event` to `events`; a failure is logged, never returned: the audit
/// trail must not make logins or refreshes fail.
pub(crate) async fn report(events: &dyn SecurityEvents, event: SecurityEvent) {
    if let Err(e) = events.record(&event).await {
        tracing::error!(error = ?e, kind = event.kind.as_str(), "could not record a security event");
    }
}

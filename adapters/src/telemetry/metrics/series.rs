//! The label values of the security-event series, and which event kind
//! counts in which (every kind counts somewhere: `tests.rs` checks it).

use application::ports::SecurityEventKind;

/// Every `outcome` of `authd_logins_total`.
pub(super) const LOGIN_OUTCOMES: [&str; 5] = [
    "success",
    "bad_credentials",
    "throttled",
    "mfa_required",
    "bad_second_factor",
];
/// Every `outcome` of `authd_refreshes_total`.
pub(super) const REFRESH_OUTCOMES: [&str; 6] = [
    "rotated",
    "grace_replay",
    "reuse_detected",
    "expired",
    "revoked",
    "invalid",
];
/// Every `reason` of `authd_sessions_revoked_total`.
pub(super) const REVOKE_REASONS: [&str; 6] = [
    "logout",
    "user",
    "reuse",
    "password_changed",
    "password_reset",
    "account_deleted",
];
/// Every `method` of `authd_logins_total`: `LoginMethod::as_str`.
pub(super) const LOGIN_METHODS: [&str; 3] = ["password", "totp", "passkey"];
/// Every `event` of `authd_two_factor_total`.
pub(super) const TWO_FACTOR_EVENTS: [&str; 5] = [
    "enabled",
    "disabled",
    "recovery_code_used",
    "passkey_added",
    "passkey_removed",
];
/// Every `outcome` of `authd_dpop_proofs_total`.
pub(super) const DPOP_OUTCOMES: [&str; 2] = ["accepted", "refused"];
/// Every `event` of `authd_mail_total`.
pub(super) const MAIL_EVENTS: [&str; 5] = [
    "verification_sent",
    "verified",
    "reset_requested",
    "reset",
    "failed",
];
/// Every `outcome` of `authd_ws_reauths_total`.
pub(super) const REAUTH_OUTCOMES: [&str; 2] = ["success", "failure"];

/// The `outcome` of `authd_logins_total` that `kind` counts in, if any.
pub(super) fn login_outcome(kind: SecurityEventKind) -> Option<&'static str> {
    match kind {
        SecurityEventKind::LoginSucceeded => Some("success"),
        // A wrong password is a wrong password, at the login form or when
        // a signed-in user confirms a change: one series, like one throttle.
        SecurityEventKind::LoginFailed
        | SecurityEventKind::PasswordCheckFailed
        | SecurityEventKind::PasskeyCloneSuspected => Some("bad_credentials"),
        SecurityEventKind::LoginThrottled | SecurityEventKind::SecondFactorLocked => {
            Some("throttled")
        }
        SecurityEventKind::MfaChallenged => Some("mfa_required"),
        SecurityEventKind::MfaFailed => Some("bad_second_factor"),
        _ => None,
    }
}

/// The `method` label of a login event: how the user authenticated (a
/// password check at an account change has none: it is a password).
pub(super) fn login_method(event: &application::ports::SecurityEvent) -> &'static str {
    event
        .method
        .map_or("password", application::ports::LoginMethod::as_str)
}

/// The `outcome` of `authd_dpop_proofs_total` that `kind` counts in, if any.
pub(super) fn dpop_outcome(kind: SecurityEventKind) -> Option<&'static str> {
    match kind {
        SecurityEventKind::DpopProofAccepted => Some("accepted"),
        SecurityEventKind::DpopProofRefused => Some("refused"),
        _ => None,
    }
}

/// The `outcome` of `authd_refreshes_total` that `kind` counts in, if any.
pub(super) fn refresh_outcome(kind: SecurityEventKind) -> Option<&'static str> {
    match kind {
        SecurityEventKind::RefreshRotated => Some("rotated"),
        SecurityEventKind::RefreshGraceReplay => Some("grace_replay"),
        SecurityEventKind::ReuseDetected => Some("reuse_detected"),
        SecurityEventKind::RefreshExpired => Some("expired"),
        SecurityEventKind::RefreshRevoked => Some("revoked"),
        SecurityEventKind::RefreshInvalid => Some("invalid"),
        _ => None,
    }
}

/// The `reason` of `authd_sessions_revoked_total` that `kind` counts in, if any.
pub(super) fn revoke_reason(kind: SecurityEventKind) -> Option<&'static str> {
    match kind {
        SecurityEventKind::Logout => Some("logout"),
        SecurityEventKind::SessionRevoked => Some("user"),
        SecurityEventKind::ReuseDetected => Some("reuse"),
        SecurityEventKind::PasswordChanged => Some("password_changed"),
        SecurityEventKind::PasswordReset => Some("password_reset"),
        SecurityEventKind::AccountDeleted => Some("account_deleted"),
        _ => None,
    }
}

/// The `event` of `authd_two_factor_total` that `kind` counts in, if any.
pub(super) fn two_factor_event(kind: SecurityEventKind) -> Option<&'static str> {
    match kind {
        SecurityEventKind::MfaEnabled => Some("enabled"),
        SecurityEventKind::MfaDisabled => Some("disabled"),
        SecurityEventKind::RecoveryCodeUsed => Some("recovery_code_used"),
        SecurityEventKind::PasskeyAdded => Some("passkey_added"),
        SecurityEventKind::PasskeyRemoved => Some("passkey_removed"),
        _ => None,
    }
}

/// The `event` of `authd_mail_total` that `kind` counts in, if any.
pub(super) fn mail_event(kind: SecurityEventKind) -> Option<&'static str> {
    match kind {
        SecurityEventKind::EmailVerificationSent => Some("verification_sent"),
        SecurityEventKind::EmailVerified => Some("verified"),
        SecurityEventKind::PasswordResetRequested => Some("reset_requested"),
        SecurityEventKind::PasswordReset => Some("reset"),
        SecurityEventKind::MailFailed => Some("failed"),
        _ => None,
    }
}

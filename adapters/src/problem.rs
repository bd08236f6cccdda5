//! The problem vocabulary of both edges: every machine code a client may
//! switch on (the contract's REST table and WebSocket handshake), with its
//! HTTP status, and the RFC 9457 body built from it. The REST edge and the
//! WebSocket handshake refusals both answer through [`Code`], so a code
//! means one status everywhere and every body has the same members.

use serde_json::json;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `WWW-Authenticate` when no token was presented.
pub const CHALLENGE: &str = "Bearer";
/// `WWW-Authenticate` when a token was presented and refused.
pub const CHALLENGE_INVALID: &str = "Bearer error=\"invalid_token\"";

/// A machine-readable error code, with the status it is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// `400`: a malformed or wrongly typed request.
    BadRequest,
    /// `400`: the username breaks the username rules.
    InvalidUsername,
    /// `400`: the password breaks the password policy.
    WeakPassword,
    /// `401`: a wrong username or password (which one is not said).
    InvalidCredentials,
    /// `401`: the access token is missing, invalid, expired or revoked.
    InvalidToken,
    /// `401`: no refresh token was presented.
    RefreshMissing,
    /// `401`: the refresh token is unknown or malformed.
    RefreshInvalid,
    /// `401`: the refresh token has expired.
    RefreshExpired,
    /// `401`: a rotated refresh token came back: its family is revoked.
    RefreshReused,
    /// `401`: the session (token family) has been revoked.
    SessionRevoked,
    /// `401`: a login's second factor is wrong, replayed or used.
    InvalidMfaCode,
    /// `400`: the code confirming a TOTP enrolment is wrong (the same name
    /// as [`Self::InvalidMfaCode`]; the contract answers it with `400`).
    InvalidEnrolmentCode,
    /// `401`: the `mfaToken` is unknown, expired, used up or another client's.
    MfaTokenInvalid,
    /// `403`: the password is right; the login needs its second factor.
    MfaRequired,
    /// `403`: registration is closed on this server.
    RegistrationClosed,
    /// `403`: the browser origin may not open WebSockets here.
    OriginNotAllowed,
    /// `404`: no such resource (or not the caller's).
    NotFound,
    /// `405`: the method is not allowed on this resource.
    MethodNotAllowed,
    /// `409`: the username is taken.
    UsernameTaken,
    /// `409`: two-factor login is on already.
    MfaAlreadyEnabled,
    /// `401 invalid_passkey`: a passkey login that did not verify.
    InvalidPasskey,
    /// `400 invalid_passkey`: a passkey registration that did not verify.
    InvalidPasskeyRegistration,
    /// `409`: that passkey's credential id is registered.
    PasskeyExists,
    /// `400 invalid_dpop_proof`: a login's `DPoP` proof did not pass.
    InvalidDpopProof,
    /// `401 invalid_dpop_proof`: a bound family's refresh without its key's proof.
    InvalidDpopProofRefresh,
    /// `400`: not an email address.
    InvalidEmail,
    /// `409`: the address is verified on another account.
    EmailTaken,
    /// `400`: a token from a mail that is unknown, used, expired or replaced.
    InvalidTokenInMail,
    /// `413`: the request body is too large.
    PayloadTooLarge,
    /// `429`: too many failed logins; `Retry-After` says when to try again.
    RateLimited,
    /// `429`: the user or address holds the most WebSockets allowed.
    TooManyConnections,
    /// `431`: the request's header fields are too large.
    HeadersTooLarge,
    /// `500`: something went wrong on our side (the cause is logged, not sent).
    InternalError,
    /// `503`: the server sheds load; `Retry-After` says when to try again.
    Overloaded,
    /// `503`: the database cannot be reached (contract v3); `Retry-After`
    /// says when to try again.
    DatabaseUnavailable,
}

impl Code {
    /// Every code.
    pub const ALL: [Self; 35] = [
        Self::BadRequest,
        Self::InvalidUsername,
        Self::WeakPassword,
        Self::InvalidCredentials,
        Self::InvalidToken,
        Self::RefreshMissing,
        Self::RefreshInvalid,
        Self::RefreshExpired,
        Self::RefreshReused,
        Self::SessionRevoked,
        Self::InvalidMfaCode,
        Self::InvalidEnrolmentCode,
        Self::MfaTokenInvalid,
        Self::MfaRequired,
        Self::RegistrationClosed,
        Self::OriginNotAllowed,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::UsernameTaken,
        Self::MfaAlreadyEnabled,
        Self::InvalidPasskey,
        Self::InvalidPasskeyRegistration,
        Self::PasskeyExists,
        Self::InvalidDpopProof,
        Self::InvalidDpopProofRefresh,
        Self::InvalidEmail,
        Self::EmailTaken,
        Self::InvalidTokenInMail,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::TooManyConnections,
        Self::HeadersTooLarge,
        Self::InternalError,
        Self::Overloaded,
        Self::DatabaseUnavailable,
    ];

    /// The code as clients see it (`"refresh_reused"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidUsername => "invalid_username",
            Self::WeakPassword => "weak_password",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::RefreshMissing => "refresh_missing",
            Self::RefreshInvalid => "refresh_invalid",
            Self::RefreshExpired => "refresh_expired",
            Self::RefreshReused => "refresh_reused",
            Self::SessionRevoked => "session_revoked",
            Self::InvalidMfaCode | Self::InvalidEnrolmentCode => "invalid_mfa_code",
            Self::MfaTokenInvalid => "mfa_token_invalid",
            Self::MfaRequired => "mfa_required",
            Self::MfaAlreadyEnabled => "mfa_already_enabled",
            Self::RegistrationClosed => "registration_closed",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UsernameTaken => "username_taken",
            Self::InvalidPasskey | Self::InvalidPasskeyRegistration => "invalid_passkey",
            Self::PasskeyExists => "passkey_exists",
            Self::InvalidDpopProof | Self::InvalidDpopProofRefresh => "invalid_dpop_proof",
            Self::InvalidEmail => "invalid_email",
            Self::EmailTaken => "email_taken",
            Self::InvalidTokenInMail => "invalid_token_in_mail",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::TooManyConnections => "too_many_connections",
            Self::HeadersTooLarge => "headers_too_large",
            Self::InternalError => "internal_error",
            Self::Overloaded => "overloaded",
            Self::DatabaseUnavailable => "database_unavailable",
        }
    }

    /// The HTTP status it is answered with.
    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest
            | Self::InvalidUsername
            | Self::WeakPassword
            | Self::InvalidEnrolmentCode
            | Self::InvalidPasskeyRegistration
            | Self::InvalidDpopProof
            | Self::InvalidEmail
            | Self::InvalidTokenInMail => 400,
            Self::InvalidCredentials
            | Self::InvalidToken
            | Self::RefreshMissing
            | Self::RefreshInvalid
            | Self::RefreshExpired
            | Self::RefreshReused
            | Self::SessionRevoked
            | Self::InvalidMfaCode
            | Self::MfaTokenInvalid
            | Self::InvalidPasskey
            | Self::InvalidDpopProofRefresh => 401,
            Self::RegistrationClosed | Self::OriginNotAllowed | Self::MfaRequired => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::UsernameTaken
            | Self::MfaAlreadyEnabled
            | Self::PasskeyExists
            | Self::EmailTaken => 409,
            Self::PayloadTooLarge => 413,
            Self::RateLimited | Self::TooManyConnections => 429,
            Self::HeadersTooLarge => 431,
            Self::InternalError => 500,
            Self::Overloaded | Self::DatabaseUnavailable => 503,
        }
    }

    /// The status's reason phrase, the body's `title`.
    pub const fn title(self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            413 => "Payload Too Large",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }

    /// The body's `type`: a URI naming the kind of problem.
    pub fn type_uri(self) -> String {
        format!("urn:authd:problem:{}", self.as_str())
    }

    /// The whole body, `{"type","title","status","code","detail"}`, as JSON text.
    pub fn body(self, detail: &str) -> String {
        json!({
            "type": self.type_uri(),
            "title": self.title(),
            "status": self.status(),
            "code": self.as_str(),
            "detail": detail,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's REST table and WebSocket handshake, code by code.
    #[test]
    fn every_code_has_the_contracts_status_and_a_reason_phrase() {
        let contract = [
            ("bad_request", 400),
            ("invalid_username", 400),
            ("weak_password", 400),
            ("invalid_credentials", 401),
            ("invalid_token", 401),
            ("refresh_missing", 401),
            ("refresh_invalid", 401),
            ("refresh_expired", 401),
            ("refresh_reused", 401),
            ("session_revoked", 401),
            ("invalid_mfa_code", 401),
            ("invalid_mfa_code", 400),
            ("mfa_token_invalid", 401),
            ("mfa_required", 403),
            ("registration_closed", 403),
            ("origin_not_allowed", 403),
            ("not_found", 404),
            ("method_not_allowed", 405),
            ("username_taken", 409),
            ("mfa_already_enabled", 409),
            ("invalid_passkey", 401),
            ("invalid_passkey", 400),
            ("passkey_exists", 409),
            ("invalid_dpop_proof", 400),
            ("invalid_dpop_proof", 401),
            ("invalid_email", 400),
            ("email_taken", 409),
            ("invalid_token_in_mail", 400),
            ("payload_too_large", 413),
            ("rate_limited", 429),
            ("too_many_connections", 429),
            ("headers_too_large", 431),
            ("internal_error", 500),
            ("overloaded", 503),
            ("database_unavailable", 503),
        ];
        assert_eq!(Code::ALL.len(), contract.len());
        for (code, (name, status)) in Code::ALL.into_iter().zip(contract) {
            assert_eq!((code.as_str(), code.status()), (name, status));
            let reason = poem::http::StatusCode::from_u16(status)
                .unwrap()
                .canonical_reason()
                .unwrap();
            assert_eq!(code.title(), reason, "{name}");
        }
    }

    #[test]
    fn a_body_has_every_member() {
        let body: serde_json::Value =
            serde_json::from_str(&Code::RefreshReused.body("Reused.")).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "urn:authd:problem:refresh_reused",
                "title": "Unauthorized",
                "status": 401,
                "code": "refresh_reused",
                "detail": "Reused.",
            })
        );
    }
}

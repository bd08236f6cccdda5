//! Managing two-factor login: `GET /api/mfa/totp` (the caller's state, for
//! an account page), `POST /api/mfa/totp`, `POST /api/mfa/totp/confirm` and
//! `DELETE /api/mfa/totp`. The login's second step is `login_mfa.rs`.

use std::sync::Arc;

use application::use_cases::MfaError;
use application::use_cases::TwoFactor;
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::{ExposeSecret as _, SecretString};

use super::ApiTags;
use super::account::{PasswordAndSecondFactor, PasswordConfirmation};
use super::auth::{REDACTED, client_info, overloaded, retry_after_secs};
use super::login_mfa::proof_of;
use super::strict_string::{StrictString, TotpCodeRules};
use crate::http::HttpConfig;
use crate::http::bearer::BearerAuth;
use crate::http::problem::{CHALLENGE_INVALID, Code, Problem, internal};

/// Two-factor login.
#[derive(Debug, Clone, Copy, Default)]
pub struct MfaApi;

/// A pending TOTP enrolment: the secret, shown once.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TotpEnrolmentBody {
    /// The secret in base32 (160 bits), to type into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/<issuer>:<username>?secret=...`: the QR code's content.
    pub otpauth_uri: String,
    /// Seconds the enrolment waits for its confirming code (600).
    pub expires_in: u64,
}

impl std::fmt::Debug for TotpEnrolmentBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolmentBody")
            .field("secret", &REDACTED)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The caller's two-factor login.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TwoFactorStatusBody {
    /// Whether logins ask for a second factor.
    pub enabled: bool,
    /// When it was turned on, Unix seconds (`null` when it is off).
    #[oai(nullable)]
    pub enabled_at: Option<i64>,
    /// Whether an enrolment waits for its confirming code.
    pub pending: bool,
    /// Unused recovery codes (0 when it is off).
    pub recovery_codes_left: u32,
}

/// Answers of `GET /api/mfa/totp`.
#[derive(Debug, ApiResponse)]
pub enum TwoFactorStatusResponse {
    /// The caller's two-factor login.
    #[oai(status = 200)]
    Ok(Json<TwoFactorStatusBody>),
    /// `invalid_token`.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer error="invalid_token"` (just `Bearer` when no token was presented).
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

/// A code from the authenticator app.
#[derive(Object)]
pub struct TotpCode {
    /// Six digits.
    pub code: StrictString<TotpCodeRules>,
}

impl std::fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpCode").finish_non_exhaustive()
    }
}

/// The recovery codes of a confirmed enrolment.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RecoveryCodes {
    /// Ten codes, each good for one login instead of a TOTP code. They are
    /// shown only now; the server keeps only their hashes.
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("count", &self.recovery_codes.len())
            .finish_non_exhaustive()
    }
}

/// Answers of `POST /api/mfa/totp`.
#[derive(Debug, ApiResponse)]
pub enum BeginTotpResponse {
    /// A pending enrolment (a pending one before it is replaced).
    #[oai(status = 200)]
    Ok(Json<TotpEnrolmentBody>),
    /// `bad_request` for a malformed body.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// `invalid_token`, or `invalid_credentials`: the password is wrong (it
    /// counts towards the login throttle).
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer error="invalid_token"` (just `Bearer` when no token was presented).
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// `mfa_already_enabled`: turn it off first.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// `rate_limited`: too many wrong passwords for this user from this
    /// address (the login throttle's counter).
    #[oai(status = 429, content_type = "application/problem+json")]
    RateLimited(
        Json<Problem>,
        /// Seconds until the password is checked again.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// `overloaded`: every place in the password-hashing queue is taken.
    #[oai(status = 503, content_type = "application/problem+json")]
    Overloaded(
        Json<Problem>,
        /// Seconds to wait before trying again.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

/// Answers of `POST /api/mfa/totp/confirm`.
#[derive(Debug, ApiResponse)]
pub enum ConfirmTotpResponse {
    /// Two-factor login is on.
    #[oai(status = 200)]
    Ok(Json<RecoveryCodes>),
    /// `invalid_mfa_code`: not the code of the pending secret now; or
    /// `bad_request` for a malformed body.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// `invalid_token`.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer error="invalid_token"` (just `Bearer` when no token was presented).
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// `not_found`: no pending enrolment (none was begun, it expired after
    /// 10 minutes, or it was confirmed already).
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

/// Answers of `DELETE /api/mfa/totp`.
#[derive(Debug, ApiResponse)]
pub enum DisableTotpResponse {
    /// Two-factor login is off; the secret and the recovery codes are deleted.
    #[oai(status = 204)]
    NoContent,
    /// `bad_request` for a malformed body.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// `invalid_token`; `invalid_credentials`: the password is wrong;
    /// `invalid_mfa_code`: the code is wrong or was used already, or the
    /// recovery code is unknown or used (both count towards the login
    /// throttle).
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer error="invalid_token"` (just `Bearer` when no token was presented).
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// `not_found`: two-factor login is not on.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// `rate_limited`: too many wrong passwords and codes for this user from
    /// this address (the login throttle's counter).
    #[oai(status = 429, content_type = "application/problem+json")]
    RateLimited(
        Json<Problem>,
        /// Seconds until the password is checked again.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// `overloaded`: every place in the password-hashing queue is taken.
    #[oai(status = 503, content_type = "application/problem+json")]
    Overloaded(
        Json<Problem>,
        /// Seconds to wait before trying again.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

fn not_found(detail: &str) -> Json<Problem> {
    Json(Problem::new(Code::NotFound, detail))
}

/// The `401 invalid_credentials` of a wrong password.
fn wrong_password() -> (Json<Problem>, String) {
    (
        Json(Problem::new(
            Code::InvalidCredentials,
            "The password is not correct.",
        )),
        CHALLENGE_INVALID.into(),
    )
}

/// The `429 rate_limited` of too many wrong passwords or codes.
fn too_many_checks(retry_after: std::time::Duration) -> (Json<Problem>, u64) {
    let secs = retry_after_secs(retry_after);
    (
        Json(Problem::new(
            Code::RateLimited,
            format!("Too many wrong passwords or codes; try again in {secs} seconds."),
        )),
        secs,
    )
}

/// The `401 invalid_token` of a token whose user is gone.
fn user_gone() -> (Json<Problem>, String) {
    (
        Json(Problem::new(
            Code::InvalidToken,
            "The access token's user does not exist.",
        )),
        CHALLENGE_INVALID.into(),
    )
}

impl From<MfaError> for BeginTotpResponse {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::AlreadyEnabled => Self::Conflict(Json(Problem::new(
                Code::MfaAlreadyEnabled,
                "Two-factor login is already on; turn it off first.",
            ))),
            MfaError::InvalidCredentials => {
                let (p, h) = wrong_password();
                Self::Unauthorized(p, h)
            }
            MfaError::UserGone => {
                let (p, h) = user_gone();
                Self::Unauthorized(p, h)
            }
            MfaError::RateLimited { retry_after } => {
                let (p, secs) = too_many_checks(retry_after);
                Self::RateLimited(p, secs)
            }
            MfaError::Overloaded(e) => {
                let (problem, secs) = overloaded(e);
                Self::Overloaded(Json(problem), secs)
            }
            other => Self::Internal(Json(internal(&anyhow::Error::from(other)))),
        }
    }
}

impl From<MfaError> for ConfirmTotpResponse {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::InvalidCode => Self::BadRequest(Json(Problem::new(
                Code::InvalidEnrolmentCode,
                "That is not the current code of the new secret.",
            ))),
            MfaError::NotFound => Self::NotFound(not_found(
                "No enrolment is waiting for confirmation (or it expired); begin a new one.",
            )),
            MfaError::UserGone => {
                let (p, h) = user_gone();
                Self::Unauthorized(p, h)
            }
            other => Self::Internal(Json(internal(&anyhow::Error::from(other)))),
        }
    }
}

impl From<MfaError> for DisableTotpResponse {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::NotFound => Self::NotFound(not_found("Two-factor login is not on.")),
            MfaError::InvalidCredentials => {
                let (p, h) = wrong_password();
                Self::Unauthorized(p, h)
            }
            MfaError::InvalidCode => Self::Unauthorized(
                Json(Problem::new(
                    Code::InvalidMfaCode,
                    "The code is wrong or was used already.",
                )),
                CHALLENGE_INVALID.into(),
            ),
            MfaError::UserGone => {
                let (p, h) = user_gone();
                Self::Unauthorized(p, h)
            }
            MfaError::RateLimited { retry_after } => {
                let (p, secs) = too_many_checks(retry_after);
                Self::RateLimited(p, secs)
            }
            MfaError::Overloaded(e) => {
                let (problem, secs) = overloaded(e);
                Self::Overloaded(Json(problem), secs)
            }
            other => Self::Internal(Json(internal(&anyhow::Error::from(other)))),
        }
    }
}

fn secret(value: String) -> SecretString {
    SecretString::from(value)
}

#[OpenApi(tag = "ApiTags::TwoFactor")]
impl MfaApi {
    /// My two-factor login.
    ///
    /// Whether logins ask the caller for a second factor, whether an
    /// enrolment is pending, and how many recovery codes are left.
    #[oai(path = "/mfa/totp", method = "get", operation_id = "twoFactorStatus")]
    async fn two_factor_status(
        &self,
        auth: Data<&Arc<TwoFactor>>,
        bearer: BearerAuth,
    ) -> TwoFactorStatusResponse {
        match auth.two_factor_status(&bearer.0).await {
            Ok(status) => TwoFactorStatusResponse::Ok(Json(TwoFactorStatusBody {
                enabled: status.enabled_at.is_some(),
                enabled_at: status.enabled_at.map(domain::Timestamp::unix_seconds),
                pending: status.pending,
                recovery_codes_left: status.recovery_codes_left,
            })),
            Err(MfaError::UserGone) => {
                let (p, h) = user_gone();
                TwoFactorStatusResponse::Unauthorized(p, h)
            }
            Err(e) => TwoFactorStatusResponse::Internal(Json(internal(&anyhow::Error::from(e)))),
        }
    }

    /// Begin a TOTP enrolment.
    ///
    /// Checks the password (through the login throttle: a stolen access
    /// token alone cannot enrol an attacker's authenticator), then makes a
    /// new TOTP secret (RFC 6238: SHA-1, 6 digits, 30 s) for the caller,
    /// pending until `POST /api/mfa/totp/confirm` proves an authenticator
    /// app holds it, for at most 10 minutes. Beginning again replaces a
    /// pending enrolment.
    #[oai(path = "/mfa/totp", method = "post", operation_id = "beginTotp")]
    async fn begin_totp(
        &self,
        req: &Request,
        auth: Data<&Arc<TwoFactor>>,
        config: Data<&Arc<HttpConfig>>,
        bearer: BearerAuth,
        body: Json<PasswordConfirmation>,
    ) -> BeginTotpResponse {
        let client = client_info(req, &config);
        match auth
            .begin_totp(&bearer.0, secret(body.0.password.0), &client)
            .await
        {
            Ok(enrolment) => BeginTotpResponse::Ok(Json(TotpEnrolmentBody {
                secret: enrolment.secret.expose_secret().to_owned(),
                otpauth_uri: enrolment.otpauth_uri.expose_secret().to_owned(),
                expires_in: enrolment.expires_in.as_secs(),
            })),
            Err(e) => e.into(),
        }
    }

    /// Confirm the TOTP enrolment.
    ///
    /// With a current code of the pending secret, turns two-factor login on
    /// and answers ten recovery codes, shown this once. Existing sessions go
    /// on; the confirming code cannot log in.
    #[oai(
        path = "/mfa/totp/confirm",
        method = "post",
        operation_id = "confirmTotp"
    )]
    async fn confirm_totp(
        &self,
        req: &Request,
        auth: Data<&Arc<TwoFactor>>,
        config: Data<&Arc<HttpConfig>>,
        bearer: BearerAuth,
        body: Json<TotpCode>,
    ) -> ConfirmTotpResponse {
        let client = client_info(req, &config);
        match auth
            .confirm_totp(&bearer.0, secret(body.0.code.0), &client)
            .await
        {
            Ok(codes) => ConfirmTotpResponse::Ok(Json(RecoveryCodes {
                recovery_codes: codes.iter().map(|c| c.expose_secret().to_owned()).collect(),
            })),
            Err(e) => e.into(),
        }
    }

    /// Turn two-factor login off.
    ///
    /// Checks the password, then a code of the authenticator app or a
    /// recovery code (both through the login throttle: a stolen access
    /// token and the password alone cannot remove the owner's
    /// authenticator), and deletes the TOTP secret and the recovery codes.
    /// Existing sessions go on.
    #[oai(path = "/mfa/totp", method = "delete", operation_id = "disableTotp")]
    async fn disable_totp(
        &self,
        req: &Request,
        auth: Data<&Arc<TwoFactor>>,
        config: Data<&Arc<HttpConfig>>,
        bearer: BearerAuth,
        body: Json<PasswordAndSecondFactor>,
    ) -> DisableTotpResponse {
        let PasswordAndSecondFactor {
            password,
            code,
            recovery_code,
        } = body.0;
        let Some(proof) = proof_of(code, recovery_code) else {
            return DisableTotpResponse::BadRequest(Json(Problem::bad_request(
                "Send the password and exactly one of `code` and `recoveryCode`.",
            )));
        };
        let client = client_info(req, &config);
        match auth
            .disable_totp(&bearer.0, secret(password.0), proof, &client)
            .await
        {
            Ok(()) => DisableTotpResponse::NoContent,
            Err(e) => e.into(),
        }
    }
}

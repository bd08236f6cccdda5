//! `POST /api/login/mfa`: the second step of a login, and the one reading
//! of "exactly one of `code` and `recoveryCode`" that turning two-factor
//! login off shares.

use std::sync::Arc;

use application::use_cases::MfaLoginError;
use application::{Logins, SecondFactor};
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;

use super::ApiTags;
use super::auth::{REDACTED, TokenResponse, client_info, login_throttled};
use super::strict_string::{MfaTokenRules, RecoveryCodeRules, StrictString, TotpCodeRules};
use crate::http::dpop::{LoginKey, login_key, login_refused};
use crate::http::problem::{CHALLENGE, Code, Problem, internal};
use crate::http::{HttpConfig, cookie};

/// The second step of a login.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginMfaApi;

/// The second step of a login: the `mfaToken` and exactly one of `code`
/// and `recoveryCode`.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SecondFactorBody {
    /// From the `403 mfa_required` answer of `POST /api/login`.
    pub mfa_token: StrictString<MfaTokenRules>,
    /// A code from the authenticator app.
    pub code: Option<StrictString<TotpCodeRules>>,
    /// One of the recovery codes (each works once).
    pub recovery_code: Option<StrictString<RecoveryCodeRules>>,
}

impl std::fmt::Debug for SecondFactorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactorBody").finish_non_exhaustive()
    }
}

/// Answers of `POST /api/login/mfa`.
#[derive(ApiResponse)]
pub enum LoginMfaResponse {
    /// Logged in with two factors (`amr` `["pwd","otp"]`): an access token,
    /// and the refresh token in the `refreshToken` cookie.
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        /// `refreshToken=<token>; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=<seconds>`
        #[oai(header = "Set-Cookie")]
        String,
    ),
    /// `bad_request`: a malformed body, or not exactly one of `code` and
    /// `recoveryCode`; `invalid_dpop_proof`: a `DPoP` header whose proof did
    /// not pass.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(
        Json<Problem>,
        /// `DPoP error="invalid_dpop_proof"` for a refused proof.
        #[oai(header = "WWW-Authenticate")]
        Option<String>,
    ),
    /// `invalid_mfa_code` (wrong, already used, or a used recovery code;
    /// it counts towards the login throttle and the token's 5), or
    /// `mfa_token_invalid` (unknown, expired, used up, or another client's).
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer`
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// `rate_limited`: too many failed logins for this user from this address.
    #[oai(status = 429, content_type = "application/problem+json")]
    RateLimited(
        Json<Problem>,
        /// Seconds until logins are accepted again.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

impl std::fmt::Debug for LoginMfaResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ok(body, _cookie) => f.debug_tuple("Ok").field(&body.0).field(&REDACTED).finish(),
            Self::BadRequest(p, _) | Self::Internal(p) => {
                f.debug_tuple("Error").field(&p.0).finish()
            }
            Self::Unauthorized(p, _) | Self::RateLimited(p, _) => {
                f.debug_tuple("Refused").field(&p.0).finish()
            }
        }
    }
}

impl From<MfaLoginError> for LoginMfaResponse {
    fn from(e: MfaLoginError) -> Self {
        let (code, detail) = match e {
            MfaLoginError::InvalidCode => (
                Code::InvalidMfaCode,
                "The code is wrong or was used already.",
            ),
            MfaLoginError::TokenInvalid => (
                Code::MfaTokenInvalid,
                "The mfaToken is unknown, expired or used up; log in again.",
            ),
            MfaLoginError::RateLimited { retry_after } => {
                let (problem, secs) = login_throttled(retry_after);
                return Self::RateLimited(Json(problem), secs);
            }
            MfaLoginError::Unexpected(e) => return Self::Internal(Json(internal(&e))),
        };
        Self::Unauthorized(Json(Problem::new(code, detail)), CHALLENGE.into())
    }
}

/// Exactly one of a code and a recovery code, as a second factor; `None`
/// for both or neither.
pub(super) fn proof_of(
    code: Option<StrictString<TotpCodeRules>>,
    recovery_code: Option<StrictString<RecoveryCodeRules>>,
) -> Option<SecondFactor> {
    match (code, recovery_code) {
        (Some(code), None) => Some(SecondFactor::Code(SecretString::from(code.0))),
        (None, Some(code)) => Some(SecondFactor::RecoveryCode(SecretString::from(code.0))),
        _ => None,
    }
}

#[OpenApi(tag = "ApiTags::TwoFactor")]
impl LoginMfaApi {
    /// Log in: the second factor.
    ///
    /// Completes a login that answered `403 mfa_required`: the `mfaToken`
    /// with a TOTP code (accepted once: a replay is refused) or a recovery
    /// code (each works once). Starts a session as `POST /api/login` does,
    /// its tokens with `amr` `["pwd","otp"]`. Wrong codes count towards the
    /// login throttle; after 5 the `mfaToken` is used up.
    #[oai(
        path = "/login/mfa",
        method = "post",
        operation_id = "loginMfa",
        tag = "ApiTags::Auth"
    )]
    async fn login_mfa(
        &self,
        req: &Request,
        auth: Data<&Arc<Logins>>,
        config: Data<&Arc<HttpConfig>>,
        body: Json<SecondFactorBody>,
    ) -> LoginMfaResponse {
        let SecondFactorBody {
            mfa_token,
            code,
            recovery_code,
        } = body.0;
        let Some(proof) = proof_of(code, recovery_code) else {
            return LoginMfaResponse::BadRequest(
                Json(Problem::bad_request(
                    "Send exactly one of `code` and `recoveryCode`.",
                )),
                None,
            );
        };
        let mut client = client_info(req, &config);
        match login_key(req, &config, &mut client).await {
            Ok(LoginKey::Refused) => {
                let (p, h) = login_refused();
                return LoginMfaResponse::BadRequest(p, h);
            }
            Ok(LoginKey::Unbound | LoginKey::Bound) => {}
            Err(e) => return LoginMfaResponse::Internal(Json(internal(&e))),
        }
        match auth.login_second_factor(&mfa_token.0, proof, &client).await {
            Ok(outcome) => {
                let cookie = cookie::set_refresh(
                    outcome.refresh.secret.expose(),
                    outcome.refresh.max_age,
                    config.cookie_secure,
                );
                LoginMfaResponse::Ok(
                    Json(TokenResponse::new(
                        &outcome.user,
                        &outcome.session,
                        outcome.access,
                    )),
                    cookie,
                )
            }
            Err(e) => e.into(),
        }
    }
}

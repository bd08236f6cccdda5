//! `GET /api/account`, `POST /api/password` and `DELETE /api/account`.

use std::sync::Arc;

use application::Account;
use application::use_cases::{AccountError, AccountView};
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;

use super::ApiTags;
use super::auth::{client_info, overloaded, retry_after_secs};
use super::login_mfa::proof_of;
use super::strict_string::{PasswordRules, RecoveryCodeRules, StrictString, TotpCodeRules};
use crate::http::HttpConfig;
use crate::http::bearer::BearerAuth;
use crate::http::problem::{CHALLENGE_INVALID, Code, Problem, internal};

/// The caller's account.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountApi;

/// The current password and the new one.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PasswordChange {
    /// The password in use now.
    pub current_password: StrictString<PasswordRules>,
    /// The new password: 8 to 1024 characters; every one of them counts.
    pub new_password: StrictString<PasswordRules>,
    /// While two-factor login is on and this session began without it: a
    /// code from the authenticator app (or `recoveryCode`, not both).
    pub code: Option<StrictString<TotpCodeRules>>,
    /// Instead of `code`: one of the recovery codes (it is used up).
    pub recovery_code: Option<StrictString<RecoveryCodeRules>>,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChange").finish_non_exhaustive()
    }
}

/// The password and a second factor: what turning two-factor login off
/// takes (exactly one of `code` and `recoveryCode`), and what an account
/// deletion takes (the second factor while two-factor login is on and this
/// session began without it; at most one of the two).
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PasswordAndSecondFactor {
    /// The account's password.
    pub password: StrictString<PasswordRules>,
    /// A code from the authenticator app.
    pub code: Option<StrictString<TotpCodeRules>>,
    /// Instead of `code`: one of the recovery codes (it is used up).
    pub recovery_code: Option<StrictString<RecoveryCodeRules>>,
}

impl std::fmt::Debug for PasswordAndSecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordAndSecondFactor")
            .finish_non_exhaustive()
    }
}

/// The password, to confirm an operation.
#[derive(Object)]
pub struct PasswordConfirmation {
    /// The account's password.
    pub password: StrictString<PasswordRules>,
}

impl std::fmt::Debug for PasswordConfirmation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordConfirmation")
            .finish_non_exhaustive()
    }
}

/// The caller's account.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AccountBody {
    /// The user's id (UUID).
    pub id: uuid::Uuid,
    /// The username as registered.
    pub username: String,
    /// The account's verified address, or while it has none the address
    /// waiting for verification; `null` when there is neither.
    #[oai(nullable)]
    pub email: Option<String>,
    /// Whether `email` was verified.
    pub email_verified: bool,
    /// When the account was created, Unix seconds.
    pub created_at: i64,
    /// The second factors the account has.
    pub mfa: SecondFactorsBody,
}

/// The second factors of an account.
#[derive(Debug, Object)]
pub struct SecondFactorsBody {
    /// Whether two-factor login by TOTP is on.
    pub totp: bool,
    /// How many passkeys are registered.
    pub passkeys: u32,
}

impl From<AccountView> for AccountBody {
    fn from(view: AccountView) -> Self {
        Self {
            id: *view.user.id.as_uuid(),
            username: view.user.username.as_str().to_owned(),
            email_verified: view.email.as_ref().is_some_and(|(_, verified)| *verified),
            email: view.email.map(|(address, _)| address),
            created_at: view.user.created_at.unix_seconds(),
            mfa: SecondFactorsBody {
                totp: view.totp,
                passkeys: view.passkeys,
            },
        }
    }
}

/// Answers of `GET /api/account`.
#[derive(Debug, ApiResponse)]
pub enum AccountViewResponse {
    /// The account.
    #[oai(status = 200)]
    Ok(Json<AccountBody>),
    /// `invalid_token`: missing, invalid, expired, of a revoked session, or
    /// of a user that no longer exists.
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

/// Answers of `POST /api/password` and `DELETE /api/account`.
#[derive(Debug, ApiResponse)]
pub enum AccountResponse {
    /// Done. A password change revokes every other session of the user
    /// (their WebSocket connections close with `4003`) and keeps the
    /// caller's; a deletion revokes every session, deletes the user's data,
    /// and frees the name (a new registration gets a new user id).
    #[oai(status = 204)]
    NoContent,
    /// `bad_request` for a malformed body; `weak_password` (a password
    /// change only) when the new password is out of policy.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// `invalid_token` (answered by the bearer checker before the operation
    /// runs), `invalid_credentials`: the password presented is wrong, or
    /// `invalid_mfa_code`: two-factor login is on, this session began
    /// without it, and no code, or a wrong one, came (contract v3).
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer error="invalid_token"` (just `Bearer` when no token was presented).
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
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

impl From<AccountError> for AccountResponse {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::InvalidCredentials => Self::Unauthorized(
                Json(Problem::new(
                    Code::InvalidCredentials,
                    "The password is not correct.",
                )),
                CHALLENGE_INVALID.into(),
            ),
            AccountError::InvalidCode => Self::Unauthorized(
                Json(Problem::new(
                    Code::InvalidMfaCode,
                    "Two-factor login is on: send a current code or a recovery code too.",
                )),
                CHALLENGE_INVALID.into(),
            ),
            AccountError::UserGone => Self::Unauthorized(
                Json(Problem::new(
                    Code::InvalidToken,
                    "The access token's user does not exist.",
                )),
                CHALLENGE_INVALID.into(),
            ),
            AccountError::WeakPassword(e) => {
                Self::BadRequest(Json(Problem::new(Code::WeakPassword, e.to_string())))
            }
            AccountError::RateLimited { retry_after } => {
                let secs = retry_after_secs(retry_after);
                Self::RateLimited(
                    Json(Problem::new(
                        Code::RateLimited,
                        format!("Too many wrong passwords; try again in {secs} seconds."),
                    )),
                    secs,
                )
            }
            AccountError::Overloaded(e) => {
                let (problem, secs) = overloaded(e);
                Self::Overloaded(Json(problem), secs)
            }
            AccountError::Unexpected(e) => Self::Internal(Json(internal(&e))),
        }
    }
}

#[OpenApi(tag = "ApiTags::Account")]
impl AccountApi {
    /// My account.
    ///
    /// Who the caller is, since when, and the second factors the account
    /// has. A changed address shows once it is verified; until then the
    /// verified one stays.
    #[oai(path = "/account", method = "get", operation_id = "getAccount")]
    async fn account(&self, auth: Data<&Arc<Account>>, bearer: BearerAuth) -> AccountViewResponse {
        match auth.view(&bearer.0).await {
            Ok(view) => AccountViewResponse::Ok(Json(view.into())),
            Err(AccountError::UserGone) => AccountViewResponse::Unauthorized(
                Json(Problem::new(
                    Code::InvalidToken,
                    "The access token's user does not exist.",
                )),
                CHALLENGE_INVALID.into(),
            ),
            Err(AccountError::Unexpected(e)) => AccountViewResponse::Internal(Json(internal(&e))),
            // A view checks no password and hashes nothing.
            Err(e) => AccountViewResponse::Internal(Json(internal(&anyhow::Error::new(e)))),
        }
    }

    /// Change my password.
    ///
    /// Checks the current password (through the login throttle: wrong ones
    /// count towards `LOGIN_MAX_FAILURES` for this user and address), stores
    /// the new one, and ends every other session of the user.
    #[oai(path = "/password", method = "post", operation_id = "changePassword")]
    async fn change_password(
        &self,
        req: &Request,
        auth: Data<&Arc<Account>>,
        config: Data<&Arc<HttpConfig>>,
        bearer: BearerAuth,
        body: Json<PasswordChange>,
    ) -> AccountResponse {
        let BearerAuth(claims) = bearer;
        let PasswordChange {
            current_password: StrictString(current, _),
            new_password: StrictString(new, _),
            code,
            recovery_code,
        } = body.0;
        let Some(proof) = optional_proof(code, recovery_code) else {
            return AccountResponse::BadRequest(Json(Problem::bad_request(
                "Send at most one of `code` and `recoveryCode`.",
            )));
        };
        let client = client_info(req, &config);
        match auth
            .change_password(
                &claims,
                SecretString::from(current),
                SecretString::from(new),
                proof,
                &client,
            )
            .await
        {
            Ok(()) => AccountResponse::NoContent,
            Err(e) => e.into(),
        }
    }

    /// Delete my account.
    ///
    /// Checks the password (through the login throttle, as a password change
    /// does), ends every session of the user and deletes the user's data in
    /// one transaction. The audit trail keeps its events and records the
    /// deletion.
    #[oai(path = "/account", method = "delete", operation_id = "deleteAccount")]
    async fn delete_account(
        &self,
        req: &Request,
        auth: Data<&Arc<Account>>,
        config: Data<&Arc<HttpConfig>>,
        bearer: BearerAuth,
        body: Json<PasswordAndSecondFactor>,
    ) -> AccountResponse {
        let BearerAuth(claims) = bearer;
        let PasswordAndSecondFactor {
            password: StrictString(password, _),
            code,
            recovery_code,
        } = body.0;
        let Some(proof) = optional_proof(code, recovery_code) else {
            return AccountResponse::BadRequest(Json(Problem::bad_request(
                "Send at most one of `code` and `recoveryCode`.",
            )));
        };
        let client = client_info(req, &config);
        match auth
            .delete(&claims, SecretString::from(password), proof, &client)
            .await
        {
            Ok(()) => AccountResponse::NoContent,
            Err(e) => e.into(),
        }
    }
}

/// At most one of a code and a recovery code: `Some(None)` for neither,
/// `None` for both.
pub(super) fn optional_proof(
    code: Option<StrictString<TotpCodeRules>>,
    recovery_code: Option<StrictString<RecoveryCodeRules>>,
) -> Option<Option<application::SecondFactor>> {
    match (code.is_none(), recovery_code.is_none()) {
        (true, true) => Some(None),
        _ => proof_of(code, recovery_code).map(Some),
    }
}

//! `PUT /api/account/email`, `POST /api/email/verify`,
//! `POST /api/password/forgot` and `POST /api/password/reset` (contract v3,
//! "Email").

use std::sync::Arc;

use application::use_cases::{AccountError, EmailError, Emails};
use domain::email::EmailAddress;
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;
use tokio::sync::Semaphore;

use super::ApiTags;
use super::account::{AccountResponse, optional_proof};
use super::auth::client_info;
use super::strict_string::{
    EmailRules, MailTokenRules, PasswordRules, RecoveryCodeRules, StrictString, TotpCodeRules,
};
use crate::http::HttpConfig;
use crate::http::bearer::BearerAuth;
use crate::http::dpop::public_base;
use crate::http::problem::{Code, Problem, internal};

/// Email addresses and password resets.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmailApi;

/// Reset requests being looked up after their answer, at most
/// [`FORGOT_IN_FLIGHT`] at once in a process; past that a request is
/// answered the same and dropped (logged), so a flood of them holds no
/// more memory or connections than this.
#[derive(Debug)]
pub struct ForgotQueue(Arc<Semaphore>);

/// See [`ForgotQueue`].
pub const FORGOT_IN_FLIGHT: usize = 64;

impl Default for ForgotQueue {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(FORGOT_IN_FLIGHT)))
    }
}

/// A new address for the account.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct EmailChange {
    /// The address: one `@`, a domain with a dot, at most 254 characters.
    pub email: StrictString<EmailRules>,
    /// The account's password.
    pub password: StrictString<PasswordRules>,
    /// While two-factor login is on and this session began without it: a
    /// code from the authenticator app (or `recoveryCode`, not both).
    pub code: Option<StrictString<TotpCodeRules>>,
    /// Instead of `code`: one of the recovery codes (it is used up).
    pub recovery_code: Option<StrictString<RecoveryCodeRules>>,
}

impl std::fmt::Debug for EmailChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChange").finish_non_exhaustive()
    }
}

/// A token from a mail.
#[derive(Object)]
pub struct MailToken {
    /// The token after `Token: ` in the mail (or the link's `verify=`).
    pub token: StrictString<MailTokenRules>,
}

impl std::fmt::Debug for MailToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailToken([redacted])")
    }
}

/// Who forgot a password.
#[derive(Debug, Object)]
pub struct ForgotPassword {
    /// The account's verified address.
    pub email: StrictString<EmailRules>,
}

/// A reset's token and the new password.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PasswordReset {
    /// The token after `Token: ` in the mail (or the link's `reset=`).
    pub token: StrictString<MailTokenRules>,
    /// The new password: 8 to 1024 characters; every one of them counts.
    pub new_password: StrictString<PasswordRules>,
}

impl std::fmt::Debug for PasswordReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordReset([redacted])")
    }
}

/// Answers of `PUT /api/account/email`.
#[derive(Debug, ApiResponse)]
pub enum EmailChangeResponse {
    /// A verification mail goes to the address; the account's address
    /// changes once it is verified.
    #[oai(status = 202)]
    Accepted,
    /// `invalid_email`, or `bad_request` for a malformed body.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// `invalid_token`, `invalid_credentials` (the password is wrong), or
    /// `invalid_mfa_code` (two-factor login is on, this session began
    /// without it, and no code or a wrong one came).
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer error="invalid_token"` (just `Bearer` when no token was presented).
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// `email_taken`: the address is verified on another account.
    #[oai(status = 409, content_type = "application/problem+json")]
    Taken(Json<Problem>),
    /// `rate_limited`: too many wrong passwords for this user from this
    /// address (the login throttle's counter), or 5 verification mails
    /// this hour already.
    #[oai(status = 429, content_type = "application/problem+json")]
    RateLimited(
        Json<Problem>,
        /// Seconds until the request may pass.
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

impl From<AccountError> for EmailChangeResponse {
    fn from(e: AccountError) -> Self {
        match AccountResponse::from(e) {
            AccountResponse::NoContent => Self::Accepted,
            AccountResponse::BadRequest(p) => Self::BadRequest(p),
            AccountResponse::Unauthorized(p, c) => Self::Unauthorized(p, c),
            AccountResponse::RateLimited(p, s) => Self::RateLimited(p, s),
            AccountResponse::Overloaded(p, s) => Self::Overloaded(p, s),
            AccountResponse::Internal(p) => Self::Internal(p),
        }
    }
}

/// Answers of `POST /api/email/verify` and `POST /api/password/reset`.
#[derive(Debug, ApiResponse)]
pub enum MailTokenResponse {
    /// Done: the address is the account's, verified; or the new password
    /// is stored and every session of the account ended (its WebSocket
    /// connections close with `4003`).
    #[oai(status = 204)]
    NoContent,
    /// `invalid_token_in_mail` (unknown, used, expired, replaced by a newer
    /// one, or for an address no longer pending), `weak_password` (a reset:
    /// the token stays usable), or `bad_request` for a malformed body.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
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

/// Answers of `POST /api/password/forgot`.
#[derive(Debug, ApiResponse)]
pub enum ForgotResponse {
    /// Always, whether or not the address is an account's: a reset mail
    /// goes only to a verified address, at most 3 an hour per account.
    #[oai(status = 202)]
    Accepted,
    /// `bad_request`: a malformed body, or not an email address.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
}

fn invalid_email(e: &domain::email::InvalidEmail) -> Problem {
    Problem::new(Code::InvalidEmail, e.to_string())
}

fn invalid_token() -> Problem {
    Problem::new(
        Code::InvalidTokenInMail,
        "The token from the mail is unknown, used, expired or replaced by a newer one.",
    )
}

impl From<EmailError> for MailTokenResponse {
    fn from(e: EmailError) -> Self {
        match e {
            EmailError::InvalidToken(_) => Self::BadRequest(Json(invalid_token())),
            EmailError::WeakPassword(e) => {
                Self::BadRequest(Json(Problem::new(Code::WeakPassword, e.to_string())))
            }
            EmailError::Overloaded(e) => {
                let (problem, secs) = super::auth::overloaded(e);
                Self::Overloaded(Json(problem), secs)
            }
            EmailError::Unexpected(e) => Self::Internal(Json(internal(&e))),
            other => Self::Internal(Json(internal(&anyhow::Error::new(other)))),
        }
    }
}

#[OpenApi(tag = "ApiTags::Account")]
impl EmailApi {
    /// Set my email address.
    ///
    /// Checks the password (through the login throttle, as a password
    /// change does) and sends a verification mail to the address; the
    /// account's address changes only once it is verified.
    #[oai(path = "/account/email", method = "put", operation_id = "setEmail")]
    async fn set_email(
        &self,
        req: &Request,
        emails: Data<&Arc<Emails>>,
        config: Data<&Arc<HttpConfig>>,
        bearer: BearerAuth,
        body: Json<EmailChange>,
    ) -> EmailChangeResponse {
        let BearerAuth(claims) = bearer;
        let EmailChange {
            email: StrictString(email, _),
            password: StrictString(password, _),
            code,
            recovery_code,
        } = body.0;
        let Some(proof) = optional_proof(code, recovery_code) else {
            return EmailChangeResponse::BadRequest(Json(Problem::bad_request(
                "Send at most one of `code` and `recoveryCode`.",
            )));
        };
        let client = client_info(req, &config);
        let base = public_base(req, &config);
        match emails
            .change_address(
                &claims,
                &email,
                SecretString::from(password),
                proof,
                &base,
                &client,
            )
            .await
        {
            Ok(()) => EmailChangeResponse::Accepted,
            Err(EmailError::InvalidEmail(e)) => {
                EmailChangeResponse::BadRequest(Json(invalid_email(&e)))
            }
            Err(EmailError::Taken) => EmailChangeResponse::Taken(Json(Problem::new(
                Code::EmailTaken,
                "That address is verified on another account.",
            ))),
            Err(EmailError::Account(e)) => e.into(),
            Err(EmailError::Overloaded(e)) => AccountError::Overloaded(e).into(),
            Err(EmailError::RateLimited { retry_after }) => {
                let secs = super::auth::retry_after_secs(retry_after);
                EmailChangeResponse::RateLimited(
                    Json(Problem::new(
                        Code::RateLimited,
                        format!(
                            "This account was sent as many verification mails as an hour \
                             allows; try again in at most {secs} seconds."
                        ),
                    )),
                    secs,
                )
            }
            Err(EmailError::Unexpected(e)) => EmailChangeResponse::Internal(Json(internal(&e))),
            Err(e) => EmailChangeResponse::Internal(Json(internal(&anyhow::Error::new(e)))),
        }
    }

    /// Verify an email address.
    ///
    /// With the token of a verification mail: the address it was sent to
    /// becomes the account's.
    #[oai(path = "/email/verify", method = "post", operation_id = "verifyEmail")]
    async fn verify(
        &self,
        req: &Request,
        emails: Data<&Arc<Emails>>,
        config: Data<&Arc<HttpConfig>>,
        body: Json<MailToken>,
    ) -> MailTokenResponse {
        let client = client_info(req, &config);
        match emails.verify(&body.0.token.0, &client).await {
            Ok(()) => MailTokenResponse::NoContent,
            Err(EmailError::Taken) => MailTokenResponse::BadRequest(Json(invalid_token())),
            Err(e) => e.into(),
        }
    }

    /// Forgot my password.
    ///
    /// Answers at once, the same whether or not the address is an
    /// account's; a reset mail goes to it when it is an account's verified
    /// address (at most 3 an hour per account).
    #[oai(
        path = "/password/forgot",
        method = "post",
        operation_id = "forgotPassword"
    )]
    async fn forgot(
        &self,
        req: &Request,
        emails: Data<&Arc<Emails>>,
        queue: Data<&Arc<ForgotQueue>>,
        config: Data<&Arc<HttpConfig>>,
        body: Json<ForgotPassword>,
    ) -> ForgotResponse {
        let address = match EmailAddress::parse(&body.0.email.0) {
            Ok(a) => a,
            Err(e) => return ForgotResponse::BadRequest(Json(Problem::bad_request(e.to_string()))),
        };
        let client = client_info(req, &config);
        let base = public_base(req, &config);
        // The lookup and the mail happen after the answer: its timing says
        // nothing about the address.
        match Arc::clone(&queue.0.0).try_acquire_owned() {
            Ok(permit) => {
                let emails = Arc::clone(&emails);
                tokio::spawn(async move {
                    if let Err(e) = emails.forgot(&address, &base, &client).await {
                        tracing::warn!(error = ?e, "a reset request failed");
                    }
                    drop(permit);
                });
            }
            Err(_) => tracing::warn!(
                in_flight = FORGOT_IN_FLIGHT,
                "reset request dropped: too many in flight"
            ),
        }
        ForgotResponse::Accepted
    }

    /// Reset my password.
    ///
    /// With the token of a reset mail: stores the new password, ends every
    /// session of the account, clears its failed logins. Two-factor login
    /// stays on.
    #[oai(
        path = "/password/reset",
        method = "post",
        operation_id = "resetPassword"
    )]
    async fn reset(
        &self,
        req: &Request,
        emails: Data<&Arc<Emails>>,
        config: Data<&Arc<HttpConfig>>,
        body: Json<PasswordReset>,
    ) -> MailTokenResponse {
        let PasswordReset {
            token: StrictString(token, _),
            new_password: StrictString(new, _),
        } = body.0;
        let client = client_info(req, &config);
        match emails.reset(&token, SecretString::from(new), &client).await {
            Ok(()) => MailTokenResponse::NoContent,
            Err(e) => e.into(),
        }
    }
}

//! `POST /api/register`: a new account, optionally with an address to
//! verify.

use std::sync::Arc;

use application::Registration;
use application::use_cases::{Emails, RegisterError};
use domain::email::EmailAddress;
use poem::Request;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;

use super::auth::{client_info, overloaded};
use super::strict_string::{EmailRules, PasswordRules, StrictString, UsernameRules};
use super::{ApiTags, UserBody};
use crate::http::HttpConfig;
use crate::http::problem::{Code, Problem, internal};

/// Registration.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegisterApi;

/// A new account: a username, a password and optionally an address.
#[derive(Object)]
pub struct NewAccount {
    /// 3 to 64 characters of `A-Z a-z 0-9 _ . -`, compared case-insensitively.
    pub username: StrictString<UsernameRules>,
    /// 8 to 1024 characters; every one of them counts.
    pub password: StrictString<PasswordRules>,
    /// An email address (one `@`, a domain with a dot, at most 254
    /// characters): a verification mail goes to it. Absent or `null`: none.
    #[oai(nullable)]
    pub email: Option<StrictString<EmailRules>>,
}

impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccount")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Answers of `POST /api/register`.
#[derive(Debug, ApiResponse)]
pub enum RegisterResponse {
    /// The account was created.
    #[oai(status = 201)]
    Created(Json<UserBody>),
    /// `invalid_username`, `weak_password`, `invalid_email`, or
    /// `bad_request` for a malformed body.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// `registration_closed`: `ALLOW_REGISTRATION=false`.
    #[oai(status = 403, content_type = "application/problem+json")]
    Closed(Json<Problem>),
    /// `username_taken`.
    #[oai(status = 409, content_type = "application/problem+json")]
    Taken(Json<Problem>),
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

impl From<RegisterError> for RegisterResponse {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::InvalidUsername(e) => {
                Self::BadRequest(Json(Problem::new(Code::InvalidUsername, e.to_string())))
            }
            RegisterError::WeakPassword(e) => {
                Self::BadRequest(Json(Problem::new(Code::WeakPassword, e.to_string())))
            }
            RegisterError::UsernameTaken => Self::Taken(Json(Problem::new(
                Code::UsernameTaken,
                "This username is taken.",
            ))),
            RegisterError::Closed => Self::Closed(Json(Problem::new(
                Code::RegistrationClosed,
                "Registration is closed on this server.",
            ))),
            RegisterError::Overloaded(e) => {
                let (problem, secs) = overloaded(e);
                Self::Overloaded(Json(problem), secs)
            }
            RegisterError::Unexpected(e) => Self::Internal(Json(internal(&e))),
        }
    }
}

#[OpenApi(tag = "ApiTags::Auth")]
impl RegisterApi {
    /// Register a user.
    ///
    /// Creates an account. Usernames are 3 to 64 characters of `A-Z a-z 0-9 _ . -`
    /// (compared case-insensitively); passwords 8 to 1024 characters.
    #[oai(path = "/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        req: &Request,
        auth: Data<&Arc<Registration>>,
        emails: Data<&Arc<Emails>>,
        config: Data<&Arc<HttpConfig>>,
        body: Json<NewAccount>,
    ) -> RegisterResponse {
        let NewAccount {
            username: StrictString(username, _),
            password: StrictString(password, _),
            email,
        } = body.0;
        // Checked first: a bad address creates no account.
        let address = match email.map(|e| EmailAddress::parse(&e.0)).transpose() {
            Ok(address) => address,
            Err(e) => {
                return RegisterResponse::BadRequest(Json(Problem::new(
                    Code::InvalidEmail,
                    e.to_string(),
                )));
            }
        };
        let user = match auth.register(&username, SecretString::from(password)).await {
            Ok(user) => user,
            Err(e) => return e.into(),
        };
        if let Some(address) = address {
            let client = client_info(req, &config);
            let base = crate::http::dpop::public_base(req, &config);
            // The account exists either way; without the mail, the user
            // sets the address again with `PUT /api/account/email`.
            if let Err(e) = emails
                .send_verification(&user, &address, &base, &client)
                .await
            {
                tracing::error!(error = ?e, user = %user.id, "verification mail not queued");
            }
        }
        RegisterResponse::Created(Json(UserBody::from(&user)))
    }
}

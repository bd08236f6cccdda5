//! Passkeys (contract v3): registering one after the password, the list,
//! deleting one, and the usernameless login with a discoverable credential.

use std::sync::Arc;

use application::ports::Passkey;
use application::use_cases::{PasskeyError, PasskeyLoginError, PasskeyOptions, Passkeys};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;

use super::ApiTags;
use super::account::PasswordConfirmation;
use super::auth::{REDACTED, TokenResponse, client_info, login_throttled, overloaded};
use super::strict_string::{CeremonyIdRules, PasskeyNameRules, StrictString};
use crate::http::bearer::BearerAuth;
use crate::http::dpop::{LoginKey, login_key, login_refused};
use crate::http::problem::{CHALLENGE, CHALLENGE_INVALID, Code, Problem, internal};
use crate::http::{HttpConfig, cookie};

/// Passkeys.
#[derive(Debug, Clone, Copy, Default)]
pub struct PasskeysApi;

/// A registered passkey.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PasskeyBody {
    /// Its id (`DELETE /api/passkeys/{id}`).
    pub id: uuid::Uuid,
    /// Its name ("Passkey" unless one was given).
    pub name: String,
    /// When it was registered, Unix seconds.
    pub created_at: i64,
    /// Its last login, Unix seconds (`null` until the first).
    #[oai(nullable)]
    pub last_used_at: Option<i64>,
    /// The BS flag of its last use: it is backed up (a synced passkey).
    pub backed_up: bool,
}

impl From<Passkey> for PasskeyBody {
    fn from(p: Passkey) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: p.created_at.unix_seconds(),
            last_used_at: p.last_used_at.map(domain::Timestamp::unix_seconds),
            backed_up: p.backup_state,
        }
    }
}

/// The first step of a registration.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RegistrationOptionsBody {
    /// Names this ceremony at `POST /api/passkeys/registration`: used once,
    /// for 5 minutes, by this user.
    pub registration_id: String,
    /// `PublicKeyCredentialCreationOptionsJSON`, for
    /// `PublicKeyCredential.parseCreationOptionsFromJSON`.
    pub public_key: serde_json::Value,
}

/// The first step of a passkey login.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct LoginOptionsBody {
    /// Names this ceremony at `POST /api/login/passkey`: used once, for 5
    /// minutes.
    pub login_id: String,
    /// `PublicKeyCredentialRequestOptionsJSON` (no `allowCredentials`: the
    /// authenticator offers its passkeys for this relying party), for
    /// `PublicKeyCredential.parseRequestOptionsFromJSON`.
    pub public_key: serde_json::Value,
}

/// A new passkey.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PasskeyRegistrationBody {
    /// From `POST /api/passkeys/registration/options`.
    pub registration_id: StrictString<CeremonyIdRules>,
    /// The `RegistrationResponseJSON` of `credential.toJSON()`.
    pub credential: serde_json::Value,
    /// What to call it (at most 64 characters; "Passkey" when absent).
    pub name: Option<StrictString<PasskeyNameRules>>,
}

/// No members: a passkey login names no user.
#[derive(Debug, Object)]
pub struct LoginOptionsRequest {}

/// A passkey login.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PasskeyLoginBody {
    /// From `POST /api/login/passkey/options`.
    pub login_id: StrictString<CeremonyIdRules>,
    /// The `AuthenticationResponseJSON` of `credential.toJSON()`.
    pub credential: serde_json::Value,
}

/// Answers of `POST /api/passkeys/registration/options`.
#[derive(Debug, ApiResponse)]
pub enum RegistrationOptionsResponse {
    /// The options for `navigator.credentials.create()`.
    #[oai(status = 200)]
    Ok(Json<RegistrationOptionsBody>),
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

/// Answers of `POST /api/passkeys/registration`.
#[derive(Debug, ApiResponse)]
pub enum RegisterPasskeyResponse {
    /// The passkey is registered.
    #[oai(status = 201)]
    Created(Json<PasskeyBody>),
    /// `invalid_passkey`: the credential does not verify (challenge,
    /// origin, `type`, rpIdHash, the user-present and user-verified flags,
    /// algorithm, attestation object); `bad_request` for a malformed body
    /// or name.
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
    /// `not_found`: the `registrationId` is unknown, used, expired or
    /// another user's.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// `passkey_exists`: that credential id is registered.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

/// Answers of `GET /api/passkeys`.
#[derive(Debug, ApiResponse)]
pub enum ListPasskeysResponse {
    /// The caller's passkeys, oldest first.
    #[oai(status = 200)]
    Ok(Json<Vec<PasskeyBody>>),
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

/// Answers of `DELETE /api/passkeys/{id}`.
#[derive(Debug, ApiResponse)]
pub enum DeletePasskeyResponse {
    /// Deleted: it logs in no more.
    #[oai(status = 204)]
    NoContent,
    /// `bad_request`: the id is not a UUID.
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
    /// `not_found`: the caller has no passkey by that id.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

/// Answers of `POST /api/login/passkey/options`.
#[derive(Debug, ApiResponse)]
pub enum LoginOptionsResponse {
    /// The options for `navigator.credentials.get()`.
    #[oai(status = 200)]
    Ok(Json<LoginOptionsBody>),
    /// `bad_request` for a malformed body.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

/// Answers of `POST /api/login/passkey`.
#[derive(ApiResponse)]
pub enum PasskeyLoginResponse {
    /// Logged in (`amr` `["hwk","mfa"]`, or `["swk","mfa"]` for a synced
    /// passkey): an access token, and the refresh token in the
    /// `refreshToken` cookie.
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        /// `refreshToken=<token>; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=<seconds>`
        #[oai(header = "Set-Cookie")]
        String,
    ),
    /// `bad_request` for a malformed body; `invalid_dpop_proof`: a `DPoP`
    /// header whose proof did not pass.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(
        Json<Problem>,
        /// `DPoP error="invalid_dpop_proof"` for a refused proof.
        #[oai(header = "WWW-Authenticate")]
        Option<String>,
    ),
    /// `invalid_passkey`: an unknown credential, a signature, challenge,
    /// origin, rpIdHash or flags that do not verify, a signature counter
    /// that did not grow, a `userHandle` that is not the credential's
    /// user, a used or expired `loginId`.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer`
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// `rate_limited`: too many failed logins for the credential's user.
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

impl std::fmt::Debug for PasskeyLoginResponse {
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

impl From<PasskeyError> for RegistrationOptionsResponse {
    fn from(e: PasskeyError) -> Self {
        match e {
            PasskeyError::InvalidCredentials => Self::Unauthorized(
                Json(Problem::new(
                    Code::InvalidCredentials,
                    "The password is not correct.",
                )),
                CHALLENGE_INVALID.into(),
            ),
            PasskeyError::UserGone => {
                let (p, h) = user_gone();
                Self::Unauthorized(p, h)
            }
            PasskeyError::RateLimited { retry_after } => {
                let (problem, secs) = login_throttled(retry_after);
                Self::RateLimited(Json(problem), secs)
            }
            PasskeyError::Overloaded(e) => {
                let (problem, secs) = overloaded(e);
                Self::Overloaded(Json(problem), secs)
            }
            other => Self::Internal(Json(internal(&anyhow::Error::from(other)))),
        }
    }
}

impl From<PasskeyError> for RegisterPasskeyResponse {
    fn from(e: PasskeyError) -> Self {
        match e {
            PasskeyError::Rejected(_) => Self::BadRequest(Json(Problem::new(
                Code::InvalidPasskeyRegistration,
                "The passkey did not verify.",
            ))),
            PasskeyError::InvalidName(e) => {
                Self::BadRequest(Json(Problem::bad_request(e.to_string())))
            }
            PasskeyError::NotFound => Self::NotFound(Json(Problem::new(
                Code::NotFound,
                "The registrationId is unknown, used or expired; ask for new options.",
            ))),
            PasskeyError::Exists(_) => Self::Conflict(Json(Problem::new(
                Code::PasskeyExists,
                "This passkey is registered already.",
            ))),
            PasskeyError::UserGone => {
                let (p, h) = user_gone();
                Self::Unauthorized(p, h)
            }
            other => Self::Internal(Json(internal(&anyhow::Error::from(other)))),
        }
    }
}

impl From<PasskeyLoginError> for PasskeyLoginResponse {
    fn from(e: PasskeyLoginError) -> Self {
        match e {
            PasskeyLoginError::Invalid(_) => Self::Unauthorized(
                Json(Problem::new(
                    Code::InvalidPasskey,
                    "The passkey did not log in.",
                )),
                CHALLENGE.into(),
            ),
            PasskeyLoginError::RateLimited { retry_after } => {
                let (problem, secs) = login_throttled(retry_after);
                Self::RateLimited(Json(problem), secs)
            }
            PasskeyLoginError::Unexpected(e) => Self::Internal(Json(internal(&e))),
        }
    }
}

fn registration_options(o: PasskeyOptions) -> RegistrationOptionsBody {
    RegistrationOptionsBody {
        registration_id: o.id.expose().to_owned(),
        public_key: o.public_key,
    }
}

#[OpenApi(tag = "ApiTags::Passkeys")]
impl PasskeysApi {
    /// Begin registering a passkey.
    ///
    /// Checks the password (through the login throttle: a stolen access
    /// token alone cannot add an attacker's passkey), then answers the
    /// options of a discoverable credential with user verification
    /// (`excludeCredentials`: the caller's passkeys).
    #[oai(
        path = "/passkeys/registration/options",
        method = "post",
        operation_id = "passkeyRegistrationOptions"
    )]
    async fn registration_options(
        &self,
        req: &Request,
        passkeys: Data<&Arc<Passkeys>>,
        config: Data<&Arc<HttpConfig>>,
        bearer: BearerAuth,
        body: Json<PasswordConfirmation>,
    ) -> RegistrationOptionsResponse {
        let client = client_info(req, &config);
        let password = SecretString::from(body.0.password.0);
        match passkeys
            .registration_options(&bearer.0, password, &client)
            .await
        {
            Ok(options) => RegistrationOptionsResponse::Ok(Json(registration_options(options))),
            Err(e) => e.into(),
        }
    }

    /// Register the passkey.
    ///
    /// Finishes the ceremony of `registrationId` with the browser's
    /// `credential.toJSON()`; the passkey logs in from now on.
    #[oai(
        path = "/passkeys/registration",
        method = "post",
        operation_id = "registerPasskey"
    )]
    async fn register(
        &self,
        req: &Request,
        passkeys: Data<&Arc<Passkeys>>,
        config: Data<&Arc<HttpConfig>>,
        bearer: BearerAuth,
        body: Json<PasskeyRegistrationBody>,
    ) -> RegisterPasskeyResponse {
        let client = client_info(req, &config);
        let PasskeyRegistrationBody {
            registration_id,
            credential,
            name,
        } = body.0;
        let name = name.map(|n| n.0);
        match passkeys
            .register(
                &bearer.0,
                &registration_id.0,
                &credential.to_string(),
                name.as_deref(),
                &client,
            )
            .await
        {
            Ok(passkey) => RegisterPasskeyResponse::Created(Json(passkey.into())),
            Err(e) => e.into(),
        }
    }

    /// My passkeys.
    #[oai(path = "/passkeys", method = "get", operation_id = "listPasskeys")]
    async fn list(
        &self,
        passkeys: Data<&Arc<Passkeys>>,
        bearer: BearerAuth,
    ) -> ListPasskeysResponse {
        match passkeys.list(&bearer.0).await {
            Ok(list) => {
                ListPasskeysResponse::Ok(Json(list.into_iter().map(PasskeyBody::from).collect()))
            }
            Err(e) => ListPasskeysResponse::Internal(Json(internal(&anyhow::Error::from(e)))),
        }
    }

    /// Delete a passkey.
    ///
    /// The next login with it is refused. Sessions it began go on (end them
    /// at `DELETE /api/sessions/{id}`).
    #[oai(
        path = "/passkeys/:id",
        method = "delete",
        operation_id = "deletePasskey"
    )]
    async fn delete(
        &self,
        req: &Request,
        passkeys: Data<&Arc<Passkeys>>,
        config: Data<&Arc<HttpConfig>>,
        bearer: BearerAuth,
        id: Path<uuid::Uuid>,
    ) -> DeletePasskeyResponse {
        let client = client_info(req, &config);
        match passkeys.remove(&bearer.0, id.0, &client).await {
            Ok(()) => DeletePasskeyResponse::NoContent,
            Err(PasskeyError::NotFound) => DeletePasskeyResponse::NotFound(Json(Problem::new(
                Code::NotFound,
                "You have no passkey by that id.",
            ))),
            Err(PasskeyError::UserGone) => {
                let (p, h) = user_gone();
                DeletePasskeyResponse::Unauthorized(p, h)
            }
            Err(e) => DeletePasskeyResponse::Internal(Json(internal(&anyhow::Error::from(e)))),
        }
    }

    /// Begin a passkey login.
    ///
    /// Options for a discoverable credential: no username is asked, the
    /// authenticator offers the passkeys it holds for this site.
    #[oai(
        path = "/login/passkey/options",
        method = "post",
        operation_id = "passkeyLoginOptions",
        tag = "ApiTags::Auth"
    )]
    async fn login_options(
        &self,
        passkeys: Data<&Arc<Passkeys>>,
        _body: Json<LoginOptionsRequest>,
    ) -> LoginOptionsResponse {
        match passkeys.login_options().await {
            Ok(o) => LoginOptionsResponse::Ok(Json(LoginOptionsBody {
                login_id: o.id.expose().to_owned(),
                public_key: o.public_key,
            })),
            Err(e) => LoginOptionsResponse::Internal(Json(internal(&anyhow::Error::from(e)))),
        }
    }

    /// Log in with a passkey.
    ///
    /// Finishes the ceremony of `loginId` with the browser's
    /// `credential.toJSON()`. Starts a session as `POST /api/login` does,
    /// never asking for another factor. Failures for a known passkey count
    /// towards the login throttle of its user.
    #[oai(
        path = "/login/passkey",
        method = "post",
        operation_id = "loginPasskey",
        tag = "ApiTags::Auth"
    )]
    async fn login(
        &self,
        req: &Request,
        passkeys: Data<&Arc<Passkeys>>,
        config: Data<&Arc<HttpConfig>>,
        body: Json<PasskeyLoginBody>,
    ) -> PasskeyLoginResponse {
        let mut client = client_info(req, &config);
        match login_key(req, &config, &mut client).await {
            Ok(LoginKey::Refused) => {
                let (p, h) = login_refused();
                return PasskeyLoginResponse::BadRequest(p, h);
            }
            Ok(LoginKey::Unbound | LoginKey::Bound) => {}
            Err(e) => return PasskeyLoginResponse::Internal(Json(internal(&e))),
        }
        let PasskeyLoginBody {
            login_id,
            credential,
        } = body.0;
        match passkeys
            .login(&login_id.0, &credential.to_string(), &client)
            .await
        {
            Ok(outcome) => {
                let cookie = cookie::set_refresh(
                    outcome.refresh.secret.expose(),
                    outcome.refresh.max_age,
                    config.cookie_secure,
                );
                PasskeyLoginResponse::Ok(
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

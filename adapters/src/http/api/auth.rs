//! `POST /api/login`, `/api/refresh`, `/api/logout`.

use std::sync::Arc;

use application::use_cases::LoginStep;
use application::use_cases::{LoginError, LogoutScope, RefreshError};
use application::{ClientInfo, IssuedAccessToken, Logins, MfaToken, Sessions};
use domain::User;
use poem::Request;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;

use super::strict_string::{PasswordRules, StrictString, UsernameRules};
use super::{ApiTags, UserBody};
use crate::http::dpop::{CHALLENGE_INVALID_PROOF, LoginKey, login_key, login_refused, proved_key};
use crate::http::problem::{CHALLENGE, CHALLENGE_INVALID, Code, Problem, internal};
use crate::http::{HttpConfig, bearer, client, cookie};
use application::ReplayScope;

/// Login, refresh and logout (registration: `super::register`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthApi;

/// A username and a password.
#[derive(Object)]
pub struct Credentials {
    /// 3 to 64 characters of `A-Z a-z 0-9 _ . -`, compared case-insensitively.
    pub username: StrictString<UsernameRules>,
    /// 8 to 1024 characters; every one of them counts.
    pub password: StrictString<PasswordRules>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A fresh access token (the refresh token travels in the `refreshToken` cookie).
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TokenResponse {
    /// The access token (JWS compact serialization, signed with the current key: RS256 unless `JWT_ALG` says otherwise).
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a session bound to a client key (then the
    /// token is sent as `Authorization: DPoP <token>` with a proof).
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// When the access token expires, Unix seconds.
    pub expires_at: i64,
    /// Whose token it is.
    pub user: UserBody,
}

/// What `Debug` shows instead of a token or a cookie that carries one.
pub(super) const REDACTED: &str = "[redacted]";

/// The `403 mfa_required` body: a problem with the login's `mfaToken` and
/// the second factors it takes.
#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct MfaRequiredProblem {
    /// `urn:authd:problem:mfa_required`.
    #[oai(rename = "type")]
    pub kind: String,
    /// `Forbidden`.
    pub title: String,
    /// `403`.
    pub status: u16,
    /// `mfa_required`.
    pub code: String,
    /// A human-readable explanation.
    pub detail: String,
    /// Opaque; valid for 5 minutes, from this client only, for 5 wrong
    /// codes. Send it to `POST /api/login/mfa` with a code.
    pub mfa_token: String,
    /// The second factors this user has: `["totp"]`.
    pub methods: Vec<String>,
}

impl std::fmt::Debug for MfaRequiredProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaRequiredProblem")
            .field("code", &self.code)
            .field("mfa_token", &REDACTED)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

impl MfaRequiredProblem {
    fn new(mfa_token: &MfaToken) -> Self {
        let problem = Problem::new(
            Code::MfaRequired,
            "The password is right; this account also needs a code from its authenticator app.",
        );
        Self {
            kind: problem.kind,
            title: problem.title,
            status: problem.status,
            code: problem.code,
            detail: problem.detail,
            mfa_token: mfa_token.expose().to_owned(),
            methods: vec!["totp".to_owned()],
        }
    }
}

// Redacted by hand: a `?response` in a log line must never print a token.
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish()
    }
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ok(body, _cookie) => f.debug_tuple("Ok").field(&body.0).field(&REDACTED).finish(),
            Self::BadRequest(p, _) => f.debug_tuple("BadRequest").field(&p.0).finish(),
            Self::Unauthorized(p, h) => f.debug_tuple("Unauthorized").field(&p.0).field(h).finish(),
            Self::MfaRequired(p) => f.debug_tuple("MfaRequired").field(&p.0).finish(),
            Self::RateLimited(p, after) => f
                .debug_tuple("RateLimited")
                .field(&p.0)
                .field(after)
                .finish(),
            Self::Overloaded(p, after) => f
                .debug_tuple("Overloaded")
                .field(&p.0)
                .field(after)
                .finish(),
            Self::Internal(p) => f.debug_tuple("Internal").field(&p.0).finish(),
        }
    }
}

impl std::fmt::Debug for RefreshResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ok(body, _cookie) => f.debug_tuple("Ok").field(&body.0).field(&REDACTED).finish(),
            Self::Unauthorized(p, h) => f.debug_tuple("Unauthorized").field(&p.0).field(h).finish(),
            Self::Internal(p) => f.debug_tuple("Internal").field(&p.0).finish(),
        }
    }
}

impl TokenResponse {
    /// The tokens of `session` for `user`: `tokenType` `DPoP` when the
    /// session is bound to a client key.
    pub(super) fn new(user: &User, session: &domain::Session, access: IssuedAccessToken) -> Self {
        let token_type = if session.jkt.is_some() {
            "DPoP"
        } else {
            "Bearer"
        };
        Self {
            access_token: access.token,
            token_type: token_type.into(),
            expires_in: access.expires_in,
            expires_at: access.expires_at,
            user: user.into(),
        }
    }
}

/// Answers of `POST /api/login`.
#[derive(ApiResponse)]
pub enum LoginResponse {
    /// Logged in: an access token, and the refresh token in the `refreshToken` cookie.
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        /// `refreshToken=<token>; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=<seconds>`
        #[oai(header = "Set-Cookie")]
        String,
    ),
    /// `bad_request`: a malformed body; `invalid_dpop_proof`: a `DPoP`
    /// header whose proof did not pass (never a silent unbound login).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(
        Json<Problem>,
        /// `DPoP error="invalid_dpop_proof"` for a refused proof.
        #[oai(header = "WWW-Authenticate")]
        Option<String>,
    ),
    /// `invalid_credentials`: the same answer for an unknown user and a wrong password.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer`
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// `mfa_required`: the password is right and the user has two-factor
    /// login. No session starts and no cookie is set: the login goes on at
    /// `POST /api/login/mfa` with the `mfaToken` and a code.
    #[oai(status = 403, content_type = "application/problem+json")]
    MfaRequired(Json<MfaRequiredProblem>),
    /// `rate_limited`: too many failed logins for this username from this address.
    #[oai(status = 429, content_type = "application/problem+json")]
    RateLimited(
        Json<Problem>,
        /// Seconds until logins are accepted again.
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

/// The `503 overloaded` answer and its `Retry-After` seconds.
pub(super) fn overloaded(e: application::ports::Overloaded) -> (Problem, u64) {
    let secs = retry_after_secs(e.retry_after);
    let problem = Problem::new(
        Code::Overloaded,
        format!("The server is busy checking passwords; try again in {secs} seconds."),
    );
    (problem, secs)
}

/// The `429 rate_limited` answer of a throttled login and its `Retry-After` seconds.
pub(super) fn login_throttled(retry_after: std::time::Duration) -> (Problem, u64) {
    let secs = retry_after_secs(retry_after);
    let problem = Problem::new(
        Code::RateLimited,
        format!("Too many failed logins; try again in {secs} seconds."),
    );
    (problem, secs)
}

/// Whole seconds, rounded up (a client that waits exactly this long must
/// get through), at least 1.
pub(super) fn retry_after_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl From<LoginError> for LoginResponse {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::InvalidCredentials => Self::Unauthorized(
                Json(Problem::new(
                    Code::InvalidCredentials,
                    "Invalid username or password.",
                )),
                CHALLENGE.into(),
            ),
            LoginError::RateLimited { retry_after } => {
                let (problem, secs) = login_throttled(retry_after);
                Self::RateLimited(Json(problem), secs)
            }
            LoginError::Overloaded(e) => {
                let (problem, secs) = overloaded(e);
                Self::Overloaded(Json(problem), secs)
            }
            LoginError::Unexpected(e) => Self::Internal(Json(internal(&e))),
        }
    }
}

/// Answers of `POST /api/refresh`.
#[derive(ApiResponse)]
pub enum RefreshResponse {
    /// A new access token; the cookie carries the successor refresh token (or,
    /// for a replay within the grace period, the same current one).
    #[oai(status = 200)]
    Ok(
        Json<TokenResponse>,
        /// `refreshToken=<token>; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=<seconds>`
        #[oai(header = "Set-Cookie")]
        String,
    ),
    /// `refresh_missing`, `refresh_invalid`, `refresh_expired`, `refresh_reused`
    /// (the whole family is now revoked), `session_revoked`, or
    /// `invalid_dpop_proof` (a bound session, refreshed without a proof by
    /// its key: nothing was rotated or revoked).
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer`, with `error="invalid_token"` when a token was presented.
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

impl From<RefreshError> for RefreshResponse {
    fn from(e: RefreshError) -> Self {
        let (code, detail) = match e {
            RefreshError::Missing => (Code::RefreshMissing, "No refresh token was presented."),
            RefreshError::Invalid => (Code::RefreshInvalid, "The refresh token is not valid."),
            RefreshError::Expired => (Code::RefreshExpired, "The refresh token has expired."),
            RefreshError::Reused => (
                Code::RefreshReused,
                "The refresh token was already used; the session is revoked.",
            ),
            RefreshError::SessionRevoked => (Code::SessionRevoked, "The session has been revoked."),
            RefreshError::DpopProof(_) => {
                return Self::Unauthorized(
                    Json(Problem::new(
                        Code::InvalidDpopProofRefresh,
                        "This session is bound to a key: refresh with a DPoP proof by it.",
                    )),
                    CHALLENGE_INVALID_PROOF.into(),
                );
            }
            RefreshError::Unexpected(e) => return Self::Internal(Json(internal(&e))),
        };
        let challenge = if code == Code::RefreshMissing {
            CHALLENGE
        } else {
            CHALLENGE_INVALID
        };
        Self::Unauthorized(Json(Problem::new(code, detail)), challenge.into())
    }
}

/// Answers of `POST /api/logout`.
#[derive(Debug, ApiResponse)]
pub enum LogoutResponse {
    /// Logged out (also when no credentials were presented); the cookie is cleared.
    #[oai(status = 204)]
    NoContent(
        /// `refreshToken=; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=0`
        #[oai(header = "Set-Cookie")]
        String,
    ),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

/// Who is asking, as this edge saw it.
pub fn client_info(req: &Request, config: &HttpConfig) -> ClientInfo {
    let user_agent = req
        .headers()
        .get(poem::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(512).collect());
    ClientInfo {
        ip: client::of_request(req, &config.trusted_proxies).map(|ip| ip.to_string()),
        user_agent,
        key: None,
    }
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Log in.
    ///
    /// Starts a session: answers an access token and sets the `refreshToken`
    /// cookie. For a user with two-factor login, a right password answers
    /// `403 mfa_required` with an `mfaToken` for `POST /api/login/mfa`
    /// instead. After `LOGIN_MAX_FAILURES` failures for one username from one
    /// address within `LOGIN_FAILURE_WINDOW`, logins for that pair get `429`
    /// until the window has passed, even with the right password.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &Request,
        auth: Data<&Arc<Logins>>,
        config: Data<&Arc<HttpConfig>>,
        body: Json<Credentials>,
    ) -> LoginResponse {
        let Credentials {
            username: StrictString(username, _),
            password: StrictString(password, _),
        } = body.0;
        let mut client = client_info(req, &config);
        match login_key(req, &config, &mut client).await {
            Ok(LoginKey::Refused) => {
                let (p, h) = login_refused();
                return LoginResponse::BadRequest(p, h);
            }
            Ok(LoginKey::Unbound | LoginKey::Bound) => {}
            Err(e) => return LoginResponse::Internal(Json(internal(&e))),
        }
        match auth
            .login(&username, SecretString::from(password), &client)
            .await
        {
            Ok(LoginStep::SecondFactor { mfa_token }) => {
                LoginResponse::MfaRequired(Json(MfaRequiredProblem::new(&mfa_token)))
            }
            Ok(LoginStep::Done(outcome)) => {
                let cookie = cookie::set_refresh(
                    outcome.refresh.secret.expose(),
                    outcome.refresh.max_age,
                    config.cookie_secure,
                );
                LoginResponse::Ok(
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

    /// Refresh the access token.
    ///
    /// Presents the `refreshToken` cookie; answers a new access token and
    /// rotates the cookie. Presenting an already rotated token revokes the
    /// whole session (`refresh_reused`), except a replay of the direct parent
    /// within `REFRESH_REUSE_GRACE`, which answers the same current token.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        req: &Request,
        auth: Data<&Arc<Sessions>>,
        config: Data<&Arc<HttpConfig>>,
    ) -> RefreshResponse {
        let presented = cookie::refresh_from(req);
        let mut client = client_info(req, &config);
        // A refresh of an unbound family ignores the header; a bound one
        // needs the key it proves (the use case decides which it is).
        match proved_key(req, &config, ReplayScope::EveryProcess, None, &client).await {
            Ok(proved) => client.key = proved.key(),
            Err(e) => return RefreshResponse::Internal(Json(internal(&e))),
        }
        match auth.refresh(presented.as_deref(), &client).await {
            Ok(result) => {
                let cookie = cookie::set_refresh(
                    result.refresh.secret.expose(),
                    result.refresh.max_age,
                    config.cookie_secure,
                );
                RefreshResponse::Ok(
                    Json(TokenResponse::new(
                        &result.user,
                        &result.session,
                        result.access,
                    )),
                    cookie,
                )
            }
            Err(e) => e.into(),
        }
    }

    /// Log out.
    ///
    /// Identifies the user by the `refreshToken` cookie or a bearer token and
    /// revokes every session of that user, or only the current one with
    /// `?scope=session`. Always `204`, and the cookie is cleared.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        req: &Request,
        auth: Data<&Arc<Sessions>>,
        config: Data<&Arc<HttpConfig>>,
        /// `session` to end only the current session; all of the user's sessions otherwise.
        scope: Query<Option<String>>,
    ) -> LogoutResponse {
        let scope = match scope.0.as_deref() {
            Some("session") => LogoutScope::ThisSession,
            _ => LogoutScope::AllSessions,
        };
        let refresh = cookie::refresh_from(req);
        let client = client_info(req, &config);
        match auth
            .logout(
                refresh.as_deref(),
                bearer::proved_bearer_token(req).await,
                scope,
                &client,
            )
            .await
        {
            Ok(_) => LogoutResponse::NoContent(cookie::clear_refresh(config.cookie_secure)),
            Err(e) => LogoutResponse::Internal(Json(internal(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_token_or_the_cookie() {
        let body = || TokenResponse {
            access_token: "eyJ.header.SIGNATURE-SECRET".into(),
            token_type: "Bearer".into(),
            expires_in: 900,
            expires_at: 1_000,
            user: UserBody {
                id: uuid::Uuid::nil(),
                username: "alice".into(),
            },
        };
        let cookie = || "refreshToken=REFRESH-SECRET; HttpOnly".to_owned();
        for printed in [
            format!("{:?}", body()),
            format!("{:?}", LoginResponse::Ok(Json(body()), cookie())),
            format!("{:?}", RefreshResponse::Ok(Json(body()), cookie())),
        ] {
            assert!(!printed.contains("SECRET"), "{printed}");
            assert!(
                printed.contains("[redacted]") && printed.contains("alice"),
                "{printed}"
            );
        }
    }
}

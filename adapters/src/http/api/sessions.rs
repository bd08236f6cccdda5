//! `GET /api/sessions` and `DELETE /api/sessions/{id}`.

use std::sync::Arc;

use application::Sessions;
use application::use_cases::{RevokeSessionError, SessionView};
use domain::SessionId;
use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::http::HttpConfig;
use crate::http::bearer::BearerAuth;
use crate::http::problem::{Code, Problem, internal};

/// The caller's sessions.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionsApi;

/// A live session (token family) of the caller.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SessionBody {
    /// The session id (the access token's `sid`).
    pub id: uuid::Uuid,
    /// Login time, Unix seconds.
    pub created_at: i64,
    /// Last login or refresh, Unix seconds.
    pub last_used_at: i64,
    /// The session's absolute end, Unix seconds.
    pub expires_at: i64,
    /// The `User-Agent` at login (`null` when the client sent none).
    #[oai(nullable)]
    pub user_agent: Option<String>,
    /// The client address at login (`null` when it was not known).
    #[oai(nullable)]
    pub ip: Option<String>,
    /// Whether this is the session of the token that asks.
    pub current: bool,
    /// Whether the session began with two factors (a password, then a TOTP
    /// or recovery code, or a passkey).
    pub mfa: bool,
    /// Whether the session is bound to a client key (DPoP): its tokens work
    /// only with proofs by that key.
    pub dpop: bool,
}

impl From<SessionView> for SessionBody {
    fn from(view: SessionView) -> Self {
        let s = view.session;
        Self {
            id: *s.id.as_uuid(),
            created_at: s.created_at.unix_seconds(),
            last_used_at: s.last_used_at.unix_seconds(),
            expires_at: s.expires_at.unix_seconds(),
            user_agent: s.user_agent,
            ip: s.ip,
            current: view.current,
            mfa: s.methods.two_factor(),
            dpop: s.jkt.is_some(),
        }
    }
}

/// Answers of `GET /api/sessions`.
#[derive(Debug, ApiResponse)]
pub enum ListSessionsResponse {
    /// The caller's live sessions.
    #[oai(status = 200)]
    Ok(Json<Vec<SessionBody>>),
    /// `invalid_token`.
    // Answered by the bearer checker before the operation runs.
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

/// Answers of `DELETE /api/sessions/{id}`.
#[derive(Debug, ApiResponse)]
pub enum RevokeSessionResponse {
    /// The session is revoked; its WebSocket connections are closed.
    #[oai(status = 204)]
    NoContent,
    /// `invalid_token`.
    // Answered by the bearer checker before the operation runs.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer error="invalid_token"` (just `Bearer` when no token was presented).
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
    /// `not_found`: no live session of the caller has this id.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// Something went wrong on our side.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

impl From<RevokeSessionError> for RevokeSessionResponse {
    fn from(e: RevokeSessionError) -> Self {
        match e {
            RevokeSessionError::NotFound => {
                Self::NotFound(Json(Problem::new(Code::NotFound, "No such session.")))
            }
            RevokeSessionError::Unexpected(e) => Self::Internal(Json(internal(&e))),
        }
    }
}

#[OpenApi(tag = "ApiTags::Sessions")]
impl SessionsApi {
    /// List my sessions.
    ///
    /// The caller's live sessions (token families), newest first; `current`
    /// marks the one of the presented token.
    #[oai(path = "/sessions", method = "get", operation_id = "listSessions")]
    async fn list(&self, auth: Data<&Arc<Sessions>>, bearer: BearerAuth) -> ListSessionsResponse {
        let BearerAuth(claims) = bearer;
        match auth.list(&claims).await {
            Ok(views) => {
                ListSessionsResponse::Ok(Json(views.into_iter().map(SessionBody::from).collect()))
            }
            Err(e) => ListSessionsResponse::Internal(Json(internal(&e))),
        }
    }

    /// Revoke one of my sessions.
    ///
    /// Ends that session: its refresh token stops working, its access tokens
    /// are refused, its WebSocket connections are closed. Another user's
    /// session id is `404` like an unknown one.
    #[oai(
        path = "/sessions/:id",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke(
        &self,
        req: &Request,
        auth: Data<&Arc<Sessions>>,
        config: Data<&Arc<HttpConfig>>,
        bearer: BearerAuth,
        /// The session id.
        id: Path<String>,
    ) -> RevokeSessionResponse {
        let BearerAuth(claims) = bearer;
        let Ok(id) = uuid::Uuid::parse_str(&id.0) else {
            return RevokeSessionError::NotFound.into();
        };
        let client = super::auth::client_info(req, &config);
        match auth
            .revoke(&claims, SessionId::from_uuid(id), &client)
            .await
        {
            Ok(()) => RevokeSessionResponse::NoContent,
            Err(e) => e.into(),
        }
    }
}

//! `GET /api/protected`: what a resource behind the access token looks like.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiTags, UserBody};
use crate::http::bearer::BearerAuth;
use crate::http::problem::Problem;

/// The protected example resource.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProtectedApi;

/// The protected resource.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ProtectedBody {
    /// A greeting.
    pub message: String,
    /// The caller, from the token.
    pub user: UserBody,
    /// When the caller's access token expires, Unix seconds.
    pub token_expires_at: i64,
}

/// Answers of `GET /api/protected`.
#[derive(Debug, ApiResponse)]
pub enum ProtectedResponse {
    /// The resource.
    #[oai(status = 200)]
    Ok(Json<ProtectedBody>),
    /// `invalid_token`: missing, invalid, expired, or of a revoked session.
    // Answered by the bearer checker before the operation runs.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(
        Json<Problem>,
        /// `Bearer error="invalid_token"` (just `Bearer` when no token was presented).
        #[oai(header = "WWW-Authenticate")]
        String,
    ),
}

#[OpenApi(tag = "ApiTags::Protected")]
impl ProtectedApi {
    /// A protected resource.
    ///
    /// Answers who the access token belongs to and when it expires.
    #[oai(path = "/protected", method = "get", operation_id = "protected")]
    async fn protected(&self, bearer: BearerAuth) -> ProtectedResponse {
        let BearerAuth(claims) = bearer;
        ProtectedResponse::Ok(Json(ProtectedBody {
            message: format!("Hello, {}! This is protected data.", claims.username),
            user: UserBody {
                id: *claims.sub.as_uuid(),
                username: claims.username,
            },
            token_expires_at: claims.exp,
        }))
    }
}

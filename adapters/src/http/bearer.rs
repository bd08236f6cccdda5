//! The bearer security scheme: the access token of `Authorization: Bearer`.

use std::sync::Arc;

use application::AuthService;
use application::ports::InvalidToken;
use domain::AccessClaims;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

/// An RS256 access token from `POST /api/login` or `POST /api/refresh`.
///
/// Holds the verified claims, or why the presented token was refused (the
/// operation answers `401 invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"`).
/// A request without a bearer token is refused before the operation runs.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "verify")]
pub struct BearerAuth(pub Result<AccessClaims, InvalidToken>);

async fn verify(req: &Request, bearer: Bearer) -> Option<Result<AccessClaims, InvalidToken>> {
    let auth = req.data::<Arc<AuthService>>()?;
    let verified = auth.verify_access(&bearer.token);
    if let Err(reason) = &verified {
        tracing::info!(%reason, "access token refused");
    }
    Some(verified)
}

/// The raw bearer token of a request, for operations where it is optional.
pub fn bearer_token(req: &Request) -> Option<&str> {
    let value = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

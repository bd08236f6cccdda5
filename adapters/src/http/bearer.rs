//! The bearer security scheme: the access token of `Authorization: Bearer`.

use std::sync::{Arc, LazyLock};

use application::AuthService;
use application::ports::InvalidToken;
use domain::AccessClaims;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use tokio::sync::Semaphore;

/// An RS256 access token from `POST /api/login` or `POST /api/refresh`.
///
/// Holds the verified claims, or why the presented token was refused (the
/// operation answers `401 invalid_token` with `WWW-Authenticate: Bearer error="invalid_token"`).
/// A request without a bearer token is refused before the operation runs.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "verify")]
pub struct BearerAuth(pub Result<AccessClaims, InvalidToken>);

/// Signature checks that may run at once on the async threads: one fewer
/// than there are threads (at least one), so that a flood of well-formed
/// forged tokens, each a cache miss costing a full RS256 verification, always
/// leaves a thread for requests whose tokens are cached. The rest wait for a
/// permit without holding a thread.
static SIGNATURE_CHECKS: LazyLock<Semaphore> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    Semaphore::new(threads.saturating_sub(1).max(1))
});

async fn verify(req: &Request, bearer: Bearer) -> Option<Result<AccessClaims, InvalidToken>> {
    let auth = req.data::<Arc<AuthService>>()?;
    let _permit = if auth.is_access_cached(&bearer.token) {
        None
    } else {
        SIGNATURE_CHECKS.acquire().await.ok()
    };
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
    crate::net::bearer_token(value)
}

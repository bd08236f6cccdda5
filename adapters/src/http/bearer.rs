//! The bearer security scheme: the access token of `Authorization: Bearer`.

use std::sync::{Arc, LazyLock};

use application::AccessCheck;
use application::ports::InvalidToken;
use domain::AccessClaims;
use poem::Request;
use poem::error::ResponseError;
use poem::http::StatusCode;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use tokio::sync::Semaphore;

use super::HttpConfig;
use super::api::auth::client_info;
use super::dpop::{
    CHALLENGE_INVALID_PROOF, CHALLENGE_INVALID_TOKEN, PresentedAsDpop, Proved, proved_key,
};
use application::ReplayScope;

/// An access token from `POST /api/login` or `POST /api/refresh`.
///
/// A request without one, or whose token is refused, gets `401 invalid_token`
/// before the operation runs, with `WWW-Authenticate: Bearer` or
/// `Bearer error="invalid_token"` respectively.
// Holds the verified claims, so an operation taking it runs only for a valid
// token; a refused one is a [`RefusedToken`] error, which the edge's
// catch-all answers.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "verify")]
pub struct BearerAuth(pub AccessClaims);

/// A presented access token was refused (invalid, expired, revoked).
#[derive(Debug, thiserror::Error)]
#[error("the access token was refused: {0}")]
pub struct RefusedToken(pub InvalidToken);

impl ResponseError for RefusedToken {
    fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }
}

/// A token refused for its binding (contract v3, "DPoP"): a bound token as
/// `Bearer` or without a matching proof, an unbound one as `DPoP`. Answered
/// `401 invalid_token` with this `WWW-Authenticate` challenge.
#[derive(Debug, thiserror::Error)]
#[error("the access token's binding was not proved: {refusal}")]
pub struct RefusedBinding {
    /// `DPoP error="invalid_token"` or `DPoP error="invalid_dpop_proof"`.
    pub challenge: &'static str,
    /// Which rule.
    pub refusal: domain::dpop::ProofRefusal,
}

impl ResponseError for RefusedBinding {
    fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }
}

/// Signature checks that may run at once on the async threads: one fewer
/// than there are threads (at least one), so that a flood of well-formed
/// forged tokens, each a cache miss costing a full signature verification, always
/// leaves a thread for requests whose tokens are cached. The rest wait for a
/// permit without holding a thread.
static SIGNATURE_CHECKS: LazyLock<Semaphore> = LazyLock::new(|| {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    Semaphore::new(threads.saturating_sub(1).max(1))
});

async fn verify(req: &Request, bearer: Bearer) -> poem::Result<AccessClaims> {
    let auth = req.data::<Arc<AccessCheck>>().ok_or_else(|| {
        poem::Error::from_string("no AccessCheck", StatusCode::INTERNAL_SERVER_ERROR)
    })?;
    let _permit = if auth.is_cached(&bearer.token) {
        None
    } else {
        SIGNATURE_CHECKS.acquire().await.ok()
    };
    let claims = auth.verify(&bearer.token).map_err(|reason| {
        tracing::info!(%reason, "access token refused");
        poem::Error::from(RefusedToken(reason))
    })?;
    check_binding(req, &bearer.token, &claims).await?;
    Ok(claims)
}

/// Holds a token to its binding: a bound token needs the `DPoP` scheme
/// and a proof by its key (`ath` its hash, unique in this process); an
/// unbound one is a bearer token (`domain::dpop::token_binding`).
async fn check_binding(req: &Request, token: &str, claims: &AccessClaims) -> poem::Result<()> {
    use domain::dpop::{ProofRefusal, Scheme};
    let scheme = if req.data::<PresentedAsDpop>().is_some() {
        Scheme::Dpop
    } else {
        Scheme::Bearer
    };
    if claims.cnf.is_none() && scheme == Scheme::Bearer {
        return Ok(());
    }
    let config = req.data::<Arc<HttpConfig>>().ok_or_else(|| {
        poem::Error::from_string("no HttpConfig", StatusCode::INTERNAL_SERVER_ERROR)
    })?;
    let client = client_info(req, config);
    let proved = proved_key(req, config, ReplayScope::ThisProcess, Some(token), &client)
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "checking a DPoP proof failed");
            poem::Error::from_string("DPoP check failed", StatusCode::INTERNAL_SERVER_ERROR)
        })?;
    let refused = matches!(proved, Proved::Refused);
    domain::dpop::token_binding(claims.cnf.as_ref(), scheme, proved.key().as_ref()).map_err(
        |refusal| {
            let challenge = if refused || refusal == ProofRefusal::OtherKey {
                CHALLENGE_INVALID_PROOF
            } else {
                CHALLENGE_INVALID_TOKEN
            };
            tracing::info!(%refusal, "access token refused for its binding");
            poem::Error::from(RefusedBinding { challenge, refusal })
        },
    )
}

/// The request's access token when it is valid and its binding proved (a
/// bound token as `DPoP` with its key's proof; an unbound one as `Bearer`),
/// for operations where a token is optional (logout): a copied bound token
/// without its key identifies nobody.
pub async fn proved_bearer_token(req: &Request) -> Option<&str> {
    let token = bearer_token(req)?;
    let claims = req.data::<Arc<AccessCheck>>()?.verify(token).ok()?;
    check_binding(req, token, &claims).await.ok()?;
    Some(token)
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

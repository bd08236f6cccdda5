//! DPoP at the REST edge (contract v3, "DPoP"): the `DPoP` header, the URL
//! a proof must name (`htu`), the `DPoP` authorization scheme, and the
//! challenges of its refusals.

use application::{ClientInfo, DpopError, DpopProofs, ReplayScope};
use domain::dpop::{Jkt, Target};
use poem::Request;
use poem::http::header::{AUTHORIZATION, HeaderValue};

use super::HttpConfig;

/// The request header of a proof.
pub const DPOP_HEADER: &str = "dpop";

/// `WWW-Authenticate` of a refused proof.
pub const CHALLENGE_INVALID_PROOF: &str = "DPoP error=\"invalid_dpop_proof\"";

/// `WWW-Authenticate` of a bound token refused for want of its proof.
pub const CHALLENGE_INVALID_TOKEN: &str = "DPoP error=\"invalid_token\"";

/// The `Authorization` scheme a request used, kept by the edge when it
/// reads `DPoP <token>` as a bearer token (request data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedAsDpop;

/// What the `DPoP` header of a request proves.
#[derive(Debug)]
pub enum Proved {
    /// No `DPoP` header.
    Nothing,
    /// A proof that passed every check, by this key.
    Key(Jkt),
    /// A proof that did not (audited with its reason).
    Refused,
}

impl Proved {
    /// The proved key, if any.
    pub fn key(self) -> Option<Jkt> {
        match self {
            Self::Key(k) => Some(k),
            Self::Nothing | Self::Refused => None,
        }
    }
}

/// The URL a proof for `req` must name: `PUBLIC_URL` and the path, or the
/// scheme (`https` when a trusted proxy says `X-Forwarded-Proto: https`),
/// the `Host` and the path.
pub fn request_url(req: &Request, config: &HttpConfig) -> String {
    // The path as the client sent it (routers strip the `/api` of a nest).
    format!("{}{}", public_base(req, config), req.original_uri().path())
}

/// The service's external base URL, no trailing `/`: `PUBLIC_URL`, or the
/// scheme (`https` when a trusted proxy says `X-Forwarded-Proto: https`)
/// and the request's `Host`.
pub fn public_base(req: &Request, config: &HttpConfig) -> String {
    if let Some(base) = &config.public_url {
        return base.trim_end_matches('/').to_owned();
    }
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let forwarded_https = super::client::peer_is_trusted(req, &config.trusted_proxies)
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let scheme = if forwarded_https { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// Checks the `DPoP` header of `req` (if any), which comes with
/// `access_token` (if any), unique within `scope`.
///
/// # Errors
/// The replay store failed.
pub async fn proved_key(
    req: &Request,
    config: &HttpConfig,
    scope: ReplayScope,
    access_token: Option<&str>,
    client: &ClientInfo,
) -> anyhow::Result<Proved> {
    let mut headers = req.headers().get_all(DPOP_HEADER).iter();
    let Some(first) = headers.next() else {
        return Ok(Proved::Nothing);
    };
    let Some(dpop) = req.data::<std::sync::Arc<DpopProofs>>() else {
        anyhow::bail!("no DpopProofs in the request's data");
    };
    // One proof per request (RFC 9449 §4.3).
    let proof = match (first.to_str(), headers.next()) {
        (Ok(p), None) => p,
        _ => "",
    };
    let url = request_url(req, config);
    let target = Target {
        method: req.method().as_str(),
        url: &url,
    };
    match dpop
        .check(proof, &target, access_token, scope, client)
        .await
    {
        Ok(key) => Ok(Proved::Key(key)),
        Err(DpopError::Refused(_)) => Ok(Proved::Refused),
        Err(DpopError::Unexpected(e)) => Err(e),
    }
}

/// A login's proof was refused: `400 invalid_dpop_proof`, never a silent
/// unbound login.
#[derive(Debug)]
pub enum LoginKey {
    /// No proof: an unbound session.
    Unbound,
    /// Bound to this key (already in the client's info).
    Bound,
    /// The proof did not pass.
    Refused,
}

/// Binds a login to the key its `DPoP` header proves (unique across every
/// process), recording it in `client`.
///
/// # Errors
/// The replay store failed.
pub async fn login_key(
    req: &Request,
    config: &HttpConfig,
    client: &mut ClientInfo,
) -> anyhow::Result<LoginKey> {
    Ok(
        match proved_key(req, config, ReplayScope::EveryProcess, None, client).await? {
            Proved::Nothing => LoginKey::Unbound,
            Proved::Key(key) => {
                client.key = Some(key);
                LoginKey::Bound
            }
            Proved::Refused => LoginKey::Refused,
        },
    )
}

/// The `400 invalid_dpop_proof` of a login, and its challenge.
pub fn login_refused() -> (
    poem_openapi::payload::Json<super::problem::Problem>,
    Option<String>,
) {
    (
        poem_openapi::payload::Json(super::problem::Problem::new(
            super::problem::Code::InvalidDpopProof,
            "The DPoP proof is not valid for this request.",
        )),
        Some(CHALLENGE_INVALID_PROOF.to_owned()),
    )
}

/// Reads `Authorization: DPoP <token>` as the bearer token it is, marking
/// the request so that the bearer checker holds it to its proof.
pub fn accept_dpop_scheme(req: &mut Request) {
    let Some(value) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return;
    };
    if !scheme.eq_ignore_ascii_case("dpop") {
        return;
    }
    if let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {}", token.trim())) {
        req.headers_mut().insert(AUTHORIZATION, bearer);
        req.set_data(PresentedAsDpop);
    }
}

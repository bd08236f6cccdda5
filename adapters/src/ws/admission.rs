//! The handshake decision: path, browser `Origin`, access token. Refusals are
//! plain HTTP answers written before the upgrade.

use application::AccessCheck;
use application::ports::InvalidToken;
use domain::AccessClaims;
use tungstenite::handshake::server::{ErrorResponse, Request};
use tungstenite::http::{HeaderValue, StatusCode, header};

use crate::problem::{CHALLENGE_INVALID, Code, PROBLEM_JSON};

/// Why a handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// A path other than `/ws`.
    #[error("not found")]
    NotFound,
    /// A browser origin that is neither the host nor allowed.
    #[error("origin not allowed")]
    Origin,
    /// The token did not verify (or its session is revoked).
    #[error("invalid access token: {0}")]
    InvalidToken(InvalidToken),
    /// The user holds `WS_MAX_CONNECTIONS_PER_USER` sockets already.
    #[error("too many connections for this user")]
    TooManyForUser,
    /// The client address holds `WS_MAX_CONNECTIONS_PER_ADDRESS` already.
    #[error("too many connections from this address")]
    TooManyFromAddress,
}

impl Refusal {
    /// The HTTP answer: a problem+json body, `Connection: close`.
    pub(crate) fn response(self) -> ErrorResponse {
        let (code, detail) = match self {
            Self::NotFound => (Code::NotFound, "WebSockets connect at /ws."),
            Self::Origin => (
                Code::OriginNotAllowed,
                "This origin may not open WebSockets here.",
            ),
            Self::InvalidToken(_) => (Code::InvalidToken, "A valid access token is required."),
            Self::TooManyForUser => (
                Code::TooManyConnections,
                "This user holds the most WebSocket connections allowed; close one first.",
            ),
            Self::TooManyFromAddress => (
                Code::TooManyConnections,
                "This address holds the most WebSocket connections allowed; close one first.",
            ),
        };
        let body = code.body(detail);
        let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = ErrorResponse::new(Some(body.clone()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        match self {
            Self::InvalidToken(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(CHALLENGE_INVALID),
                );
            }
            Self::TooManyForUser | Self::TooManyFromAddress => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::NotFound | Self::Origin => {}
        }
        response
    }
}

/// What an admitted handshake brings.
#[derive(Debug)]
pub(crate) enum Admitted {
    /// A token in the URL or the `Authorization` header: its claims, and
    /// the kid of the key that signed it.
    Token(AccessClaims, Option<String>),
    /// No token: the socket must authenticate with its first message
    /// (contract v3, see `first_message`).
    FirstMessage,
}

/// Decides a handshake: `/ws` only, browser origin checked before the token,
/// a token verified without leeway and against revoked sessions; without
/// one, the upgrade goes on and the first message must authenticate.
///
/// # Errors
/// The [`Refusal`].
pub(crate) fn admit(
    request: &Request,
    auth: &AccessCheck,
    allowed_origins: &[String],
    dpop: Option<&std::sync::Arc<application::DpopProofs>>,
    url: &str,
) -> Result<Admitted, Refusal> {
    if request.uri().path() != "/ws" {
        return Err(Refusal::NotFound);
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if !origin_allowed(origin.to_str().unwrap_or(""), host, allowed_origins) {
            return Err(Refusal::Origin);
        }
    }
    let Some(token) = token_from_query(request.uri().query())
        .or_else(|| token_from_header(request.headers().get(header::AUTHORIZATION)))
    else {
        return Ok(Admitted::FirstMessage);
    };
    let (claims, kid) = verify(auth, &token).map_err(Refusal::InvalidToken)?;
    let proof = request.headers().get("dpop").and_then(|v| v.to_str().ok());
    check_binding(dpop, &claims, &token, proof, url).map_err(Refusal::InvalidToken)?;
    Ok(Admitted::Token(claims, kid))
}

/// The URL a socket's proofs name (`htu`): `PUBLIC_URL` + `/ws`, or the
/// handshake's `Host`, `https` only when a trusted proxy says so.
pub(crate) fn socket_url(request: &Request, public_url: Option<&str>, https: bool) -> String {
    if let Some(base) = public_url {
        return format!("{}/ws", base.trim_end_matches('/'));
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}/ws")
}

/// Holds a socket's token to its binding (contract v3, "DPoP"): an unbound
/// token needs nothing; a bound one a proof (`htm` `GET`, `htu` the socket
/// URL, `ath` the token's hash) by its key, unique in this process. The
/// outcome is reported in the background (the handshake decides
/// synchronously).
///
/// # Errors
/// [`InvalidToken::ProofNeeded`].
pub(crate) fn check_binding(
    dpop: Option<&std::sync::Arc<application::DpopProofs>>,
    claims: &AccessClaims,
    token: &str,
    proof: Option<&str>,
    url: &str,
) -> Result<(), InvalidToken> {
    let Some(bound) = claims.cnf.as_ref() else {
        return Ok(());
    };
    let (Some(dpop), Some(proof)) = (dpop, proof) else {
        return Err(InvalidToken::ProofNeeded);
    };
    let target = domain::dpop::Target { method: "GET", url };
    let outcome = dpop
        .check_here(proof, &target, Some(token))
        .and_then(|key| {
            domain::dpop::token_binding(Some(bound), domain::dpop::Scheme::Dpop, Some(&key))
                .map_err(domain::dpop::ProofRefusal::as_str)
        });
    let reporter = std::sync::Arc::clone(dpop);
    let reported = outcome.map(|_| ());
    tokio::spawn(async move {
        reporter
            .report(reported, &application::ClientInfo::default())
            .await;
    });
    outcome.map_err(|_| InvalidToken::ProofNeeded)
}

/// Verifies a socket's token (at the handshake or in its first message):
/// no leeway, revoked sessions refused; with the kid of its key.
///
/// # Errors
/// The failed check.
pub(crate) fn verify(
    auth: &AccessCheck,
    token: &str,
) -> Result<(AccessClaims, Option<String>), InvalidToken> {
    let claims = auth.verify_with_leeway(token, domain::sockets::SOCKET_TOKEN_LEEWAY_SECS)?;
    Ok((claims, auth.token_kid(token)))
}

/// `?token=` (form-decoded: `%XX` and `+`), if present and not empty.
fn token_from_query(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, token)| token.into_owned())
        .filter(|t| !t.is_empty())
}

/// `Authorization: Bearer <token>` (scheme case-insensitive).
fn token_from_header(value: Option<&HeaderValue>) -> Option<String> {
    crate::net::bearer_token(value?.to_str().ok()?).map(str::to_owned)
}

/// A browser origin is accepted when it names the request's own host or is
/// listed in `CORS_ORIGINS`.
fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let (Some((scheme, authority)), Some(host)) = (origin.split_once("://"), host) else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return false,
    };
    let norm = |a: &str| {
        let a = a.trim().to_ascii_lowercase();
        a.strip_suffix(default_port).map(str::to_owned).unwrap_or(a)
    };
    norm(authority) == norm(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sources() {
        assert_eq!(
            token_from_query(Some("a=1&token=abc.def.ghi&b=2")).as_deref(),
            Some("abc.def.ghi")
        );
        assert_eq!(token_from_query(Some("token=")), None);
        assert_eq!(token_from_query(Some("tokens=x")), None);
        assert_eq!(token_from_query(None), None);
        assert_eq!(
            token_from_query(Some("token=a%2Eb%zz")).as_deref(),
            Some("a.b%zz")
        );
        let h = HeaderValue::from_static("bearer  xyz ");
        assert_eq!(token_from_header(Some(&h)).as_deref(), Some("xyz"));
        let h = HeaderValue::from_static("Basic xyz");
        assert_eq!(token_from_header(Some(&h)), None);
    }

    #[test]
    fn percent_decoding_at_the_end() {
        let token = |q: &str| token_from_query(Some(q));
        assert_eq!(token("token=ab%4").as_deref(), Some("ab%4"));
        assert_eq!(token("token=ab%41").as_deref(), Some("abA"));
        assert_eq!(token("token=%").as_deref(), Some("%"));
        assert_eq!(token("token=a+b").as_deref(), Some("a b"));
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example.com".to_owned()];
        assert!(origin_allowed(
            "http://127.0.0.1:3001",
            Some("127.0.0.1:3001"),
            &[]
        ));
        assert!(origin_allowed(
            "https://example.com",
            Some("example.com:443"),
            &[]
        ));
        assert!(origin_allowed(
            "http://Example.com",
            Some("example.com"),
            &[]
        ));
        assert!(origin_allowed(
            "https://app.example.com/",
            Some("x"),
            &allowed
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            Some("127.0.0.1:3001"),
            &allowed
        ));
        assert!(!origin_allowed("null", Some("127.0.0.1:3001"), &allowed));
        assert!(!origin_allowed(
            "http://127.0.0.1:3002",
            Some("127.0.0.1:3001"),
            &[]
        ));
        assert!(!origin_allowed("http://127.0.0.1:3001", None, &[]));
    }
}

//! The REST edge: poem + poem-openapi.
//!
//! - [`api`]: the operations, one `#[OpenApi]` impl per area.
//! - [`problem`]: problem+json bodies; use-case errors are mapped to them once,
//!   next to each operation's response enum (`impl From<LoginError> for LoginResponse`).
//! - [`edge`]: request ids, body limit, CORS, security headers, error catch-all.
//! - [`cookie`], [`bearer`], [`client`]: the refresh cookie, the bearer scheme, the client address.

pub mod allow;
pub mod api;
pub mod bearer;
pub mod client;
pub mod connections;
pub mod cookie;
pub mod demo;
pub mod docs;
pub mod dpop;
pub mod edge;
pub mod problem;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use application::{AccessCheck, Account, Logins, Readiness, Registration, Sessions};
/// What [`serve`] runs (poem's trait, so that callers can name the bound).
pub use poem::IntoEndpoint;
use poem::listener::TcpAcceptor;
use poem::{Endpoint, EndpointExt, Route, Server};
use poem_openapi::OpenApiService;

use connections::LimitedAcceptor;
pub use connections::{ConnectionLimits, DEFAULT_MAX_PER_ADDRESS};

use crate::telemetry::Metrics;

use api::account::AccountApi;
use api::auth::AuthApi;
use api::email::{EmailApi, ForgotQueue};
use api::login_mfa::LoginMfaApi;
use api::meta::MetaApi;
use api::mfa::MfaApi;
use api::passkeys::PasskeysApi;
use api::protected::ProtectedApi;
use api::register::RegisterApi;
use api::sessions::SessionsApi;

/// Settings of the REST edge.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `COOKIE_SECURE`: `false` drops `Secure` from the refresh cookie (plain-HTTP development only).
    pub cookie_secure: bool,
    /// `TRUSTED_PROXIES`: peers whose last `X-Forwarded-For` hop is believed.
    pub trusted_proxies: Vec<crate::net::IpNet>,
    /// `CORS_ORIGINS`: browser origins allowed with credentials.
    pub cors_origins: Vec<String>,
    /// A directory of static demo files served at `/`, if any.
    pub demo_dir: Option<PathBuf>,
    /// `API_DOCS`: serve Swagger UI at `/api/docs` (the OpenAPI document at
    /// `/api/openapi.json` is served either way).
    pub docs: bool,
    /// Request counts and latencies go here.
    pub metrics: Metrics,
    /// `PUBLIC_URL`: the external base URL (DPoP's `htu`); unset, a request's
    /// own scheme and `Host`.
    pub public_url: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            cookie_secure: true,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            demo_dir: None,
            docs: true,
            metrics: Metrics::disabled(),
            public_url: None,
        }
    }
}

type Apis = (
    RegisterApi,
    AuthApi,
    LoginMfaApi,
    MfaApi,
    PasskeysApi,
    SessionsApi,
    AccountApi,
    EmailApi,
    ProtectedApi,
    MetaApi,
);

fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            RegisterApi,
            AuthApi,
            LoginMfaApi,
            MfaApi,
            PasskeysApi,
            SessionsApi,
            AccountApi,
            EmailApi,
            ProtectedApi,
            MetaApi,
        ),
        "authd",
        "1.0.0",
    )
    .description(
        "Authentication service: RS256 access tokens, rotating refresh tokens in an \
             HttpOnly cookie, sessions. Every error is `application/problem+json` with a \
             machine-readable `code`.",
    )
    .url_prefix("/api")
}

/// The OpenAPI 3 document of the REST API (what `authd openapi` prints and
/// `/api/openapi.json` serves).
pub fn openapi_json() -> String {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        with_exactly_one_second_factor(&with_database_unavailable(&service().spec()))
    });
    DOCUMENT.clone()
}

/// Documents `503 database_unavailable` on every operation that can fail on
/// our side (it answers `500`): those are the operations that need the
/// database, and the edge turns their `500` into a `503` while it cannot be
/// reached (contract v3). One rule here instead of a variant in every
/// operation's answers.
fn with_database_unavailable(spec: &str) -> String {
    const WHAT: &str = "`database_unavailable`: the database cannot be reached; \
                        try again after `Retry-After` seconds.";
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(spec) else {
        return spec.to_owned();
    };
    let operations = doc
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|methods| methods.values_mut());
    for operation in operations {
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        let Some(internal) = responses.get("500").cloned() else {
            continue;
        };
        match responses.get_mut("503") {
            Some(unavailable) => {
                let described = unavailable["description"].as_str().unwrap_or_default();
                unavailable["description"] = format!("{described} Or {WHAT}").into();
            }
            None => {
                let mut unavailable = internal;
                unavailable["description"] = WHAT.into();
                unavailable["headers"] = serde_json::json!({
                    "RETRY-AFTER": {
                        "description": "Seconds to wait before trying again.",
                        "required": true,
                        "deprecated": false,
                        "schema": {"type": "integer", "format": "uint64"}
                    }
                });
                responses.insert("503".to_owned(), unavailable);
            }
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| spec.to_owned())
}

/// States in the schema of `POST /api/login/mfa`'s body what its
/// description says (security review 2, finding 11): exactly one of `code`
/// and `recoveryCode` (`oneOf` two `required` lists: both or neither match
/// no branch or two), and the code's form (six digits, whitespace around
/// them ignored, as `application::second_factor` reads it; another string
/// is a wrong code, `401`). poem-openapi has no attribute for `oneOf`; the
/// pattern is stated here only, since where a code is optional (a password
/// change without two-factor login) it is not read at all.
fn with_exactly_one_second_factor(spec: &str) -> String {
    const TOTP_CODE_PATTERN: &str = r"^\s*[0-9]{6}\s*$";
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(spec) else {
        return spec.to_owned();
    };
    if let Some(body) = doc
        .pointer_mut("/components/schemas/SecondFactorBody")
        .and_then(serde_json::Value::as_object_mut)
    {
        body.insert(
            "oneOf".to_owned(),
            serde_json::json!([{"required": ["code"]}, {"required": ["recoveryCode"]}]),
        );
        if let Some(code) = body
            .get_mut("properties")
            .and_then(|p| p.get_mut("code"))
            .and_then(serde_json::Value::as_object_mut)
        {
            code.insert("pattern".to_owned(), TOTP_CODE_PATTERN.into());
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| spec.to_owned())
}

/// The use cases the REST API serves, composed by `bin`; each operation
/// takes the one it needs.
#[derive(Debug, Clone)]
pub struct RestUseCases {
    /// `POST /api/register`.
    pub registration: Arc<Registration>,
    /// `POST /api/login`, `POST /api/login/mfa`.
    pub logins: Arc<Logins>,
    /// Refresh, logout, the sessions list.
    pub sessions: Arc<Sessions>,
    /// The account: its view, password change, deletion.
    pub account: Arc<Account>,
    /// Managing two-factor login.
    pub two_factor: Arc<application::use_cases::TwoFactor>,
    /// Passkeys.
    pub passkeys: Arc<application::use_cases::Passkeys>,
    /// DPoP proofs.
    pub dpop: Arc<application::DpopProofs>,
    /// Bearer tokens; the JWKS.
    pub access: Arc<AccessCheck>,
    /// `GET /api/health`.
    pub readiness: Arc<Readiness>,
    /// Email addresses and password resets.
    pub emails: Arc<application::use_cases::Emails>,
}

/// The REST API under `/api`, with the OpenAPI document at `/api/openapi.json`
/// and Swagger UI at `/api/docs`.
///
/// # Errors
/// The OpenAPI document cannot be read back (a bug, caught by the tests).
pub fn routes(
    use_cases: RestUseCases,
    config: HttpConfig,
) -> anyhow::Result<impl Endpoint<Output = poem::Response>> {
    let api = service();
    let document = openapi_json();
    let mut route = Route::new().at(
        "/api/openapi.json",
        poem::get(poem::endpoint::make_sync(move |_| {
            poem::Response::builder()
                .content_type("application/json; charset=utf-8")
                .body(document.clone())
        })),
    );
    let mut unlisted = vec![("/api/openapi.json", "GET")];
    if config.docs {
        route = route.nest("/api/docs", docs::Docs::new(api.swagger_ui()));
        unlisted.push(("/api/docs", "GET"));
    }
    let mut route = route.nest("/api", api.into_endpoint());
    if let Some(dir) = &config.demo_dir {
        route = route.nest("/", demo::Demo::new(dir.clone()));
    }
    let mut allow = allow::AllowedMethods::from_spec(&openapi_json(), &unlisted)?;
    if config.demo_dir.is_some() {
        allow = allow.outside_api("GET, HEAD");
    }
    let config = Arc::new(config);
    let RestUseCases {
        registration,
        logins,
        sessions,
        account,
        two_factor,
        passkeys,
        dpop,
        access,
        readiness,
        emails,
    } = use_cases;
    let app = route
        .data(registration)
        .data(logins)
        .data(sessions)
        .data(account)
        .data(two_factor)
        .data(passkeys)
        .data(dpop)
        .data(access)
        .data(readiness)
        .data(emails)
        .data(Arc::new(ForgotQueue::default()))
        .data(config.clone());
    Ok(edge::Edge::new(app, config).with_allowed_methods(allow))
}

/// How long a kept-alive connection may stay idle between requests (Nginx's
/// upstream `keepalive_timeout` is shorter, see `infra/nginx`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves `endpoint` on `listener` under `limits` (see [`connections`])
/// until `shutdown` completes, then lets requests in flight finish (for up
/// to 10 s). Raises the process's open-file limit first.
///
/// # Errors
/// The listener failed.
pub async fn serve<E>(
    listener: tokio::net::TcpListener,
    endpoint: E,
    limits: ConnectionLimits,
    trusted_proxies: Vec<crate::net::IpNet>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()>
where
    E: IntoEndpoint,
    E::Endpoint: 'static,
{
    crate::system::raise_open_file_limit();
    let acceptor =
        LimitedAcceptor::new(TcpAcceptor::from_tokio(listener)?, limits, trusted_proxies);
    tracing::info!(
        max_connections = limits.max_connections,
        max_per_address = limits.max_per_address,
        request_deadline_ms = limits.request_deadline.as_millis(),
        "REST connection limits"
    );
    Server::new_with_acceptor(acceptor)
        .idle_timeout(IDLE_TIMEOUT)
        .run_with_graceful_shutdown(endpoint, shutdown, Some(Duration::from_secs(10)))
        .await
}

#[cfg(test)]
mod tests {
    /// Security review 2, finding 11: the document states "exactly one of
    /// `code` and `recoveryCode`" and the code's form, as the service reads
    /// them.
    #[test]
    fn the_second_steps_body_says_exactly_one_factor_and_the_codes_form() {
        let doc: serde_json::Value = serde_json::from_str(&super::openapi_json()).unwrap();
        let body = &doc["components"]["schemas"]["SecondFactorBody"];
        assert_eq!(
            body["oneOf"],
            serde_json::json!([{"required": ["code"]}, {"required": ["recoveryCode"]}])
        );
        assert_eq!(body["properties"]["code"]["pattern"], r"^\s*[0-9]{6}\s*$");
    }
}

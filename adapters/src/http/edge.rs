//! What every request goes through before and after the operations: request
//! ids and the access log, the body limit, CORS, security headers, and
//! problem+json for every error that escaped an operation.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TraceContextExt as _, TraceId};
use opentelemetry_http::HeaderExtractor;
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, PathPattern, Request, Response};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::HttpConfig;
use super::allow::AllowedMethods;
use super::problem::{self, Problem};
use crate::net::{REQUEST_ID, request_id_of};

/// Largest accepted request body.
pub const MAX_BODY: usize = 16 * 1024;

/// Largest accepted header section (names, values and separators). Bigger
/// ones get `431` as problem+json here; beyond about 400 KB or 100 fields
/// hyper refuses the head before the edge sees it, and the connection turns
/// its bare answer into problem+json ([`super::connections`]). Nginx in
/// front refuses lines over 16 KiB first (as problem+json too).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

fn header_bytes(req: &Request) -> usize {
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// The endpoint that wraps the routes (see the module docs).
#[derive(Debug)]
pub struct Edge<E> {
    inner: E,
    config: Arc<HttpConfig>,
    allow: AllowedMethods,
}

impl<E> Edge<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, config: Arc<HttpConfig>) -> Self {
        Self {
            inner,
            config,
            allow: AllowedMethods::default(),
        }
    }

    /// `405` answers carry `Allow` from `allow`.
    #[must_use]
    pub fn with_allowed_methods(mut self, allow: AllowedMethods) -> Self {
        self.allow = allow;
        self
    }
}

impl<E: Endpoint> Endpoint for Edge<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let request_id = request_id_of(req.headers());
        let method = req.method().clone();
        // The path only: no query string ever reaches the log. The span is
        // also the OpenTelemetry server span (when OTLP export is on); its
        // OTel-only attributes are set below and in `record_outcome`, so the
        // log lines only gain `trace_id`, and only when traces are exported.
        let span = tracing::info_span!(
            "request",
            method = %method,
            path = %req.uri().path(),
            request_id = %request_id,
            trace_id = tracing::field::Empty,
            otel.kind = "server",
        );
        // W3C `traceparent`/`tracestate` from Nginx or the client (a no-op
        // unless a propagator is installed); the only headers ever read for tracing.
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(req.headers()))
        });
        // Fails only when no OpenTelemetry layer is installed: nothing to link then.
        let traced = span.set_parent(parent).is_ok();
        if traced {
            let trace = span.context().span().span_context().trace_id();
            if trace != TraceId::INVALID {
                span.record("trace_id", tracing::field::display(trace));
            }
            span.set_attribute("http.request.method", method.to_string());
        }
        // The connection's presence, for work that is useless once the
        // client has gone (see `crate::client_presence`).
        let presence = super::connections::presence_of(&req.local_addr().0, &req.remote_addr().0)
            .unwrap_or_default();
        let served = async move {
            let started = Instant::now();
            let origin = allowed_origin(&req, &self.config.cors_origins);
            let path = req.uri().path().to_owned();
            let (mut response, route) = if req.method() == Method::OPTIONS && origin.is_some() {
                (preflight(), None)
            } else {
                let (down, (response, route)) = STORAGE_DOWN
                    .scope(std::cell::Cell::new(false), async {
                        let handled = self.handle(req).await;
                        (STORAGE_DOWN.with(std::cell::Cell::get), handled)
                    })
                    .await;
                if down && response.status() == StatusCode::INTERNAL_SERVER_ERROR {
                    (database_unavailable(), route)
                } else {
                    (response, route)
                }
            };
            if response.status() == StatusCode::METHOD_NOT_ALLOWED
                && let Some(allow) = self.allow.for_path(&path)
                && let Ok(value) = HeaderValue::from_str(allow)
            {
                response.headers_mut().insert(header::ALLOW, value);
            }
            decorate(&mut response, &request_id, origin.as_ref());
            let status = response.status();
            let elapsed = started.elapsed();
            let route = route.as_ref().map_or(UNMATCHED, |p| &*p.0);
            if traced {
                record_outcome(&tracing::Span::current(), &method, route, status);
            }
            self.config
                .metrics
                .http_request(method.as_str(), route, status.as_u16(), elapsed);
            let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
            if status.is_server_error() {
                tracing::error!(status = status.as_u16(), elapsed_ms, "request done");
            } else {
                tracing::info!(status = status.as_u16(), elapsed_ms, "request done");
            }
            Ok(response)
        }
        .instrument(span);
        crate::client_presence::watching(presence, served).await
    }
}

tokio::task_local! {
    /// Set while a request runs when an operation could not reach the
    /// database (see [`storage_unavailable`]).
    static STORAGE_DOWN: std::cell::Cell<bool>;
}

/// Notes that the current request failed because the database could not be
/// reached: its `500` becomes `503 database_unavailable` (contract v3).
/// Outside a request (a test calling an operation directly) it does nothing.
pub(crate) fn storage_unavailable() {
    let _ = STORAGE_DOWN.try_with(|down| down.set(true));
}

/// How long a client is asked to wait while the database is away: about
/// one pool acquire timeout.
pub const DATABASE_RETRY_AFTER_SECS: u64 = 3;

/// The answer to a request that needed the unreachable database.
fn database_unavailable() -> Response {
    let mut response = Problem::new(
        problem::Code::DatabaseUnavailable,
        "The database cannot be reached right now; try again shortly.",
    )
    .into_poem_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(DATABASE_RETRY_AFTER_SECS),
    );
    response
}

/// The route label of a request no route matched (404s, preflights,
/// bodies refused before routing): never the raw path, which is unbounded.
pub const UNMATCHED: &str = "unmatched";

/// The server span's name (`POST /api/login`), route and status, as
/// the OpenTelemetry HTTP conventions name them.
fn record_outcome(span: &tracing::Span, method: &Method, route: &str, status: StatusCode) {
    let cx = span.context();
    let otel = cx.span();
    otel.update_name(format!("{method} {route}"));
    otel.set_attribute(KeyValue::new("http.route", route.to_owned()));
    otel.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        otel.set_status(Status::error(status.to_string()));
    }
}

impl<E: Endpoint> Edge<E> {
    /// The response, and the route template that matched (poem records it
    /// on the response or the error).
    async fn handle(&self, mut req: Request) -> (Response, Option<PathPattern>) {
        if header_bytes(&req) > MAX_HEADER_BYTES {
            let problem = Problem::new(
                problem::Code::HeadersTooLarge,
                "The request's header fields exceed 32 KiB.",
            );
            return (problem.into_poem_response(), None);
        }
        if let Err(response) = limit_body(&mut req).await {
            return (response, None);
        }
        super::dpop::accept_dpop_scheme(&mut req);
        match self.inner.call(req).await {
            Ok(output) => {
                let response = output.into_response();
                // A bare 404 is a router's "no such path" (poem-openapi turns
                // its routing errors into responses): only the prefix of an
                // enclosing `nest` matched then, which is no route.
                let route = response
                    .data::<PathPattern>()
                    .filter(|_| response.status() != StatusCode::NOT_FOUND || is_problem(&response))
                    .cloned();
                // Routers answer some failures without an error value; keep them problem+json.
                let response = match response.status() {
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                        if !is_problem(&response) =>
                    {
                        problem::from_poem_error(poem::Error::from_status(response.status())).await
                    }
                    _ => response,
                };
                (response, route)
            }
            Err(error) => {
                let route = error
                    .data::<PathPattern>()
                    .filter(|_| !error.is::<poem::error::NotFoundError>())
                    .cloned();
                (problem::from_poem_error(error).await, route)
            }
        }
    }
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(problem::PROBLEM_JSON.as_bytes()))
}

/// Reads the body up to [`MAX_BODY`] bytes; a bigger one is refused with 413.
async fn limit_body(req: &mut Request) -> Result<(), Response> {
    let too_large = || {
        Problem::new(
            problem::Code::PayloadTooLarge,
            "The request body is larger than 16 KiB.",
        )
        .into_response()
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let body = req.take_body();
    match body.into_bytes_limit(MAX_BODY).await {
        Ok(bytes) => {
            req.set_body(Body::from_bytes(bytes));
            Ok(())
        }
        Err(poem::error::ReadBodyError::PayloadTooLarge) => Err(too_large()),
        Err(_) => Err(Problem::bad_request("The request body could not be read.").into_response()),
    }
}

/// The request's `Origin` when it is one of `CORS_ORIGINS`.
///
/// Not poem's `Cors` middleware: it answers `403` to any request whose
/// `Origin` is not listed, and browsers send `Origin` on same-origin `POST`s
/// too, so the demo page and Swagger UI served by this API would be refused
/// unless their own origin were configured. Here an unlisted origin only gets
/// no CORS headers, and the browser enforces the rest.
fn allowed_origin(req: &Request, allowed: &[String]) -> Option<HeaderValue> {
    let origin = req.headers().get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    allowed.iter().any(|a| a == text).then(|| origin.clone())
}

/// The answer to a CORS preflight from an allowed origin.
fn preflight() -> Response {
    let mut response = Response::builder().status(StatusCode::NO_CONTENT).finish();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, x-request-id"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// Request id, CORS and security headers on every response.
fn decorate(response: &mut Response, request_id: &str, origin: Option<&HeaderValue>) {
    let h = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(request_id) {
        h.insert(REQUEST_ID, id);
    }
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id, retry-after, www-authenticate"),
        );
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    // Tokens and user data must not be cached; public documents set their own policy.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{SpanKind, TracerProvider as _};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use poem::{EndpointExt as _, Route, get};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Keeps every finished span.
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    fn attr(span: &SpanData, key: &str) -> Option<opentelemetry::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    }

    /// One request through an edge over nested routes, traced; its server span.
    async fn server_span(method: Method, uri: &str, traceparent: Option<&str>) -> SpanData {
        let spans = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _default = tracing::subscriber::set_default(subscriber);
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

        let api = || {
            Route::new()
                .at("/items/:id", get(poem::endpoint::make_sync(|_| "item")))
                .at(
                    "/boom",
                    get(poem::endpoint::make_sync(|_| {
                        Err::<(), _>(poem::Error::from_string(
                            "broken",
                            StatusCode::INTERNAL_SERVER_ERROR,
                        ))
                    })),
                )
        };
        // Like the real routes: poem-openapi's router answers with responses.
        let app = Route::new()
            .nest("/api", api().map_to_response())
            .nest("/raw", api());
        let edge = Edge::new(app, Arc::new(HttpConfig::default()));
        let mut req = Request::builder().method(method).uri_str(uri);
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        let _ = edge.call(req.finish()).await.unwrap();
        drop(_default);
        provider.force_flush().unwrap();
        let mut spans = spans.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 1, "{spans:?}");
        spans.remove(0)
    }

    #[tokio::test]
    async fn server_span_names_the_route_template_never_the_query() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let span = server_span(Method::GET, "/api/items/42?token=hunter2", Some(tp)).await;
        assert_eq!(span.name, "GET /api/items/:id");
        assert_eq!(span.span_kind, SpanKind::Server);
        assert_eq!(
            span.span_context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(span.parent_span_id.to_string(), "b7ad6b7169203331");
        assert_eq!(attr(&span, "http.route"), Some("/api/items/:id".into()));
        assert_eq!(attr(&span, "http.request.method"), Some("GET".into()));
        assert_eq!(
            attr(&span, "http.response.status_code"),
            Some(200i64.into())
        );
        assert_eq!(span.status, Status::Unset);
        for kv in &span.attributes {
            assert!(!kv.value.to_string().contains("hunter2"), "{kv:?}");
        }
    }

    #[tokio::test]
    async fn server_errors_mark_the_span_and_unknown_paths_are_unmatched() {
        let boom = server_span(Method::GET, "/api/boom", None).await;
        assert_eq!(boom.name, "GET /api/boom");
        assert_eq!(
            attr(&boom, "http.response.status_code"),
            Some(500i64.into())
        );
        assert!(
            matches!(boom.status, Status::Error { .. }),
            "{:?}",
            boom.status
        );
        // No `traceparent` came in: the server span is a root.
        assert_eq!(boom.parent_span_id, opentelemetry::trace::SpanId::INVALID);

        for path in ["/api/nowhere/at/all", "/raw/nowhere", "/elsewhere"] {
            let lost = server_span(Method::POST, path, None).await;
            assert_eq!(lost.name, "POST unmatched", "{path}");
            assert_eq!(attr(&lost, "http.route"), Some(UNMATCHED.into()));
            assert_eq!(
                attr(&lost, "http.response.status_code"),
                Some(404i64.into())
            );
            assert_eq!(lost.status, Status::Unset);
        }
        let raw = server_span(Method::GET, "/raw/items/7", None).await;
        assert_eq!(raw.name, "GET /raw/items/:id");
    }
}

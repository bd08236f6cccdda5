//! OTLP export of traces and metrics (HTTP/protobuf), configured by the
//! standard `OTEL_*` variables.

/// Where and how to export over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL, e.g.
    /// `http://127.0.0.1:4318`; signals go to `/v1/traces` and `/v1/metrics` under it.
    pub endpoint: String,
    /// `OTEL_SERVICE_NAME` (default `authd`).
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs sent with every export.
    pub headers: Vec<(String, String)>,
}

use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// How long one export may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP HTTP client: hyper, driven on the service's Tokio runtime.
///
/// The SDK's batch span processor and periodic metric reader export from
/// threads of their own with a plain `block_on`, where hyper finds no Tokio
/// reactor; each request is therefore spawned on the runtime and only its
/// result is awaited there.
#[derive(Debug, Clone)]
pub struct TokioHttpClient {
    runtime: tokio::runtime::Handle,
    inner: HyperClient,
}

impl TokioHttpClient {
    /// A client on the current Tokio runtime.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn current() -> Self {
        Self {
            runtime: tokio::runtime::Handle::current(),
            inner: HyperClient::with_default_connector(EXPORT_TIMEOUT, None),
        }
    }
}

#[async_trait]
impl HttpClient for TokioHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let inner = self.inner.clone();
        self.runtime
            .spawn(async move { inner.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as HttpError)?
    }
}

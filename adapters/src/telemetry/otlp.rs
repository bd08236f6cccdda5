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

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The resource every exported signal carries: `service.name` (from
/// `OTEL_SERVICE_NAME`) and `service.version` (this build), plus what the
/// SDK detects (`telemetry.sdk.*`, `OTEL_RESOURCE_ATTRIBUTES`).
pub fn resource(config: &OtlpConfig) -> Resource {
    Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// A tracer provider that exports spans to `<endpoint>/v1/traces` over
/// OTLP HTTP/protobuf, in batches (the SDK's batch processor: its own
/// thread, `OTEL_BSP_SCHEDULE_DELAY` / `OTEL_BSP_MAX_QUEUE_SIZE` /
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` honoured).
///
/// Must be called inside the Tokio runtime the exports will run on (see
/// [`TokioHttpClient`]). Shut the provider down to flush what is queued, from
/// a thread that is not a runtime worker (the export needs the runtime).
///
/// # Errors
/// The endpoint is not a valid URI.
///
/// # Panics
/// When called outside a Tokio runtime.
pub fn tracer_provider(config: &OtlpConfig) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(TokioHttpClient::current())
        .with_endpoint(format!("{}/v1/traces", config.endpoint))
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(config.headers.iter().cloned().collect::<HashMap<_, _>>())
        .build()
        .context("building the OTLP span exporter")?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(config))
        .build())
}

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

//! OTLP export of traces and metrics (HTTP/protobuf), configured by the
//! standard `OTEL_*` variables.

/// Where and how to export over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL, e.g.
    /// `http://127.0.0.1:4318` or `https://otlp.example.com`; signals go to
    /// `/v1/traces` and `/v1/metrics` under it.
    pub endpoint: String,
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`: a PEM file of the certificates an
    /// `https://` collector's chain must end in, instead of the Mozilla roots
    /// built in (webpki-roots).
    pub certificate: Option<PathBuf>,
    /// `OTEL_SERVICE_NAME` (default `authd`).
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs sent with every export.
    pub headers: Vec<(String, String)>,
}

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore};

/// The resource exported spans carry: `service.name` (from
/// `OTEL_SERVICE_NAME`) and `service.version` (this build), plus what the
/// SDK detects (`telemetry.sdk.*`, `OTEL_RESOURCE_ATTRIBUTES`). Exported
/// metrics carry a resource of their own, built in [`super::metrics`]: the
/// same `service.name` and detected attributes, without `service.version`.
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
/// The endpoint is not a valid URI, or the certificate file cannot be read.
///
/// # Panics
/// When called outside a Tokio runtime.
pub fn tracer_provider(config: &OtlpConfig) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(TokioHttpClient::current(config)?)
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

/// The OTLP HTTP client: hyper (with rustls for `https://`), driven on the
/// service's Tokio runtime.
///
/// The SDK's batch span processor and periodic metric reader export from
/// threads of their own with a plain `block_on`, where hyper finds no Tokio
/// reactor; each request is therefore spawned on the runtime and only its
/// result is awaited there.
#[derive(Debug, Clone)]
pub struct TokioHttpClient {
    runtime: tokio::runtime::Handle,
    inner: HyperClient<HttpsConnector<HttpConnector>>,
}

impl TokioHttpClient {
    /// A client for `config`'s collector on the current Tokio runtime:
    /// plain HTTP for `http://`, TLS 1.2/1.3 for `https://`, verified
    /// against `config.certificate` or the built-in Mozilla roots.
    ///
    /// # Errors
    /// The certificate file cannot be read or holds no certificate.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn current(config: &OtlpConfig) -> anyhow::Result<Self> {
        let tls = tls_config(config.certificate.as_deref())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            runtime: tokio::runtime::Handle::current(),
            inner: HyperClient::new(connector, EXPORT_TIMEOUT, None),
        })
    }
}

/// The TLS client settings for the collector: rustls on ring, the roots
/// from `certificate` (PEM) or Mozilla's.
fn tls_config(certificate: Option<&Path>) -> anyhow::Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    match certificate {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect)
                .with_context(|| format!("reading certificates from {}", path.display()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .with_context(|| format!("a certificate in {}", path.display()))?;
            }
            anyhow::ensure!(
                !roots.is_empty(),
                "{} holds no PEM certificate",
                path.display()
            );
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS settings")?
        .with_root_certificates(roots)
        .with_no_client_auth())
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

#[cfg(test)]
mod tests {
    use super::tls_config;

    #[test]
    fn certificate_files_must_hold_a_certificate() {
        assert!(tls_config(None).is_ok(), "the built-in roots");
        let path = std::env::temp_dir().join(format!("authd-otlp-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let empty = tls_config(Some(&path)).unwrap_err();
        assert!(
            format!("{empty:#}").contains("holds no PEM certificate"),
            "{empty:#}"
        );
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let bad = tls_config(Some(&path)).unwrap_err();
        assert!(
            format!("{bad:#}").contains(&path.display().to_string()),
            "{bad:#}"
        );
        std::fs::remove_file(&path).unwrap();
        let missing = tls_config(Some(&path)).unwrap_err();
        assert!(
            format!("{missing:#}").contains("reading certificates"),
            "{missing:#}"
        );
    }
}

//! Logs and traces: the `tracing` subscriber of the `authd` binary.
//!
//! Logs go to stderr, JSON when stderr is not a terminal and human-readable on
//! one (`LOG_FORMAT` decides otherwise), filtered by `RUST_LOG` (default
//! `info`). When OTLP export is configured (`OTEL_EXPORTER_OTLP_ENDPOINT`),
//! the INFO-level spans of the service's own crates are also exported as
//! OpenTelemetry traces, whatever `RUST_LOG` says, and W3C trace context
//! (`traceparent`) is accepted from callers.

use std::io::IsTerminal;

use adapters::telemetry::otlp;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt as _, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::{Config, LogFormat};

/// Libraries whose TRACE output carries message payloads (a WebSocket
/// `reauth` frame holds an access token): capped at DEBUG whatever `RUST_LOG` says.
const PAYLOAD_LOGGING_CRATES: [&str; 4] = ["tungstenite", "async_tungstenite", "hyper", "h2"];

/// The crates whose spans make up a trace (module-path targets).
const TRACED_CRATES: [&str; 3] = ["authd", "adapters", "application"];

/// What must be flushed before the process exits: the span exporter.
#[derive(Debug)]
#[must_use = "call shutdown() before exiting, or queued spans are lost"]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter (waits up to the
    /// export timeout).
    ///
    /// Call it from a thread that is not one of the runtime's workers, while
    /// the runtime is still up (after `block_on` returned): the export runs
    /// as a task on that runtime.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer
            && let Err(e) = provider.shutdown()
        {
            // The subscriber may be what failed: say it on stderr directly.
            eprintln!("authd: flushing traces failed: {e}");
        }
    }
}

/// Installs the global `tracing` subscriber (logs, and OTLP traces when
/// `config.otlp` is set) and the W3C trace-context propagator.
///
/// Must run inside the Tokio runtime that will carry the OTLP exports.
///
/// # Errors
/// The OTLP exporter cannot be built, or a subscriber is already installed.
///
/// # Panics
/// When OTLP is configured and this is called outside a Tokio runtime.
pub fn init(config: &Config) -> anyhow::Result<Telemetry> {
    let tracer = config
        .otlp
        .as_ref()
        .map(otlp::tracer_provider)
        .transpose()?;
    let traces = tracer.as_ref().map(|provider| {
        let targets = TRACED_CRATES.iter().fold(Targets::new(), |t, name| {
            t.with_target(*name, LevelFilter::INFO)
        });
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("authd"))
            .with_filter(targets)
    });
    tracing_subscriber::registry()
        .with(log_layer(config.log_format))
        .with(traces)
        .try_init()?;
    if tracer.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    }
    Ok(Telemetry { tracer })
}

/// The stderr log layer: `RUST_LOG` (default `info`), JSON or pretty, with
/// [`PAYLOAD_LOGGING_CRATES`] never below DEBUG.
fn log_layer(format: Option<LogFormat>) -> Box<dyn Layer<Registry> + Send + Sync> {
    let cap = PAYLOAD_LOGGING_CRATES.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, name| t.with_target(*name, LevelFilter::DEBUG),
    );
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .and(cap);
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => layer.with_filter(filter).boxed(),
    }
}

//! Observability: the security-event recorder (metrics, the `audit` log
//! target and the audit table), the metric instruments with their Prometheus
//! endpoint, and OTLP export of traces and metrics.

pub mod events;
pub mod metrics;
pub mod otlp;

pub use events::EventRecorder;
pub use metrics::Metrics;

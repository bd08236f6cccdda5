//! The metric instruments of the service, on an OpenTelemetry meter provider
//! of their own: read as Prometheus text ([`Metrics::render`], served at
//! `GET /metrics` on `METRICS_ADDR`) and, when OTLP is configured, pushed to
//! the collector every `OTEL_METRIC_EXPORT_INTERVAL` milliseconds (60 s by default).
//!
//! Instrument names are the final Prometheus names (the exporter adds no
//! `_total` or unit suffix), so the same names arrive over OTLP:
//!
//! | name | type | labels |
//! |---|---|---|
//! | `authd_http_requests_total` | counter | `method`, `route`, `status` |
//! | `authd_http_request_duration_seconds` | histogram | `method`, `route`, `status` |
//! | `authd_logins_total` | counter | `outcome`: `success`, `bad_credentials`, `throttled`, `mfa_required`, `bad_second_factor` |
//! | `authd_refreshes_total` | counter | `outcome`: `rotated`, `grace_replay`, `reuse_detected`, `expired`, `revoked`, `invalid` |
//! | `authd_sessions_revoked_total` | counter | `reason`: `logout`, `user`, `reuse`, `password_changed`, `password_reset`, `account_deleted` |
//! | `authd_two_factor_total` | counter | `event`: `enabled`, `disabled`, `recovery_code_used` |
//! | `authd_mail_total` | counter | `event`: `verification_sent`, `verified`, `reset_requested`, `reset`, `failed` |
//! | `authd_ws_connections` | gauge | |
//! | `authd_ws_connections_total` | counter | |
//! | `authd_ws_parked` | gauge | (open connections parked while idle) |
//! | `authd_ws_reauths_total` | counter | `outcome`: `success`, `failure` |
//! | `authd_ws_closes_total` | counter | `by`: `server`, `client`; `code` |
//! | `authd_db_pool_connections` | gauge | `state`: `idle`, `in_use` |
//! | `authd_db_pool_max_connections` | gauge | |
//! | `authd_revocation_feed_connected` | gauge | (1 when the revocation feed is up) |
//! | `authd_revocation_feed_reconnects_total` | counter | |
//! | `authd_revocation_feed_catch_ups_total` | counter | |
//! | `authd_revocation_feed_last_current_age_seconds` | gauge | |
//! | `authd_password_queue_waiting` | gauge | (checks waiting for a hashing thread) |
//! | `authd_password_checks_shed_total` | counter | (answered `503 overloaded`) |
//! | `authd_password_checks_skipped_total` | counter | (dropped unrun: the client had gone) |

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use application::ports::{FeedStatus, PoolStats, SecurityEvent};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider, UpDownCounter};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use super::otlp::{OtlpConfig, TokioHttpClient};

mod series;
use series::{
    DPOP_OUTCOMES, LOGIN_METHODS, LOGIN_OUTCOMES, MAIL_EVENTS, REAUTH_OUTCOMES, REFRESH_OUTCOMES,
    REVOKE_REASONS, TWO_FACTOR_EVENTS, dpop_outcome, login_method, login_outcome, mail_event,
    refresh_outcome, revoke_reason, two_factor_event,
};

/// The content type of [`Metrics::render`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the request latency buckets: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The HTTP method as a static label value (no allocation for the usual ones).
fn method_label(method: &str) -> opentelemetry::Value {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match KNOWN.iter().find(|m| **m == method) {
        Some(known) => (*known).into(),
        // Anything else is one series, not one per invented method.
        None => "other".into(),
    }
}

/// Every instrument of the service (cheap to clone; clones share the instruments).
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    provider: SdkMeterProvider,
    meter: Meter,
    registry: prometheus::Registry,
    otlp: bool,
    http_requests: Counter<u64>,
    http_duration: Histogram<f64>,
    logins: Counter<u64>,
    refreshes: Counter<u64>,
    sessions_revoked: Counter<u64>,
    two_factor: Counter<u64>,
    mail: Counter<u64>,
    dpop_proofs: Counter<u64>,
    ws_open: UpDownCounter<i64>,
    ws_parked: UpDownCounter<i64>,
    ws_accepted: Counter<u64>,
    ws_reauths: Counter<u64>,
    ws_closes: Counter<u64>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.inner.is_some())
            .field("otlp", &self.inner.as_ref().is_some_and(|i| i.otlp))
            .finish()
    }
}

/// Which side ended a WebSocket connection (the `by` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosedBy {
    /// The server sent a close frame, or dropped a silent or stuck peer.
    Server,
    /// The peer sent a close frame, or its connection ended without one.
    Client,
}

impl ClosedBy {
    /// The label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }
}

impl Metrics {
    /// Instruments that record nothing (every call is a branch on `None`).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// The instruments on a meter provider of their own, readable with
    /// [`Self::render`]; with `otlp`, also exported to `{endpoint}/v1/metrics`
    /// (HTTP/protobuf, cumulative) every `OTEL_METRIC_EXPORT_INTERVAL` ms
    /// (default 60 000) and at [`Self::shutdown`].
    ///
    /// # Errors
    /// The Prometheus registry or the OTLP exporter could not be set up.
    ///
    /// # Panics
    /// With `otlp`, when called outside a Tokio runtime (the exporter sends on it).
    pub fn new(otlp: Option<&OtlpConfig>) -> anyhow::Result<Self> {
        let registry = prometheus::Registry::new();
        let prometheus = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            // Names are given in full: no `_total` or unit suffix added.
            .without_counter_suffixes()
            .without_units()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .context("setting up the Prometheus exporter")?;
        let service_name = otlp.map_or("authd", |o| o.service_name.as_str());
        let mut builder = SdkMeterProvider::builder()
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name.to_owned())
                    .build(),
            )
            .with_reader(prometheus);
        if let Some(otlp) = otlp {
            let headers: HashMap<String, String> = otlp.headers.iter().cloned().collect();
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_http_client(TokioHttpClient::current(otlp)?)
                .with_endpoint(format!(
                    "{}/v1/metrics",
                    otlp.endpoint.trim_end_matches('/')
                ))
                .with_headers(headers)
                .build()
                .context("setting up the OTLP metric exporter")?;
            builder = builder.with_reader(PeriodicReader::builder(exporter).build());
        }
        let provider = builder.build();
        let meter = provider.meter("authd");
        let counter = |name: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_description(description)
                .build()
        };
        let inner = Inner {
            http_requests: counter(
                "authd_http_requests_total",
                "HTTP requests answered, by method, route template and status",
            ),
            http_duration: meter
                .f64_histogram("authd_http_request_duration_seconds")
                .with_description(
                    "Time to answer HTTP requests, by method, route template and status",
                )
                .with_unit("s")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            logins: counter(
                "authd_logins_total",
                "Login attempts by outcome and method (password, totp, passkey)",
            ),
            refreshes: counter("authd_refreshes_total", "Refresh attempts by outcome"),
            sessions_revoked: counter(
                "authd_sessions_revoked_total",
                "Sessions (token families) revoked, by reason",
            ),
            two_factor: counter(
                "authd_two_factor_total",
                "Two-factor login turned on or off, and recovery codes spent",
            ),
            mail: counter(
                "authd_mail_total",
                "Mail events: verifications sent and done, resets asked and done, mails given up",
            ),
            dpop_proofs: counter(
                "authd_dpop_proofs_total",
                "DPoP proofs checked, by outcome (the reasons of refusals are audited)",
            ),
            ws_open: meter
                .i64_up_down_counter("authd_ws_connections")
                .with_description("WebSocket connections open now")
                .build(),
            ws_parked: meter
                .i64_up_down_counter("authd_ws_parked")
                .with_description(
                    "WebSocket connections parked while idle (holding no protocol state)",
                )
                .build(),
            ws_accepted: counter(
                "authd_ws_connections_total",
                "WebSocket connections accepted (authenticated handshakes)",
            ),
            ws_reauths: counter(
                "authd_ws_reauths_total",
                "WebSocket reauth messages by outcome",
            ),
            ws_closes: counter(
                "authd_ws_closes_total",
                "WebSocket connections ended, by who ended them and close code",
            ),
            meter,
            provider,
            registry,
            otlp: otlp.is_some(),
        };
        // Every series of a known label set starts at 0, so that a rate
        // exists before the first event.
        for outcome in LOGIN_OUTCOMES {
            for method in LOGIN_METHODS {
                inner.logins.add(
                    0,
                    &[
                        KeyValue::new("outcome", outcome),
                        KeyValue::new("method", method),
                    ],
                );
            }
        }
        for outcome in REFRESH_OUTCOMES {
            inner.refreshes.add(0, &[KeyValue::new("outcome", outcome)]);
        }
        for reason in REVOKE_REASONS {
            inner
                .sessions_revoked
                .add(0, &[KeyValue::new("reason", reason)]);
        }
        for event in TWO_FACTOR_EVENTS {
            inner.two_factor.add(0, &[KeyValue::new("event", event)]);
        }
        for outcome in DPOP_OUTCOMES {
            inner
                .dpop_proofs
                .add(0, &[KeyValue::new("outcome", outcome)]);
        }
        for event in MAIL_EVENTS {
            inner.mail.add(0, &[KeyValue::new("event", event)]);
        }
        for outcome in REAUTH_OUTCOMES {
            inner
                .ws_reauths
                .add(0, &[KeyValue::new("outcome", outcome)]);
        }
        inner.ws_open.add(0, &[]);
        inner.ws_parked.add(0, &[]);
        inner.ws_accepted.add(0, &[]);
        Ok(Self {
            inner: Some(Arc::new(inner)),
        })
    }

    /// Whether the instruments record (not [`Self::disabled`]).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Counts a security event (login and refresh outcomes, revocations).
    pub fn security_event(&self, event: &SecurityEvent) {
        let Some(inner) = &self.inner else { return };
        if let Some(outcome) = login_outcome(event.kind) {
            inner.logins.add(
                1,
                &[
                    KeyValue::new("outcome", outcome),
                    KeyValue::new("method", login_method(event)),
                ],
            );
        }
        if let Some(outcome) = refresh_outcome(event.kind) {
            inner.refreshes.add(1, &[KeyValue::new("outcome", outcome)]);
        }
        if let Some(name) = two_factor_event(event.kind) {
            inner.two_factor.add(1, &[KeyValue::new("event", name)]);
        }
        if let Some(name) = mail_event(event.kind) {
            inner.mail.add(1, &[KeyValue::new("event", name)]);
        }
        if let Some(outcome) = dpop_outcome(event.kind) {
            inner
                .dpop_proofs
                .add(1, &[KeyValue::new("outcome", outcome)]);
        }
        if let Some(reason) = revoke_reason(event.kind)
            && event.sessions_revoked > 0
        {
            inner.sessions_revoked.add(
                u64::from(event.sessions_revoked),
                &[KeyValue::new("reason", reason)],
            );
        }
    }

    /// Counts one HTTP request and records its latency. `route` is the route
    /// template (e.g. `/api/sessions/{id}`), never the raw path.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let Some(inner) = &self.inner else { return };
        let labels = [
            KeyValue::new("method", method_label(method)),
            KeyValue::new("route", route.to_owned()),
            KeyValue::new("status", i64::from(status)),
        ];
        inner.http_requests.add(1, &labels);
        inner.http_duration.record(elapsed.as_secs_f64(), &labels);
    }

    /// A WebSocket connection was accepted (after its authenticated handshake).
    /// The returned guard counts it as open until dropped.
    #[must_use = "the connection counts as open while the guard lives"]
    pub fn ws_connection(&self) -> WsOpen {
        if let Some(inner) = &self.inner {
            inner.ws_accepted.add(1, &[]);
            inner.ws_open.add(1, &[]);
        }
        WsOpen(self.clone())
    }

    /// A WebSocket connection parked; the returned guard counts it as
    /// parked until dropped.
    #[must_use = "the connection counts as parked while the guard lives"]
    pub fn ws_parked(&self) -> WsParked {
        if let Some(inner) = &self.inner {
            inner.ws_parked.add(1, &[]);
        }
        WsParked(self.clone())
    }

    /// Counts a WebSocket `reauth` message by outcome.
    pub fn ws_reauth(&self, success: bool) {
        let Some(inner) = &self.inner else { return };
        let outcome = if success { "success" } else { "failure" };
        inner
            .ws_reauths
            .add(1, &[KeyValue::new("outcome", outcome)]);
    }

    /// Counts the end of a WebSocket connection: the close code the server
    /// sent or the peer's, 1005 for a peer's close without a code, 1006 for
    /// a connection that ended without a close frame.
    pub fn ws_close(&self, code: u16, by: ClosedBy) {
        let Some(inner) = &self.inner else { return };
        inner.ws_closes.add(
            1,
            &[
                KeyValue::new("by", by.as_str()),
                KeyValue::new("code", i64::from(code)),
            ],
        );
    }

    /// Reports the connection counts `stats` reads as
    /// `authd_db_pool_connections{state}` and `authd_db_pool_max_connections`,
    /// read at each collection. Call it once per [`Metrics`].
    pub fn observe_pool(&self, stats: Arc<dyn Fn() -> PoolStats + Send + Sync>) {
        let Some(inner) = &self.inner else { return };
        let for_max = Arc::clone(&stats);
        let _ = inner
            .meter
            .u64_observable_gauge("authd_db_pool_connections")
            .with_description("Database pool connections by state")
            .with_callback(move |observer| {
                let stats = stats();
                observer.observe(u64::from(stats.idle), &[KeyValue::new("state", "idle")]);
                observer.observe(
                    u64::from(stats.in_use()),
                    &[KeyValue::new("state", "in_use")],
                );
            })
            .build();
        let _ = inner
            .meter
            .u64_observable_gauge("authd_db_pool_max_connections")
            .with_description("The database pool's maximum number of connections")
            .with_callback(move |observer| {
                observer.observe(u64::from(for_max().max), &[]);
            })
            .build();
    }

    /// Observes the revocation feed through `status`: whether it is up, its
    /// reconnects and catch-ups, and how long ago it was last known current.
    pub fn observe_revocation_feed(&self, status: Arc<dyn Fn() -> FeedStatus + Send + Sync>) {
        let Some(inner) = &self.inner else { return };
        let s = status.clone();
        let _ = inner
            .meter
            .u64_observable_gauge("authd_revocation_feed_connected")
            .with_description("1 while the revocation feed listens and reads, 0 while it is down")
            .with_callback(move |observer| observer.observe(u64::from(s().connected()), &[]))
            .build();
        let s = status.clone();
        let _ = inner
            .meter
            .u64_observable_counter("authd_revocation_feed_reconnects_total")
            .with_description("Revocation-feed connections replaced after a failure")
            .with_callback(move |observer| observer.observe(s().reconnects, &[]))
            .build();
        let s = status.clone();
        let _ = inner
            .meter
            .u64_observable_counter("authd_revocation_feed_catch_ups_total")
            .with_description("Reads after a revocation-feed outage that delivered what was missed")
            .with_callback(move |observer| observer.observe(s().catch_ups, &[]))
            .build();
        let _ = inner
            .meter
            .f64_observable_gauge("authd_revocation_feed_last_current_age_seconds")
            .with_description(
                "Seconds since the revocation feed last delivered or confirmed it is current",
            )
            .with_callback(move |observer| {
                if let Some(at) = status().last_current {
                    let now = application::ports::Clock::now(&crate::system::SystemClock);
                    observer.observe(now.since(at).as_secs_f64(), &[]);
                }
            })
            .build();
    }

    /// Observes the password-hashing queue through `status`.
    pub fn observe_password_queue(
        &self,
        status: Arc<dyn Fn() -> PasswordQueueStatus + Send + Sync>,
    ) {
        let Some(inner) = &self.inner else { return };
        let s = status.clone();
        let _ = inner
            .meter
            .u64_observable_gauge("authd_password_queue_waiting")
            .with_description("Password checks and hashes waiting for a hashing thread")
            .with_callback(move |observer| observer.observe(s().waiting, &[]))
            .build();
        let s = status.clone();
        let _ = inner
            .meter
            .u64_observable_counter("authd_password_checks_shed_total")
            .with_description("Logins and registrations refused with 503 overloaded")
            .with_callback(move |observer| observer.observe(s().shed, &[]))
            .build();
        let _ = inner
            .meter
            .u64_observable_counter("authd_password_checks_skipped_total")
            .with_description("Password checks dropped unrun because their client had gone")
            .with_callback(move |observer| observer.observe(status().skipped, &[]))
            .build();
    }

    /// The current values as Prometheus text (format 0.0.4, see
    /// [`PROMETHEUS_CONTENT_TYPE`]); empty when disabled.
    pub fn render(&self) -> String {
        let Some(inner) = &self.inner else {
            return String::new();
        };
        let families = inner.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not encode the metrics");
                String::new()
            })
    }

    /// Stops the instruments; with OTLP, exports what was recorded since the
    /// last export first (waits up to the export timeout). Later calls do
    /// nothing. Runs the blocking part off the async threads.
    pub async fn shutdown(&self) {
        let Some(inner) = self.inner.clone() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || {
            inner
                .provider
                .shutdown_with_timeout(Duration::from_secs(10))
        })
        .await;
        match result {
            Ok(Ok(())) => tracing::debug!("metrics shut down"),
            Ok(Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics shutdown failed"),
            Err(e) => tracing::warn!(error = %e, "metrics shutdown panicked"),
        }
    }
}

/// Counts one open WebSocket connection until dropped (see [`Metrics::ws_connection`]).
#[derive(Debug)]
pub struct WsOpen(Metrics);

impl Drop for WsOpen {
    fn drop(&mut self) {
        if let Some(inner) = &self.0.inner {
            inner.ws_open.add(-1, &[]);
        }
    }
}

/// Counts one parked WebSocket connection until dropped (see [`Metrics::ws_parked`]).
#[derive(Debug)]
pub struct WsParked(Metrics);

impl Drop for WsParked {
    fn drop(&mut self) {
        if let Some(inner) = &self.0.inner {
            inner.ws_parked.add(-1, &[]);
        }
    }
}

/// What [`Metrics::observe_password_queue`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct PasswordQueueStatus {
    /// Waiting now.
    pub waiting: u64,
    /// Refused so far.
    pub shed: u64,
    /// Dropped unrun so far.
    pub skipped: u64,
}

/// The metrics listener's routes: `GET /metrics` answers [`Metrics::render`]
/// as Prometheus text; every other path is a 404.
pub fn endpoint(metrics: Metrics) -> impl poem::Endpoint<Output = poem::Response> {
    poem::Route::new().at(
        "/metrics",
        poem::get(poem::endpoint::make_sync(move |_| {
            poem::Response::builder()
                .content_type(PROMETHEUS_CONTENT_TYPE)
                .body(metrics.render())
        })),
    )
}

#[cfg(test)]
mod tests;

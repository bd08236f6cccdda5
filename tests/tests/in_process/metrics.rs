//! Metrics: the real wiring with `METRICS_ADDR` on a loopback port; a REST
//! and a WebSocket scenario, then the exact values on `GET /metrics`; the
//! listener is separate from the API and off without `METRICS_ADDR`; and the
//! same instruments pushed to an in-process OTLP/HTTP receiver.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use adapters::telemetry::otlp::OtlpConfig;
use authd::Config;
use authd::Services;
use integration_tests::app::{ANY_LOOPBACK_PORT, Backend, PASSWORD, TestApp, spawn_app, test_keys};
use integration_tests::otlp::OtlpReceiver;
use integration_tests::ws_client::WsClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::metric;
use reqwest::StatusCode;
use serde_json::json;

const SECOND: Duration = Duration::from_secs(1);

async fn metrics_app(reuse_grace: Duration) -> TestApp {
    spawn_app(
        Backend::Sqlite,
        Config {
            metrics_addr: Some(ANY_LOOPBACK_PORT),
            refresh_reuse_grace: reuse_grace,
            ..Config::default()
        },
    )
    .await
}

/// `GET /metrics` on the metrics listener: its body, after checking the answer.
async fn scrape(addr: SocketAddr) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of the series written exactly as `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

#[track_caller]
fn assert_series(text: &str, series: &str, want: f64) {
    assert_eq!(value(text, series), Some(want), "{series} in\n{text}");
}

/// Scrapes until `series` has the value `want` (at most 5 s).
async fn wait_for(addr: SocketAddr, series: &str, want: f64) -> String {
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        let text = scrape(addr).await;
        if value(&text, series) == Some(want) || Instant::now() > deadline {
            assert_series(&text, series, want);
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rest_scenario_counts_logins_refreshes_revocations_and_requests() {
    let grace = SECOND;
    let app = metrics_app(grace).await;
    let addr = app.metrics_addr.expect("METRICS_ADDR was set");
    assert_ne!(addr, app.api_addr);
    assert_ne!(addr, app.ws_addr);

    let r = app.register("alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (access, first) = (r.access_token(), r.refresh_cookie().unwrap());
    app.login("alice", "not the password")
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(app.protected(&access).await.status, StatusCode::OK);
    let r = app.refresh(&first).await;
    assert_eq!(r.status, StatusCode::OK, "rotation: {}", r.text);
    let r = app.refresh(&first).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "replay within the grace: {}",
        r.text
    );
    app.clock.advance(grace + SECOND / 2);
    app.refresh(&first)
        .await
        .assert_problem(401, "refresh_reused");
    app.get("/api/no-such-thing")
        .send()
        .await
        .assert_problem(404, "not_found");
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post("/api/logout")
        .bearer(&r.access_token())
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    let text = scrape(addr).await;
    for (series, want) in [
        (
            r#"authd_logins_total{method="password",outcome="success"}"#,
            2.0,
        ),
        (
            r#"authd_logins_total{method="password",outcome="bad_credentials"}"#,
            1.0,
        ),
        (
            r#"authd_logins_total{method="password",outcome="throttled"}"#,
            0.0,
        ),
        (r#"authd_refreshes_total{outcome="rotated"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="grace_replay"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="reuse_detected"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="expired"}"#, 0.0),
        (r#"authd_refreshes_total{outcome="revoked"}"#, 0.0),
        (r#"authd_refreshes_total{outcome="invalid"}"#, 0.0),
        // The reused family, then the second login's at logout.
        (r#"authd_sessions_revoked_total{reason="reuse"}"#, 1.0),
        (r#"authd_sessions_revoked_total{reason="logout"}"#, 1.0),
        (r#"authd_sessions_revoked_total{reason="user"}"#, 0.0),
        (
            r#"authd_http_requests_total{method="POST",route="/api/login",status="200"}"#,
            2.0,
        ),
        (
            r#"authd_http_requests_total{method="POST",route="/api/login",status="401"}"#,
            1.0,
        ),
        (
            r#"authd_http_requests_total{method="POST",route="/api/refresh",status="200"}"#,
            2.0,
        ),
        (
            r#"authd_http_requests_total{method="POST",route="/api/refresh",status="401"}"#,
            1.0,
        ),
        (
            r#"authd_http_requests_total{method="GET",route="/api/protected",status="200"}"#,
            1.0,
        ),
        (
            r#"authd_http_requests_total{method="POST",route="/api/register",status="201"}"#,
            1.0,
        ),
        (
            r#"authd_http_requests_total{method="POST",route="/api/logout",status="204"}"#,
            1.0,
        ),
        (
            r#"authd_http_request_duration_seconds_count{method="POST",route="/api/login",status="200"}"#,
            2.0,
        ),
        (
            r#"authd_http_request_duration_seconds_bucket{method="POST",route="/api/login",status="200",le="+Inf"}"#,
            2.0,
        ),
        // SQLite file pool.
        ("authd_db_pool_max_connections", 8.0),
        // The revocation feed reads and has never failed.
        ("authd_revocation_feed_connected", 1.0),
        ("authd_revocation_feed_reconnects_total", 0.0),
        ("authd_revocation_feed_catch_ups_total", 0.0),
    ] {
        assert_series(&text, series, want);
    }
    // The 404 is counted once, under a route template (`unmatched`, or the
    // prefix that matched), never under its raw path.
    let not_found: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("authd_http_requests_total{") && l.contains(r#"status="404""#))
        .collect();
    assert_eq!(not_found.len(), 1, "{text}");
    assert!(not_found[0].contains(r#"method="GET""#), "{text}");
    assert!(not_found[0].ends_with(" 1"), "{text}");
    assert!(!text.contains("no-such-thing"), "{text}");
    let idle = value(&text, r#"authd_db_pool_connections{state="idle"}"#).unwrap();
    let in_use = value(&text, r#"authd_db_pool_connections{state="in_use"}"#).unwrap();
    assert!(idle + in_use >= 1.0 && idle + in_use <= 8.0, "{text}");
    let login_seconds = value(
        &text,
        r#"authd_http_request_duration_seconds_sum{method="POST",route="/api/login",status="200"}"#,
    )
    .unwrap();
    assert!(login_seconds > 0.0 && login_seconds < 60.0, "{text}");
}

/// A socket opened with `access`, past its `connected` message.
async fn connected(app: &TestApp, access: &str) -> WsClient {
    WsClient::connected(app.ws_addr, access).await
}

#[tokio::test]
async fn websocket_connections_reauths_and_closes() {
    let app = metrics_app(10 * SECOND).await;
    let addr = app.metrics_addr.unwrap();
    let session = app.signed_in("bob").await;
    let text = scrape(addr).await;
    assert_series(&text, "authd_ws_connections", 0.0);
    assert_series(&text, "authd_ws_connections_total", 0.0);

    let mut client = connected(&app, &session.access).await;
    let text = scrape(addr).await;
    assert_series(&text, "authd_ws_connections", 1.0);
    assert_series(&text, "authd_ws_connections_total", 1.0);
    // Idle after its `connected` message, the socket parks.
    wait_for(addr, "authd_ws_parked", 1.0).await;

    let renewed = app.refresh(&session.refresh).await.access_token();
    client
        .send_json(&json!({"type": "reauth", "access": renewed}))
        .await
        .unwrap();
    let answer = client.recv_json(5 * SECOND).await.unwrap();
    assert_eq!(answer["type"], "reauth_success", "{answer}");
    client
        .send_json(&json!({"type": "reauth", "access": "not.a.token"}))
        .await
        .unwrap();
    let answer = client.recv_json(5 * SECOND).await.unwrap();
    assert_eq!(answer["payload"]["code"], "reauth_failed", "{answer}");
    let text = scrape(addr).await;
    assert_series(&text, r#"authd_ws_reauths_total{outcome="success"}"#, 1.0);
    assert_series(&text, r#"authd_ws_reauths_total{outcome="failure"}"#, 1.0);

    let r = app.post("/api/logout").bearer(&renewed).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let error = client.recv_json(5 * SECOND).await.unwrap();
    assert_eq!(error["payload"]["code"], "session_revoked", "{error}");
    assert_eq!(client.expect_close(5 * SECOND).await.unwrap(), Some(4003));
    let text = wait_for(addr, "authd_ws_connections", 0.0).await;
    assert_series(&text, "authd_ws_parked", 0.0);
    assert_series(
        &text,
        r#"authd_ws_closes_total{by="server",code="4003"}"#,
        1.0,
    );
    assert_series(&text, "authd_ws_connections_total", 1.0);
    assert_eq!(
        text.matches("authd_ws_closes_total{").count(),
        1,
        "one close code only: {text}"
    );

    // The peer's close frame (without a code: 1005), then a peer that just
    // goes away (no close frame: 1006).
    let session = app.signed_in("carol").await;
    for close_frame in [true, false] {
        let client = connected(&app, &session.access).await;
        wait_for(addr, "authd_ws_connections", 1.0).await;
        if close_frame {
            client.close().await;
        } else {
            drop(client);
        }
        wait_for(addr, "authd_ws_connections", 0.0).await;
        let text = scrape(addr).await;
        assert_series(
            &text,
            r#"authd_ws_closes_total{by="client",code="1005"}"#,
            1.0,
        );
        assert_eq!(
            value(&text, r#"authd_ws_closes_total{by="client",code="1006"}"#),
            (!close_frame).then_some(1.0),
            "{text}"
        );
    }
    let text = scrape(addr).await;
    assert_eq!(text.matches("authd_ws_closes_total{").count(), 3, "{text}");

    // Shutdown closes the sockets with 1001 (read from the instruments: the
    // metrics listener is stopping too).
    let session = app.signed_in("bob2").await;
    let mut client = connected(&app, &session.access).await;
    app.running.shutdown();
    assert_eq!(client.expect_close(5 * SECOND).await.unwrap(), Some(1001));
    let deadline = Instant::now() + 5 * SECOND;
    let text = loop {
        let text = app.running.metrics.render();
        if value(&text, "authd_ws_connections") == Some(0.0) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_series(&text, "authd_ws_connections", 0.0);
    assert_series(&text, "authd_ws_connections_total", 4.0);
    assert_series(
        &text,
        r#"authd_ws_closes_total{by="server",code="1001"}"#,
        1.0,
    );
    assert_series(
        &text,
        r#"authd_ws_closes_total{by="server",code="4003"}"#,
        1.0,
    );
}

#[tokio::test]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn pool_gauges_on_postgres() {
    let app = spawn_app(
        Backend::Postgres,
        Config {
            metrics_addr: Some(ANY_LOOPBACK_PORT),
            ..Config::default()
        },
    )
    .await;
    let addr = app.metrics_addr.unwrap();
    assert_eq!(app.get("/api/health").send().await.status, StatusCode::OK);
    let text = scrape(addr).await;
    assert_series(&text, "authd_db_pool_max_connections", 16.0);
    assert_series(&text, "authd_revocation_feed_connected", 1.0);
    // The age appears with the feed's first read, which runs beside the start.
    let deadline = Instant::now() + Duration::from_secs(5);
    let age = loop {
        let text = scrape(addr).await;
        if let Some(age) = value(&text, "authd_revocation_feed_last_current_age_seconds") {
            break age;
        }
        assert!(Instant::now() < deadline, "no feed age: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        (0.0..2.0).contains(&age),
        "the feed reads every 500 ms: {age}"
    );
    let idle = value(&text, r#"authd_db_pool_connections{state="idle"}"#).unwrap();
    let in_use = value(&text, r#"authd_db_pool_connections{state="in_use"}"#).unwrap();
    // sqlx hands a connection back to the pool in a task of its own after the
    // query, so right after a request it may still count as in use.
    let open = idle + in_use;
    assert!((1.0..=16.0).contains(&open), "{text}");
}

#[tokio::test]
async fn metrics_listener_is_separate_and_off_by_default() {
    let app = metrics_app(10 * SECOND).await;
    let addr = app.metrics_addr.unwrap();
    // The public API has no /metrics.
    app.get("/metrics")
        .send()
        .await
        .assert_problem(404, "not_found");
    // The metrics listener has nothing else.
    let other = reqwest::get(format!("http://{addr}/api/health"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    assert!(
        scrape(addr)
            .await
            .contains("# TYPE authd_logins_total counter")
    );

    let plain = spawn_app(Backend::Sqlite, Config::default()).await;
    assert_eq!(plain.metrics_addr, None);
    assert!(!plain.running.metrics.is_enabled());
}

/// The sum of the data points of counter `name` with attribute `key=value`
/// in the last export that has it.
fn exported_counter(
    exports: &[ExportMetricsServiceRequest],
    name: &str,
    key: &str,
    value: &str,
) -> Option<f64> {
    let matches = |attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        attrs.iter().any(|kv| {
            kv.key == key
                && matches!(
                    kv.value.as_ref().and_then(|v| v.value.as_ref()),
                    Some(any_value::Value::StringValue(s)) if s == value
                )
        })
    };
    exports.iter().rev().find_map(|export| {
        let metric = export
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .find(|m| m.name == name)?;
        let Some(metric::Data::Sum(sum)) = &metric.data else {
            return None;
        };
        sum.data_points
            .iter()
            .filter(|p| matches(&p.attributes))
            .map(|p| match p.value {
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(
                    n,
                )) => n as f64,
                Some(
                    opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(x),
                ) => x,
                None => 0.0,
            })
            .reduce(|a, b| a + b)
    })
}

#[tokio::test]
async fn otlp_export_carries_the_same_instruments_and_flushes_at_stop() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let config = Config {
        database_url: integration_tests::postgres::fresh_sqlite_url(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        // Not the default `data/mail` under `tests/`.
        mail_dir: integration_tests::postgres::fresh_temp_dir("mail"),
        otlp: Some(OtlpConfig {
            endpoint: format!("http://{}", receiver.addr),
            certificate: None,
            service_name: "authd-metrics-test".into(),
            headers: vec![("x-test".into(), "1".into())],
        }),
        ..Config::default()
    };
    let keys = tokio::task::spawn_blocking(test_keys).await.unwrap();
    let running = authd::start(&config, keys, Services::Api).await.unwrap();
    // OTLP alone does not open a metrics listener.
    assert_eq!(running.metrics_addr, None);
    assert!(running.metrics.is_enabled());
    let base = format!("http://{}", running.api_addr.unwrap());
    let client = reqwest::Client::new();
    let body = json!({"username": "carol", "password": PASSWORD});
    let r = client
        .post(format!("{base}/api/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client
        .post(format!("{base}/api/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Nothing before the first interval (60 s): the export at stop carries it.
    running.shutdown();
    running.wait().await.unwrap();
    let exports = receiver.metrics();
    receiver.stop();
    assert!(!exports.is_empty(), "no metrics export arrived");
    assert_eq!(
        exported_counter(&exports, "authd_logins_total", "outcome", "success"),
        Some(1.0)
    );
    assert_eq!(
        exported_counter(&exports, "authd_http_requests_total", "route", "/api/login"),
        Some(1.0)
    );
    let service = exports[0]
        .resource_metrics
        .iter()
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.clone());
    assert_eq!(
        service,
        Some(any_value::Value::StringValue("authd-metrics-test".into()))
    );
}

/// Starts the API with metrics exported to `otlp` and stops it at once (the
/// stop flushes one export).
async fn start_and_stop(otlp: OtlpConfig) -> anyhow::Result<()> {
    let config = Config {
        database_url: integration_tests::postgres::fresh_sqlite_url(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        // Not the default `data/mail` under `tests/`.
        mail_dir: integration_tests::postgres::fresh_temp_dir("mail"),
        otlp: Some(otlp),
        ..Config::default()
    };
    let keys = tokio::task::spawn_blocking(test_keys).await.unwrap();
    let running = authd::start(&config, keys, Services::Api).await?;
    running.shutdown();
    running.wait().await?;
    Ok(())
}

/// OTLP to an `https://` collector: exports arrive when its certificate is
/// the one `OTEL_EXPORTER_OTLP_CERTIFICATE` names, none with the built-in
/// roots (which do not hold a self-signed certificate), and a certificate
/// file that cannot be read stops the start with its path.
#[tokio::test]
#[cfg_attr(missing = "openssl", ignore = "needs openssl")]
async fn otlp_export_over_https_trusts_the_given_certificate_only() {
    let dir = integration_tests::process::temp_dir("authd-otlp-tls").unwrap();
    let script = integration_tests::process::workspace_root().join("infra/nginx/make-dev-cert.sh");
    let made = std::process::Command::new("sh")
        .arg(script)
        .arg(&dir)
        .output()
        .expect("make-dev-cert.sh (needs openssl)");
    assert!(made.status.success(), "{made:?}");
    let (cert, key) = (dir.join("dev.crt"), dir.join("dev.key"));
    let receiver = OtlpReceiver::start().await.unwrap();
    let front = receiver
        .tls_front(
            &std::fs::read(&cert).unwrap(),
            &std::fs::read(&key).unwrap(),
        )
        .await
        .unwrap();
    let otlp = |certificate: Option<&std::path::Path>| OtlpConfig {
        endpoint: format!("https://localhost:{}", front.port()),
        certificate: certificate.map(Into::into),
        service_name: "authd-tls-test".into(),
        headers: Vec::new(),
    };

    start_and_stop(otlp(None)).await.unwrap();
    assert!(
        receiver.metrics().is_empty(),
        "exported to an untrusted collector"
    );

    start_and_stop(otlp(Some(&cert))).await.unwrap();
    let exports = receiver.metrics();
    assert!(!exports.is_empty(), "no export over TLS");
    let service = exports[0]
        .resource_metrics
        .iter()
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.clone());
    assert_eq!(
        service,
        Some(any_value::Value::StringValue("authd-tls-test".into()))
    );

    let missing = dir.join("no-such.pem");
    let error = start_and_stop(otlp(Some(&missing))).await.unwrap_err();
    assert!(
        format!("{error:#}").contains(&missing.display().to_string()),
        "{error:#}"
    );
    receiver.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

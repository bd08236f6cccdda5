//! Tests of [`super`].

use application::ClientInfo;
use application::ports::SecurityEventKind;
use domain::Timestamp;
use poem::{Endpoint, Request};

use super::*;

fn event(kind: SecurityEventKind, revoked: usize) -> SecurityEvent {
    SecurityEvent::new(
        kind,
        Timestamp::from_unix_seconds(0),
        &ClientInfo::default(),
    )
    .revoked(revoked)
}

/// The value of the series rendered exactly as `series` (name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

#[test]
fn every_event_kind_counts_in_its_series() {
    for kind in SecurityEventKind::ALL {
        let login = login_outcome(kind);
        let refresh = refresh_outcome(kind);
        let revoke = revoke_reason(kind);
        let two_factor = two_factor_event(kind);
        let dpop = dpop_outcome(kind);
        let mail = mail_event(kind);
        assert!(
            login.is_some()
                || refresh.is_some()
                || revoke.is_some()
                || two_factor.is_some()
                || dpop.is_some()
                || mail.is_some(),
            "{kind:?} is counted nowhere"
        );
        assert!(login.is_none_or(|o| LOGIN_OUTCOMES.contains(&o)));
        assert!(refresh.is_none_or(|o| REFRESH_OUTCOMES.contains(&o)));
        assert!(revoke.is_none_or(|r| REVOKE_REASONS.contains(&r)));
        assert!(two_factor.is_none_or(|e| TWO_FACTOR_EVENTS.contains(&e)));
        assert!(dpop.is_none_or(|e| DPOP_OUTCOMES.contains(&e)));
        assert!(mail.is_none_or(|e| MAIL_EVENTS.contains(&e)));
    }
    assert_eq!(
        refresh_outcome(SecurityEventKind::ReuseDetected),
        Some("reuse_detected")
    );
    assert_eq!(
        revoke_reason(SecurityEventKind::ReuseDetected),
        Some("reuse")
    );
    assert_eq!(
        revoke_reason(SecurityEventKind::SessionRevoked),
        Some("user")
    );
    assert_eq!(
        login_outcome(SecurityEventKind::LoginFailed),
        Some("bad_credentials")
    );
}

#[test]
fn renders_the_final_names_and_values() {
    let metrics = Metrics::new(None).unwrap();
    metrics.security_event(&event(SecurityEventKind::LoginSucceeded, 0));
    metrics.security_event(&event(SecurityEventKind::LoginFailed, 0));
    metrics.security_event(&event(SecurityEventKind::LoginFailed, 0));
    metrics.security_event(&event(SecurityEventKind::RefreshGraceReplay, 0));
    metrics.security_event(&event(SecurityEventKind::ReuseDetected, 1));
    metrics.security_event(&event(SecurityEventKind::Logout, 3));
    metrics.http_request("POST", "/api/login", 200, Duration::from_millis(30));
    metrics.http_request("POST", "/api/login", 200, Duration::from_millis(3));
    metrics.http_request("BREW", "/api/login", 405, Duration::from_millis(1));
    let open = metrics.ws_connection();
    let _second = metrics.ws_connection();
    metrics.ws_reauth(true);
    metrics.ws_close(4003, ClosedBy::Server);
    metrics.ws_close(1006, ClosedBy::Client);
    drop(open);

    let text = metrics.render();
    let expect = [
        (
            r#"authd_logins_total{method="password",outcome="success"}"#,
            1.0,
        ),
        (
            r#"authd_logins_total{method="password",outcome="bad_credentials"}"#,
            2.0,
        ),
        (
            r#"authd_logins_total{method="password",outcome="throttled"}"#,
            0.0,
        ),
        (r#"authd_refreshes_total{outcome="grace_replay"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="reuse_detected"}"#, 1.0),
        (r#"authd_refreshes_total{outcome="rotated"}"#, 0.0),
        (r#"authd_sessions_revoked_total{reason="logout"}"#, 3.0),
        (r#"authd_sessions_revoked_total{reason="reuse"}"#, 1.0),
        (r#"authd_sessions_revoked_total{reason="user"}"#, 0.0),
        (
            r#"authd_http_requests_total{method="POST",route="/api/login",status="200"}"#,
            2.0,
        ),
        (
            r#"authd_http_requests_total{method="other",route="/api/login",status="405"}"#,
            1.0,
        ),
        (
            r#"authd_http_request_duration_seconds_count{method="POST",route="/api/login",status="200"}"#,
            2.0,
        ),
        (
            r#"authd_http_request_duration_seconds_bucket{method="POST",route="/api/login",status="200",le="0.005"}"#,
            1.0,
        ),
        (
            r#"authd_http_request_duration_seconds_bucket{method="POST",route="/api/login",status="200",le="10"}"#,
            2.0,
        ),
        ("authd_ws_connections", 1.0),
        ("authd_ws_connections_total", 2.0),
        (r#"authd_ws_reauths_total{outcome="success"}"#, 1.0),
        (r#"authd_ws_reauths_total{outcome="failure"}"#, 0.0),
        (r#"authd_ws_closes_total{by="server",code="4003"}"#, 1.0),
        (r#"authd_ws_closes_total{by="client",code="1006"}"#, 1.0),
    ];
    for (series, want) in expect {
        assert_eq!(value(&text, series), Some(want), "{series} in\n{text}");
    }
    assert!(text.contains("# TYPE authd_ws_connections gauge"), "{text}");
    assert!(
        text.contains("# TYPE authd_ws_connections_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE authd_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(!text.contains("_total_total"), "{text}");
    assert!(!text.contains("otel_scope"), "{text}");
    assert!(!text.contains("target_info"), "{text}");
}

#[test]
fn instances_do_not_share_counts() {
    let (a, b) = (Metrics::new(None).unwrap(), Metrics::new(None).unwrap());
    a.security_event(&event(SecurityEventKind::LoginSucceeded, 0));
    let series = r#"authd_logins_total{method="password",outcome="success"}"#;
    assert_eq!(value(&a.render(), series), Some(1.0));
    assert_eq!(value(&b.render(), series), Some(0.0));
}

#[test]
fn disabled_metrics_record_nothing() {
    let metrics = Metrics::disabled();
    assert!(!metrics.is_enabled());
    metrics.security_event(&event(SecurityEventKind::LoginSucceeded, 0));
    metrics.http_request("GET", "/x", 200, Duration::ZERO);
    drop(metrics.ws_connection());
    metrics.ws_reauth(false);
    metrics.ws_close(1001, ClosedBy::Server);
    assert_eq!(metrics.render(), "");
}

#[tokio::test]
async fn endpoint_serves_metrics_and_nothing_else() {
    let metrics = Metrics::new(None).unwrap();
    metrics.ws_close(1001, ClosedBy::Server);
    let ep = endpoint(metrics.clone());
    let ok = ep
        .get_response(Request::builder().uri_str("/metrics").finish())
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.content_type(), Some(PROMETHEUS_CONTENT_TYPE));
    let body = ok.into_body().into_string().await.unwrap();
    assert_eq!(
        value(&body, r#"authd_ws_closes_total{by="server",code="1001"}"#),
        Some(1.0)
    );
    let other = ep
        .get_response(Request::builder().uri_str("/api/login").finish())
        .await;
    assert_eq!(other.status(), 404);
    metrics.shutdown().await;
    metrics.shutdown().await;
}

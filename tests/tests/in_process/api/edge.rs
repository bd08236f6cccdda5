//! Edge hygiene: body limit, malformed input, 404/405, request ids, headers, CORS.

use authd::Config;
use integration_tests::app::{Backend, PASSWORD, spawn_app};
use reqwest::Method;
use serde_json::json;

integration_tests::on_both!(
    std::future::ready;
    body_limit,
    header_limit,
    unparsable_requests,
    malformed_bodies,
    unknown_paths_and_methods,
    request_ids_and_headers,
    cors_only_for_listed_origins
);

pub async fn body_limit(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let big = json!({"username": "alice", "password": "x".repeat(17 * 1024)});
    app.post("/api/login")
        .json(&big)
        .send()
        .await
        .assert_problem(413, "payload_too_large");
    app.post("/api/register")
        .json(&big)
        .send()
        .await
        .assert_problem(413, "payload_too_large");
    // Just under the limit is read (and refused for what it says).
    let fits = json!({"username": "alice", "password": "x".repeat(15 * 1024)});
    app.post("/api/register")
        .json(&fits)
        .send()
        .await
        .assert_problem(400, "weak_password");
}

/// 431 is problem+json (contract v2), like 413.
pub async fn header_limit(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let r = app
        .get("/api/health")
        .header("x-padding", &"a".repeat(40 * 1024))
        .send_unchecked()
        .await;
    r.assert_problem(431, "headers_too_large");
    // An 8 KiB access token in a header still fits.
    let r = app
        .get("/api/health")
        .header("x-padding", &"a".repeat(20 * 1024))
        .send_unchecked()
        .await;
    assert_ne!(r.status, 431);
}

/// Sends `request` on a fresh connection and reads the answer until the
/// server closes it: (status, head, body).
async fn raw_exchange(
    app: &integration_tests::app::TestApp,
    request: &[u8],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut socket = tokio::net::TcpStream::connect(app.api_addr).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        socket.read_to_end(&mut answer),
    )
    .await
    .expect("the server closes the connection after a request it cannot parse")
    .ok();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (
        status,
        format!("{}\r\n", head.to_ascii_lowercase()),
        body.to_owned(),
    )
}

fn assert_raw_problem((status, head, body): &(u16, String, String), want: u16, code: &str) {
    assert_eq!(*status, want, "{head}\n\n{body}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(
        head.contains(&format!("content-length: {}\r\n", body.len())),
        "{head}"
    );
    let problem: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["status"], want, "{body}");
    assert_eq!(problem["code"], code, "{body}");
}

/// Security review 2, finding 8, and contract v3: a request hyper cannot
/// parse (too many header fields, a head over its buffer, a garbage request
/// line) is answered with problem+json too, never a bare status.
pub async fn unparsable_requests(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let mut many = String::from("GET /api/health HTTP/1.1\r\nhost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-field-{i}: a\r\n"));
    }
    many.push_str("\r\n");
    assert_raw_problem(
        &raw_exchange(&app, many.as_bytes()).await,
        431,
        "headers_too_large",
    );
    let huge = format!(
        "GET /api/health HTTP/1.1\r\nhost: x\r\nx-padding: {}\r\n\r\n",
        "a".repeat(600 * 1024)
    );
    assert_raw_problem(
        &raw_exchange(&app, huge.as_bytes()).await,
        431,
        "headers_too_large",
    );
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        b"G\x01T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ] {
        assert_raw_problem(&raw_exchange(&app, garbage).await, 400, "bad_request");
    }
    // 100 fields are within hyper's limit, and the edge answers normally.
    let mut fine = String::from("GET /api/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    for i in 0..90 {
        fine.push_str(&format!("x-field-{i}: a\r\n"));
    }
    fine.push_str("\r\n");
    let (status, ..) = raw_exchange(&app, fine.as_bytes()).await;
    assert_eq!(status, 200);
}

pub async fn malformed_bodies(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    for path in ["/api/register", "/api/login"] {
        for body in [
            "{",
            "not json",
            "[]",
            "null",
            "{\"username\": \"alice\"}",
            "{\"username\": 1, \"password\": 2}",
        ] {
            let r = app.post(path).body("application/json", body).send().await;
            r.assert_problem(400, "bad_request");
        }
        app.post(path)
            .body("text/plain", "username=alice")
            .send()
            .await
            .assert_problem(400, "bad_request");
        app.post(path)
            .send()
            .await
            .assert_problem(400, "bad_request");
    }
    let r = app
        .post("/api/login")
        .json(&json!({"username": ["alice"], "password": PASSWORD}))
        .send()
        .await;
    r.assert_problem(400, "bad_request");
    // Security review, finding 5: a detail never repeats a submitted value.
    for (path, body) in [
        (
            "/api/login",
            json!({"username": "alice", "password": {"x": "hunter2hunter2"}}),
        ),
        (
            "/api/login",
            json!({"username": {"x": "hunter2hunter2"}, "password": "x"}),
        ),
        (
            "/api/register",
            json!({"username": "alice", "password": ["hunter2hunter2"]}),
        ),
        (
            "/api/login",
            json!({"username": "alice", "password": 1234567890123_i64}),
        ),
    ] {
        let r = app.post(path).json(&body).send().await;
        r.assert_problem(400, "bad_request");
        for secret in ["hunter", "1234567890123"] {
            assert!(!r.text.contains(secret), "{path} echoed input: {}", r.text);
        }
    }
    let r = app.post("/api/logout?scope=hunter2hunter2").send().await;
    assert!(
        !r.text.contains("hunter2"),
        "a query value was echoed: {}",
        r.text
    );
}

pub async fn unknown_paths_and_methods(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    app.get("/api/nope")
        .send()
        .await
        .assert_problem(404, "not_found");
    app.get("/nope")
        .send()
        .await
        .assert_problem(404, "not_found");
    app.get("/").send().await.assert_problem(404, "not_found");
    // 405 names what is allowed (RFC 9110), from the OpenAPI document.
    for (method, path, allow) in [
        (Method::GET, "/api/login", "POST"),
        (Method::PUT, "/api/register", "POST"),
        (Method::DELETE, "/api/protected", "GET"),
        (Method::POST, "/api/sessions", "GET"),
        (
            Method::GET,
            "/api/sessions/6c1f1b8e-2f0a-4c1e-9d7a-0e8b5a1c2d3e",
            "DELETE",
        ),
        (Method::POST, "/api/openapi.json", "GET"),
    ] {
        let r = app.request(method.clone(), path).send().await;
        r.assert_problem(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}

pub async fn request_ids_and_headers(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let r = app
        .get("/api/health")
        .header("x-request-id", "abc-123")
        .send()
        .await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    let r = app.get("/api/health").send().await;
    assert!(uuid::Uuid::parse_str(r.header("x-request-id").unwrap()).is_ok());
    let r = app
        .get("/api/health")
        .header("x-request-id", "bad id with spaces")
        .send()
        .await;
    assert!(uuid::Uuid::parse_str(r.header("x-request-id").unwrap()).is_ok());
    let r = app.get("/api/nope").send().await;
    assert!(r.header("x-request-id").is_some());
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

pub async fn cors_only_for_listed_origins(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            cors_origins: vec!["https://app.example".into()],
            ..Config::default()
        },
    )
    .await;
    let r = app
        .get("/api/health")
        .header("origin", "https://app.example")
        .send()
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let r = app
        .get("/api/health")
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = app
        .request(Method::OPTIONS, "/api/login")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
}

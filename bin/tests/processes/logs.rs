//! The real `authd serve` binary's logs over a full scenario: JSON lines,
//! request ids, audit events, and no secret in any of them.
//!
//! The binary runs with `LOG_FORMAT=json` and `RUST_LOG=trace` (far more than
//! production logs), on a temporary SQLite database and a fresh 2048-bit
//! key, its stdout and stderr captured in one file. The scenario goes over
//! real HTTP and a real WebSocket: register, a wrong password, login, a
//! protected call, refresh, grace replay, socket + reauth, sessions, logout,
//! reuse detection. Then every captured line must be a JSON object, none may
//! contain a password, a token (whole, its signature alone, or its
//! header+payload), a cookie or `Authorization` value, or a line of the
//! private key; request ids must tie log lines to responses; the `audit`
//! target must carry the security events with the client's address and
//! user agent.
//!
//! Needs openssl: under `CI` a missing one fails the test; elsewhere the
//! test is ignored (`tests/missing_tools.rs`).
//! `LOGS_KEEP=1` keeps the temporary directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use integration_tests::client::refresh_cookie_in;
use integration_tests::process::{self, Proc};
use integration_tests::ws_client::{Connect, Incoming, WsClient};
use serde_json::{Value, json};

const PASSWORD: &str = "Log-Test-Passphrase-71";
const WRONG_PASSWORD: &str = "Wrong-Passphrase-Guess-38";
const USER_AGENT: &str = "authd-logs-test/1.0";

/// The binary under test, with its log file and temporary directory.
struct Server {
    proc: Proc,
    dir: PathBuf,
    api: SocketAddr,
    ws: SocketAddr,
    private_pem: String,
    keep: bool,
}

impl Server {
    fn start() -> Result<Self> {
        let dir = process::temp_dir("authd-logs")?;
        let (private, public) = process::write_rsa_keys(&dir.join("keys"), 2048)?;
        let private_pem = std::fs::read_to_string(&private)?;
        let ports = process::free_ports(2);
        let api = SocketAddr::from(([127, 0, 0, 1], ports[0]));
        let ws = SocketAddr::from(([127, 0, 0, 1], ports[1]));
        let mut cmd = Command::new(crate::authd());
        cmd.arg("serve")
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "trace")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.join("authd.db").display()),
            )
            .env("PRIVATE_KEY_PATH", &private)
            .env("PUBLIC_KEY_PATH", &public)
            .env("COOKIE_SECURE", "false")
            .env("ALLOW_REGISTRATION", "true")
            .env("API_ADDR", api.to_string())
            .env("WS_ADDR", ws.to_string());
        let mut proc = Proc::spawn("authd serve", cmd, dir.join("authd.log"))?;
        process::wait_listening(&mut proc, api.port(), Duration::from_secs(30))?;
        process::wait_listening(&mut proc, ws.port(), Duration::from_secs(10))?;
        Ok(Self {
            proc,
            dir,
            api,
            ws,
            private_pem,
            keep: false,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.proc.stop();
        if self.keep || std::thread::panicking() || std::env::var_os("LOGS_KEEP").is_some() {
            eprintln!("logs test: files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Everything the client saw that must never be logged.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        assert!(!value.is_empty(), "empty secret {what}");
        self.0.push((what.to_owned(), value.to_owned()));
    }

    /// A JWT: the whole token, its signature alone, its header+payload.
    fn add_jwt(&mut self, what: &str, token: &str) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{what} is not a JWS compact token");
        self.add(what, token);
        self.add(&format!("{what} signature"), parts[2]);
        self.add(
            &format!("{what} header+payload"),
            &format!("{}.{}", parts[0], parts[1]),
        );
        self.add(&format!("{what} payload"), parts[1]);
    }
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn login(
    http: &reqwest::Client,
    server: &Server,
    username: &str,
    secrets: &mut Secrets,
    request_id: Option<&str>,
) -> Result<(String, String)> {
    let mut req = http
        .post(server.url("/api/login"))
        .json(&json!({ "username": username, "password": PASSWORD }));
    if let Some(id) = request_id {
        req = req.header("X-Request-Id", id);
    }
    let resp = req.send().await?;
    ensure!(resp.status() == 200, "login: {}", resp.status());
    let (cookie, raw) =
        refresh_cookie_in(resp.headers()).context("login sets no refresh cookie")?;
    secrets.add("login Set-Cookie", &raw);
    secrets.add("login refresh token", &cookie);
    let body: Value = resp.json().await?;
    let access = body["accessToken"]
        .as_str()
        .context("accessToken")?
        .to_owned();
    secrets.add_jwt("login access token", &access);
    secrets.add("Authorization header", &format!("Bearer {access}"));
    Ok((access, cookie))
}

/// `POST /api/refresh` with the cookie; the status, the new access token and
/// the cookie it sets (both when 200).
async fn refresh(
    http: &reqwest::Client,
    server: &Server,
    cookie: &str,
    secrets: &mut Secrets,
) -> Result<(u16, Option<String>, Option<String>)> {
    let resp = http
        .post(server.url("/api/refresh"))
        .header("Cookie", format!("refreshToken={cookie}"))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let set = refresh_cookie_in(resp.headers());
    if let Some((value, raw)) = &set {
        secrets.add("refresh Set-Cookie", raw);
        if !value.is_empty() {
            secrets.add("refreshed refresh token", value);
        }
    }
    let body: Value = resp.json().await?;
    let access = body["accessToken"].as_str().map(str::to_owned);
    if let Some(access) = &access {
        secrets.add_jwt("refreshed access token", access);
    }
    Ok((status, access, set.map(|(value, _)| value)))
}

async fn open_ws(server: &Server, token: &str) -> Result<WsClient> {
    let path = format!("/ws?token={token}");
    Connect::with_token(&path)
        .header("User-Agent", USER_AGENT)
        .open(server.ws)
        .await?
        .map_err(|refused| anyhow::anyhow!("websocket refused: {refused:?}"))
}

/// The scenario; returns the secrets, the client-chosen request id and the
/// `x-request-id` the server gave another request.
async fn scenario(server: &Server) -> Result<(Secrets, String, String)> {
    let mut secrets = Secrets::default();
    secrets.add("password", PASSWORD);
    secrets.add("wrong password", WRONG_PASSWORD);
    let http = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(Duration::from_secs(15))
        .build()?;
    let username = format!("logs_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);

    let resp = http
        .post(server.url("/api/register"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await?;
    ensure!(resp.status() == 201, "register: {}", resp.status());

    let resp = http
        .post(server.url("/api/login"))
        .json(&json!({ "username": username, "password": WRONG_PASSWORD }))
        .send()
        .await?;
    ensure!(resp.status() == 401, "wrong password: {}", resp.status());

    // Login with the client's own request id: it must be kept.
    let client_id = format!("client-{}", uuid::Uuid::new_v4().simple());
    let (access1, cookie1) =
        login(&http, server, &username, &mut secrets, Some(&client_id)).await?;

    let resp = http
        .get(server.url("/api/protected"))
        .bearer_auth(&access1)
        .send()
        .await?;
    ensure!(resp.status() == 200, "protected: {}", resp.status());
    let server_id = header(&resp, "x-request-id");
    ensure!(!server_id.is_empty(), "no x-request-id on a response");

    let mut socket = open_ws(server, &access1).await?;
    let hello = socket.recv_json(Duration::from_secs(5)).await?;
    ensure!(hello["type"] == "connected", "{hello}");

    // Rotation, then the grace replay of the rotated token.
    let (status, access2, cookie2) = refresh(&http, server, &cookie1, &mut secrets).await?;
    ensure!(status == 200, "refresh: {status}");
    let (access2, cookie2) = (access2.context("access")?, cookie2.context("cookie")?);
    ensure!(cookie2 != cookie1, "refresh did not rotate");
    let (status, _, _) = refresh(&http, server, &cookie1, &mut secrets).await?;
    ensure!(status == 200, "grace replay: {status}");

    socket
        .send_json(&json!({ "type": "reauth", "access": access2 }))
        .await?;
    let reauth = socket.recv_json(Duration::from_secs(5)).await?;
    ensure!(reauth["type"] == "reauth_success", "{reauth}");

    let resp = http
        .get(server.url("/api/sessions"))
        .bearer_auth(&access2)
        .send()
        .await?;
    ensure!(resp.status() == 200, "sessions: {}", resp.status());

    let resp = http
        .post(server.url("/api/logout"))
        .header("Cookie", format!("refreshToken={cookie2}"))
        .bearer_auth(&access2)
        .send()
        .await?;
    ensure!(resp.status() == 204, "logout: {}", resp.status());
    if let Some((_, raw)) = refresh_cookie_in(resp.headers()) {
        secrets.add("logout Set-Cookie", &raw);
    }
    // The socket of the revoked session is closed (4003).
    loop {
        match socket.recv(Duration::from_secs(3)).await? {
            Incoming::Closed(code) => {
                ensure!(code == Some(4003), "close code {code:?}");
                break;
            }
            Incoming::Json(_) | Incoming::Text(_) => {}
        }
    }

    // Reuse: a new family, two rotations, then its first token again.
    let (_, first) = login(&http, server, &username, &mut secrets, None).await?;
    let (status, _, second) = refresh(&http, server, &first, &mut secrets).await?;
    ensure!(status == 200, "refresh: {status}");
    let second = second.context("cookie")?;
    let (status, _, _) = refresh(&http, server, &second, &mut secrets).await?;
    ensure!(status == 200, "refresh: {status}");
    let (status, _, _) = refresh(&http, server, &first, &mut secrets).await?;
    ensure!(status == 401, "reuse of a grandparent token: {status}");
    Ok((secrets, client_id, server_id))
}

/// Private key PEM body lines (base64), long enough to be unambiguous.
fn pem_body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect()
}

/// The value of a field, looked up in the event and then its spans.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line.get(name)
        .or_else(|| line.get("fields").and_then(|f| f.get(name)))
        .or_else(|| line.get("span").and_then(|s| s.get(name)))
        .or_else(|| {
            line.get("spans")?
                .as_array()?
                .iter()
                .find_map(|s| s.get(name))
        })
}

fn check_logs(log: &str, secrets: &Secrets, private_pem: &str, ids: (&str, &str)) -> Result<()> {
    let (client_id, server_id) = ids;
    let mut lines = Vec::new();
    for (n, line) in log.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("log line {} is not JSON: {line}", n + 1))?;
        ensure!(
            value.is_object(),
            "log line {} is not an object: {line}",
            n + 1
        );
        lines.push(value);
    }
    ensure!(lines.len() > 20, "only {} log lines", lines.len());

    for (what, secret) in &secrets.0 {
        if let Some(line) = log.lines().find(|l| l.contains(secret.as_str())) {
            bail!("the {what} reached the log: {line}");
        }
    }
    for key_line in pem_body_lines(private_pem) {
        ensure!(
            !log.contains(&key_line),
            "a private key line reached the log"
        );
    }
    for marker in [
        "PRIVATE KEY",
        "Bearer ey",
        "refreshToken=",
        "token=",
        "$argon2",
    ] {
        if let Some(line) = log.lines().find(|l| l.contains(marker)) {
            bail!("{marker:?} reached the log: {line}");
        }
    }

    // The client's request id: kept, on the lines of that request.
    let with_client_id: Vec<&Value> = lines
        .iter()
        .filter(|l| field(l, "request_id").and_then(Value::as_str) == Some(client_id))
        .collect();
    ensure!(
        with_client_id.iter().any(|l| {
            l["message"] == "request done"
                && field(l, "path").and_then(Value::as_str) == Some("/api/login")
                && field(l, "status").and_then(Value::as_u64) == Some(200)
        }),
        "no `request done` line of the login with the client's request id {client_id}"
    );
    ensure!(
        with_client_id
            .iter()
            .any(|l| l["target"] == "audit" && l["kind"] == "login_succeeded"),
        "the login's audit line does not carry the request id"
    );
    // The id the server chose for another request is the one it logged.
    ensure!(
        lines.iter().any(|l| {
            field(l, "request_id").and_then(Value::as_str) == Some(server_id)
                && field(l, "path").and_then(Value::as_str) == Some("/api/protected")
        }),
        "the x-request-id {server_id} of /api/protected is not in the log"
    );
    // Every request line has its fields.
    let done: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request done")
        .collect();
    ensure!(done.len() >= 12, "only {} request lines", done.len());
    for line in &done {
        for name in ["request_id", "method", "path", "status", "elapsed_ms"] {
            ensure!(
                field(line, name).is_some(),
                "request line without {name}: {line}"
            );
        }
        ensure!(line["timestamp"].is_string() && line["level"].is_string());
    }

    // Security events on the `audit` target, with the client.
    let audit: Vec<&Value> = lines.iter().filter(|l| l["target"] == "audit").collect();
    for kind in [
        "login_succeeded",
        "login_failed",
        "logout",
        "reuse_detected",
    ] {
        let line = audit
            .iter()
            .find(|l| l["kind"] == kind)
            .with_context(|| format!("no audit line for {kind}"))?;
        ensure!(line["client_ip"] == "127.0.0.1", "{kind}: {line}");
        ensure!(line["user_agent"] == USER_AGENT, "{kind}: {line}");
    }
    let reuse = audit
        .iter()
        .find(|l| l["kind"] == "reuse_detected")
        .context("reuse")?;
    ensure!(reuse["level"] == "WARN", "{reuse}");
    ensure!(
        reuse["session"].is_string() && reuse["user"].is_string(),
        "{reuse}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(missing = "openssl", ignore = "needs openssl")]
async fn full_scenario_logs_json_with_request_ids_and_no_secrets() -> Result<()> {
    const TEST: &str = "full_scenario_logs_json_with_request_ids_and_no_secrets";
    process::require_tools(TEST, &["openssl"]);
    let mut server = Server::start()?;
    let outcome = scenario(&server).await;
    // Stop first: whatever the shutdown logs is checked too.
    server.proc.stop();
    let log = server.proc.log_text();
    server.keep = true;
    let (secrets, client_id, server_id) = outcome
        .with_context(|| format!("scenario failed; log tail:\n{}", server.proc.log_tail()))?;
    check_logs(
        &log,
        &secrets,
        &server.private_pem,
        (&client_id, &server_id),
    )
    .with_context(|| format!("log in {}", server.proc.log.display()))?;
    server.keep = false;
    eprintln!(
        "logs test: {} log lines, {} secret values checked",
        log.lines().count(),
        secrets.0.len()
    );
    Ok(())
}

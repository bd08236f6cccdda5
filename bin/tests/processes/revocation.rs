//! Revocation through faults, with real processes: `authd api` and `authd ws`
//! on a real PostgreSQL, some of them behind a TCP proxy the test controls
//! (it freezes flows without closing them), and separate processes on one
//! SQLite file.
//!
//! The contract's targets: a revocation reaches every process within 1 s;
//! after a fault between a process and the database, within 3 s of the
//! process reaching the database again, and nothing revoked meanwhile is
//! forgotten. Each check: the family's socket on the affected process closes
//! with `4003`, and its access token is refused there with `401`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use adapters::persistence::{Database, PgRevocationBus, SeaSessionStore, SeaUserRepository};
use application::ports::{Clock, RevocationBus, SessionStore, UserRepository};
use domain::{
    Family, PasswordHash, RevokeReason, Session, SessionId, Timestamp, TokenHash, TokenPolicy,
    User, UserId, Username,
};
use integration_tests::client::{ApiClient, SignedIn, refresh_cookie_in};
use integration_tests::fault_proxy::FaultProxy;
use integration_tests::postgres::{PostgresServer, fresh_postgres_url};
use integration_tests::process::{self, Proc};
use integration_tests::ws_client::{Connect, Incoming, WsClient};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

mod account_deletion;
mod catch_up;
mod database_outage;
mod key_rotation;
mod set_password;
mod shared_port;
mod shorter_lifetime;
mod two_factor;

/// The processes of these tests share two cores: one test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The fault target, plus what a loaded CI machine may add to it.
const AFTER_FAULT: Duration = Duration::from_millis(3500);

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme_user, rest) = url.split_once('@').expect("a URL with a user");
    let (_, path) = rest.split_once('/').expect("a URL with a database");
    format!("{scheme_user}@{addr}/{path}")
}

fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once('@').expect("user").1;
    rest.split_once('/')
        .expect("database")
        .0
        .parse()
        .expect("host:port")
}

/// One `authd api` or `authd ws` process.
struct Node {
    name: String,
    proc: Proc,
    addr: SocketAddr,
}

struct Keys {
    dir: PathBuf,
    private: PathBuf,
    public: PathBuf,
}

impl Keys {
    fn new() -> Self {
        let dir = process::temp_dir("authd-revocation").expect("temp dir");
        let (private, public) =
            process::write_rsa_keys(&dir.join("keys"), 2048).expect("openssl keys");
        Self {
            dir,
            private,
            public,
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `authd <command>` (`api` or `ws`) on `database_url`; returns once it listens.
fn spawn(
    name: &str,
    command: &str,
    database_url: &str,
    keys: &Keys,
    env: &[(&str, &str)],
) -> anyhow::Result<Node> {
    let (proc, port) = spawn_unchecked(name, command, database_url, keys, env)?;
    let mut node = Node {
        name: name.to_owned(),
        proc,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    process::wait_listening(&mut node.proc, port, Duration::from_secs(60))?;
    Ok(node)
}

fn spawn_unchecked(
    name: &str,
    command: &str,
    database_url: &str,
    keys: &Keys,
    env: &[(&str, &str)],
) -> anyhow::Result<(Proc, u16)> {
    let ports = process::free_ports(2);
    let (api, ws) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    // The caller's environment last: it may name the addresses itself.
    let mut all = vec![("API_ADDR", api.as_str()), ("WS_ADDR", ws.as_str())];
    all.extend_from_slice(env);
    let cmd = authd(command, database_url, keys, &all);
    let proc = Proc::spawn(name, cmd, keys.dir.join(format!("{name}.log")))?;
    let port = if command == "ws" { ports[1] } else { ports[0] };
    Ok((proc, port))
}

/// `authd <args>` on `database_url` with `keys`, the environment `env` on top.
fn authd(args: &str, database_url: &str, keys: &Keys, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(crate::authd());
    cmd.args(args.split_whitespace())
        .current_dir(&keys.dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", database_url)
        .env("PRIVATE_KEY_PATH", &keys.private)
        .env("PUBLIC_KEY_PATH", &keys.public)
        .env("COOKIE_SECURE", "false");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Registers and logs in `username` on `api`.
async fn sign_in(api: &Node, username: &str) -> SignedIn {
    ApiClient::new(format!("http://{}", api.addr))
        .signed_in(username)
        .await
}

/// The refresh token a response sets, if any.
fn refresh_cookie(r: &reqwest::Response) -> Option<String> {
    refresh_cookie_in(r.headers()).map(|(value, _)| value)
}

/// `POST /api/logout` with the refresh cookie, retried while the database
/// does not answer yet (after a restart).
async fn logout(api: &Node, login: &SignedIn) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http()
            .post(format!("http://{}/api/logout", api.addr))
            .header("cookie", format!("refreshToken={}", login.refresh))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 204 => return,
            other => assert!(
                Instant::now() < deadline,
                "logout on {} failed: {other:?}",
                api.name
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn protected_status(api: &Node, access: &str) -> u16 {
    http()
        .get(format!("http://{}/api/protected", api.addr))
        .bearer_auth(access)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn health(api: &Node) -> (u16, Value) {
    let r = http()
        .get(format!("http://{}/api/health", api.addr))
        .send()
        .await
        .expect("health");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn open_socket(ws: &Node, access: &str) -> WsClient {
    let path = format!("/ws?token={access}");
    let mut socket = Connect::with_token(&path)
        .open(ws.addr)
        .await
        .expect("connect")
        .unwrap_or_else(|refused| panic!("{} refused the socket: {refused:?}", ws.name));
    // The welcome.
    socket
        .recv_json(Duration::from_secs(5))
        .await
        .expect("welcome");
    socket
}

/// Waits until the socket closes (skipping the `session_revoked` error that
/// precedes the close); returns its code and when it closed.
async fn closed(socket: &mut WsClient, within: Duration) -> (Option<u16>, Instant) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match socket.recv(left).await {
            Ok(Incoming::Closed(code)) => return (code, Instant::now()),
            Ok(_) => {}
            Err(e) => panic!("no close within {within:?}: {e}"),
        }
    }
}

/// Waits until `api` refuses `access`; returns when it did.
async fn refused(api: &Node, access: &str, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if protected_status(api, access).await == 401 {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{} still accepts the revoked token after {within:?}:\n{}",
            api.name,
            api.proc.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two REST and two WebSocket processes; `api_b` and `ws_b` reach the
/// database through the proxy.
struct Cluster {
    api_a: Node,
    api_b: Node,
    ws_a: Node,
    ws_b: Node,
    _keys: Keys,
}

impl Cluster {
    fn start(direct: &str, proxied: &str) -> anyhow::Result<Self> {
        let keys = Keys::new();
        // The first one migrates; the others find the schema.
        let api_a = spawn("api-a", "api", direct, &keys, &[])?;
        let api_b = spawn("api-b", "api", proxied, &keys, &[])?;
        let ws_a = spawn("ws-a", "ws", direct, &keys, &[])?;
        let ws_b = spawn("ws-b", "ws", proxied, &keys, &[])?;
        Ok(Self {
            api_a,
            api_b,
            ws_a,
            ws_b,
            _keys: keys,
        })
    }

    /// A fresh user with a socket on each WebSocket process, accepted by both REST processes.
    async fn user(&self, name: &str) -> (SignedIn, WsClient, WsClient) {
        let login = sign_in(&self.api_a, name).await;
        for api in [&self.api_a, &self.api_b] {
            assert_eq!(
                protected_status(api, &login.access).await,
                200,
                "{}",
                api.name
            );
        }
        let a = open_socket(&self.ws_a, &login.access).await;
        let b = open_socket(&self.ws_b, &login.access).await;
        (login, a, b)
    }

    /// Asserts that every process has acted on the revocation of `login`
    /// within `within` of `since`; says how long each took.
    async fn assert_revoked(
        &self,
        fault: &str,
        login: &SignedIn,
        mut sockets: (WsClient, WsClient),
        since: Instant,
        within: Duration,
    ) {
        let budget = within + Duration::from_secs(2);
        let (code_a, at_a) = closed(&mut sockets.0, budget).await;
        let (code_b, at_b) = closed(&mut sockets.1, budget).await;
        assert_eq!(code_a, Some(4003), "{fault}: ws-a close code");
        assert_eq!(code_b, Some(4003), "{fault}: ws-b close code");
        let rest_a = refused(&self.api_a, &login.access, budget).await;
        let rest_b = refused(&self.api_b, &login.access, budget).await;
        for (what, at) in [
            ("ws-a", at_a),
            ("ws-b", at_b),
            ("api-a", rest_a),
            ("api-b", rest_b),
        ] {
            let took = at.saturating_duration_since(since);
            eprintln!("{fault}: {what} acted on the revocation {took:?} after the mark");
            assert!(
                took <= within,
                "{fault}: {what} took {took:?} (target {within:?})\nws-b:\n{}\napi-b:\n{}",
                self.ws_b.proc.log_tail(),
                self.api_b.proc.log_tail()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn revocations_reach_every_process_through_faults() {
    let _serial = SERIAL.lock().await;
    let server = PostgresServer::start().await;
    let direct = server.fresh_database_url().await;
    let proxy = FaultProxy::start(upstream(&direct)).await.expect("proxy");
    let proxied = via(&direct, proxy.addr());
    let cluster = Cluster::start(&direct, &proxied).expect("four processes");

    // Normal operation: within 1 s everywhere.
    let (login, a, b) = cluster.user("normal").await;
    let mark = Instant::now();
    logout(&cluster.api_a, &login).await;
    cluster
        .assert_revoked("normal", &login, (a, b), mark, Duration::from_secs(1))
        .await;

    // Every flow of the proxied processes dies silently; new flows work, so
    // they reach the database again at once.
    let (login, a, b) = cluster.user("frozen").await;
    proxy.freeze_flows();
    let mark = Instant::now();
    logout(&cluster.api_a, &login).await;
    cluster
        .assert_revoked("silently dead flows", &login, (a, b), mark, AFTER_FAULT)
        .await;

    // An outage of the proxied processes: revoked meanwhile, delivered after.
    let (login, a, b) = cluster.user("outage").await;
    proxy.start_outage();
    logout(&cluster.api_a, &login).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (status, body) = health(&cluster.api_b).await;
    assert_eq!(status, 503, "api-b during the outage: {body}");
    assert_eq!(body["revocations"], "down", "{body}");
    assert_eq!(
        protected_status(&cluster.api_b, &login.access).await,
        200,
        "api-b cannot have heard yet (the test would prove nothing)"
    );
    proxy.heal();
    let mark = Instant::now();
    cluster
        .assert_revoked("outage", &login, (a, b), mark, AFTER_FAULT)
        .await;
    let (status, body) = health(&cluster.api_b).await;
    assert_eq!(status, 200, "api-b after the outage: {body}");
    assert!(
        cluster
            .ws_b
            .proc
            .log_text()
            .contains("revocation feed: the listening connection is dead; replacing it"),
        "ws-b warns when it replaces a dead connection"
    );

    // The database ends every listening connection.
    let (login, a, b) = cluster.user("terminated").await;
    let killed = psql(
        &direct,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'authd-revocation-feed'",
    )
    .await;
    // Four live ones, and those of the flows the proxy froze (their
    // backends never learnt that the flow died).
    let killed: u32 = killed.trim().parse().expect("a count");
    assert!(
        killed >= 4,
        "one listening connection per process at least: {killed}"
    );
    let mark = Instant::now();
    logout(&cluster.api_a, &login).await;
    cluster
        .assert_revoked("listeners terminated", &login, (a, b), mark, AFTER_FAULT)
        .await;

    // The database restarts.
    let (login, a, b) = cluster.user("restart").await;
    server.restart().await;
    let mark = Instant::now();
    logout(&cluster.api_a, &login).await;
    cluster
        .assert_revoked("database restart", &login, (a, b), mark, AFTER_FAULT)
        .await;
    drop(proxy);
}

/// Runs one statement with `psql` against `url`; returns its unaligned output.
async fn psql(url: &str, sql: &str) -> String {
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-t", "-A", url, "-c", sql])
        .output()
        .await
        .expect("psql");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn a_process_that_cannot_load_the_revoked_sessions_serves_no_token() {
    let _serial = SERIAL.lock().await;
    let direct = fresh_postgres_url().await;
    let keys = Keys::new();
    let api_a = spawn("api-a", "api", &direct, &keys, &[]).expect("api-a");
    let login = sign_in(&api_a, "early").await;
    logout(&api_a, &login).await;

    // The database is unreachable for the new process at start.
    let proxy = FaultProxy::start(upstream(&direct)).await.expect("proxy");
    proxy.start_outage();
    let (mut proc, port) =
        spawn_unchecked("api-late", "api", &via(&direct, proxy.addr()), &keys, &[]).expect("spawn");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(proc.exited().is_none(), "it waits:\n{}", proc.log_tail());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens before the revoked sessions are loaded"
    );
    assert!(
        proc.log_text().contains("not serving yet"),
        "it says why:\n{}",
        proc.log_tail()
    );

    proxy.heal();
    let mut late = Node {
        name: "api-late".into(),
        proc,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    process::wait_listening(&mut late.proc, port, Duration::from_secs(30)).expect("serves");
    // Its very first answer refuses the token revoked before it started.
    assert_eq!(protected_status(&late, &login.access).await, 401);
}

/// `POST /api/refresh` with `refresh`: the status, the problem code and the
/// next refresh token.
async fn rotate(api: &Node, refresh: &str) -> (u16, Value, Option<String>) {
    let r = http()
        .post(format!("http://{}/api/refresh", api.addr))
        .header("cookie", format!("refreshToken={refresh}"))
        .send()
        .await
        .expect("refresh");
    let status = r.status().as_u16();
    let next = refresh_cookie(&r);
    (status, r.json().await.unwrap_or(Value::Null), next)
}

/// Reuse detected by an API process revokes the family on the WebSocket
/// process too: its socket gets `session_revoked` then `4003` within 1 s,
/// and the token is refused at its handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn reuse_detected_by_the_api_closes_the_socket_held_by_the_ws_process() {
    let _serial = SERIAL.lock().await;
    let url = fresh_postgres_url().await;
    let keys = Keys::new();
    let api = spawn("api", "api", &url, &keys, &[]).expect("api");
    let ws = spawn("ws", "ws", &url, &keys, &[]).expect("ws");
    let login = sign_in(&api, "replayed").await;
    let (status, _, second) = rotate(&api, &login.refresh).await;
    assert_eq!(status, 200);
    let (status, _, _) = rotate(&api, &second.expect("rotated cookie")).await;
    assert_eq!(status, 200);
    let mut socket = open_socket(&ws, &login.access).await;

    let mark = Instant::now();
    let (status, problem, _) = rotate(&api, &login.refresh).await;
    assert_eq!((status, &problem["code"]), (401, &json!("refresh_reused")));
    let error = socket
        .recv_json(Duration::from_secs(1))
        .await
        .expect("error");
    assert_eq!(error["payload"]["code"], "session_revoked", "{error}");
    let (code, at) = closed(&mut socket, Duration::from_secs(1)).await;
    assert_eq!(code, Some(4003));
    let took = at.saturating_duration_since(mark);
    assert!(took <= Duration::from_secs(1), "ws took {took:?}");
    let refused = Connect::with_token(&format!("/ws?token={}", login.access))
        .open(ws.addr)
        .await
        .expect("connect")
        .expect_err("a revoked token is refused at the handshake");
    assert_eq!(refused.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_processes_on_one_sqlite_file_hear_each_other() {
    let _serial = SERIAL.lock().await;
    let keys = Keys::new();
    let url = format!("sqlite://{}", keys.dir.join("authd.db").display());
    let api_a = spawn("api-a", "api", &url, &keys, &[]).expect("api-a");
    let api_b = spawn("api-b", "api", &url, &keys, &[]).expect("api-b");
    let ws = spawn("ws", "ws", &url, &keys, &[]).expect("ws");
    let login = sign_in(&api_a, "shared").await;
    assert_eq!(protected_status(&api_b, &login.access).await, 200);
    let mut socket = open_socket(&ws, &login.access).await;
    let mark = Instant::now();
    logout(&api_a, &login).await;
    let (code, at) = closed(&mut socket, Duration::from_secs(3)).await;
    assert_eq!(code, Some(4003));
    let rest = refused(&api_b, &login.access, Duration::from_secs(3)).await;
    for (what, at) in [("ws", at), ("api-b", rest)] {
        let took = at.saturating_duration_since(mark);
        eprintln!("sqlite: {what} acted on the revocation {took:?} after the logout");
        assert!(took <= Duration::from_secs(1), "{what} took {took:?}");
    }
}

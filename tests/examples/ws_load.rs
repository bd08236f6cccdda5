//! Load measurement of the WebSocket service, on loopback only.
//!
//! `cargo run -p integration-tests --example ws_load [--release] -- [TOTAL]`
//!
//! The tool starts itself a second time as the server (`ws_load serve`: the
//! real `adapters::ws::serve`, real RS256 tokens, users and sessions in a
//! fresh SQLite file), so that the server's resident memory is its own. It then, as the
//! client:
//! 1. opens 1,000 authenticated connections (connections accepted per second),
//!    and reads the server's RSS per idle connection;
//! 2. runs echo round trips on those 1,000 for 10 s (round trips per second, p99);
//! 3. opens more, up to TOTAL (default 18,000; one process may hold 20,000
//!    descriptors), 10,000 of them for one user, and reads the RSS again;
//! 4. logs that user out and times the last of their 10,000 sockets closing.
//!
//! Client sockets are spread over source addresses 127.0.0.2-127.0.0.200.
//!
//! `ws_load hold N SECONDS` instead starts its server, opens N authenticated
//! idle connections (reading them, so server pings are answered), prints
//! `CONNECTED` with the count, the time it took and the server's RSS, holds
//! them for SECONDS, prints `HELD`, and exits. `tests/load/hundred_k.sh` runs
//! six of these side by side to hold 100,000 connections at once.
//!
//! `ws_load connect ADDR TOKEN N SECONDS [deflate]` is the client half
//! alone, against a server already running (the real `authd ws`): N
//! sockets with TOKEN (offering permessage-deflate with `deflate`), held
//! SECONDS while answering pings; then `HELD`, and it waits up to 60 s for
//! the server to close them (a logout), printing `CLOSED` with the codes.
//! `tests/load/hundred_k_authd.sh` runs six against six `authd ws` on one
//! port (`WS_REUSE_PORT`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::crypto::jwt::{JwtSigner, JwtVerifier};
use adapters::crypto::keys::PrivateKey;
use adapters::ws::{WsConfig, serve};
use application::use_cases::LogoutScope;
use application::{AuthConfig, ClientInfo};
use futures_util::StreamExt;
use integration_tests::ws_client::{Connect, Incoming, WsClient};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PASSWORD: &str = "load test password";
const CONNECT_CONCURRENCY: usize = 256;
const LOGOUT_USER_CONNECTIONS: usize = 10_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.get(1).map(String::as_str) == Some("serve") {
        runtime.block_on(server())
    } else if args.get(1).map(String::as_str) == Some("connect") {
        let (Some(addr), Some(token)) = (args.get(2), args.get(3)) else {
            anyhow::bail!("usage: ws_load connect ADDR TOKEN [COUNT] [SECONDS] [deflate]");
        };
        let count = args
            .get(4)
            .and_then(|a| a.parse().ok())
            .unwrap_or(17_000_usize);
        let seconds = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(120_u64);
        let deflate = args.get(6).map(String::as_str) == Some("deflate");
        runtime.block_on(connect(
            addr.parse()?,
            token,
            count.clamp(1, 19_000),
            seconds.clamp(1, 3_600),
            deflate,
        ))
    } else if args.get(1).map(String::as_str) == Some("hold") {
        let count = args
            .get(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(17_000_usize);
        let seconds = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(60_u64);
        runtime.block_on(hold(count.clamp(1, 19_000), seconds.clamp(1, 3_600)))
    } else {
        let total = args
            .get(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(18_000_usize);
        runtime.block_on(client(total.clamp(1_000, 19_000)))
    }
}

// ---------------------------------------------------------------- server side

/// The service on loopback; commands on stdin (`login NAME`, `logout NAME`, `quit`).
async fn server() -> anyhow::Result<()> {
    let key = tokio::task::spawn_blocking(|| PrivateKey::generate(2048)).await??;
    let signer = Arc::new(JwtSigner::new(key.clone()));
    let verifier = Arc::new(JwtVerifier::new(
        vec![key.public_key()],
        "auth".into(),
        "api".into(),
    ));
    let ports = integration_tests::storage::sqlite_ports(signer, verifier).await;
    let auth = authd::wiring::compose(ports, &AuthConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(serve(
        listener,
        auth.access.clone(),
        WsConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));
    println!("READY {addr} {}", std::process::id());

    let mut refresh_tokens = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("login"), Some(name)) => {
                let _ = auth
                    .registration
                    .register(name, PASSWORD.to_owned().into())
                    .await;
                let out = auth
                    .logins
                    .login(name, PASSWORD.to_owned().into(), &ClientInfo::default())
                    .await?
                    .done()
                    .ok_or_else(|| anyhow::anyhow!("{name} needs a second factor"))?;
                refresh_tokens.insert(name.to_owned(), out.refresh.secret.expose().to_owned());
                println!("TOKEN {}", out.access.token);
            }
            (Some("logout"), Some(name)) => {
                let started = unix_millis();
                let refresh = refresh_tokens.get(name).map(String::as_str);
                let revoked = auth
                    .sessions
                    .logout(
                        refresh,
                        None,
                        LogoutScope::AllSessions,
                        &ClientInfo::default(),
                    )
                    .await?;
                println!("LOGGED_OUT {started} {}", revoked.len());
            }
            _ => break,
        }
    }
    drop(stop);
    serving.await??;
    println!("STOPPED");
    Ok(())
}

// ---------------------------------------------------------------- client side

struct Server {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    addr: SocketAddr,
    pid: u32,
}

impl Server {
    async fn start() -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next_line().await?.unwrap_or_default();
        let mut words = ready.split_whitespace().skip(1);
        let addr = words.next().unwrap().parse()?;
        let pid = words.next().unwrap().parse()?;
        Ok(Self {
            child,
            stdin,
            lines,
            addr,
            pid,
        })
    }

    async fn command(&mut self, command: &str) -> anyhow::Result<String> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        Ok(self.lines.next_line().await?.unwrap_or_default())
    }

    fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

fn unix_millis() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(i % 199).unwrap()))
}

/// Opens `count` connections with `token`; returns them and the seconds it took.
async fn open_many(
    addr: SocketAddr,
    token: &str,
    first: usize,
    count: usize,
) -> (Vec<WsClient>, f64) {
    let path = format!("/ws?token={token}");
    let started = Instant::now();
    let clients: Vec<WsClient> = futures_util::stream::iter(first..first + count)
        .map(|i| {
            let path = path.clone();
            async move {
                let mut client = Connect::with_token(&path)
                    .from(source(i))
                    .open(addr)
                    .await
                    .unwrap()
                    .expect("accepted");
                let hello = client.recv_json(Duration::from_secs(30)).await.unwrap();
                assert_eq!(hello["type"], "connected");
                client
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    (clients, started.elapsed().as_secs_f64())
}

async fn settle_rss(server: &Server) -> u64 {
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.rss_kib()
}

/// Each client echoes for `run_for`, back to back or one every `pace`
/// (starting at a random offset); returns the clients, latencies (µs) and seconds.
async fn echo_phase(
    clients: Vec<WsClient>,
    run_for: Duration,
    pace: Option<Duration>,
) -> (Vec<WsClient>, Vec<u32>, f64) {
    let count = clients.len();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let started = Instant::now();
                let message = json!({"type":"echo","payload":{"n": i, "text": "hello"}});
                if let Some(pace) = pace {
                    tokio::time::sleep(
                        pace * u32::try_from(i).unwrap_or(0) / u32::try_from(count).unwrap_or(1),
                    )
                    .await;
                }
                while started.elapsed() < run_for {
                    let t = Instant::now();
                    client.send_json(&message).await.unwrap();
                    let reply = client.recv_json(Duration::from_secs(10)).await.unwrap();
                    assert_eq!(reply["type"], "echo");
                    latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    if let Some(pace) = pace {
                        tokio::time::sleep_until((t + pace).into()).await;
                    }
                }
                (client, latencies)
            })
        })
        .collect();
    let started = Instant::now();
    let (mut back, mut all) = (Vec::new(), Vec::new());
    for task in tasks {
        let (client, latencies) = task.await.unwrap();
        back.push(client);
        all.extend(latencies);
    }
    (back, all, started.elapsed().as_secs_f64())
}

async fn client(total: usize) -> anyhow::Result<()> {
    let mut server = Server::start().await?;
    let alice = server
        .command("login alice")
        .await?
        .trim_start_matches("TOKEN ")
        .to_owned();
    let bob = server
        .command("login bob")
        .await?
        .trim_start_matches("TOKEN ")
        .to_owned();
    let idle_rss = settle_rss(&server).await;
    println!(
        "server pid {} on {}; RSS before any connection: {idle_rss} KiB",
        server.pid, server.addr
    );

    // 1. 1,000 connections.
    let (mut alices, secs) = open_many(server.addr, &alice, 0, 1_000).await;
    let rss = settle_rss(&server).await;
    println!(
        "1000 connections: opened in {secs:.2} s ({:.0} handshakes/s); server RSS {rss} KiB, {:.1} KiB per idle connection",
        1000.0 / secs,
        (rss - idle_rss) as f64 / 1000.0
    );

    // 2. Echo round trips on those 1,000: flat out (throughput), then paced at
    //    one per connection per second (latency at a moderate load).
    for pace in [None, Some(Duration::from_secs(1))] {
        let (clients, mut all, secs) =
            echo_phase(std::mem::take(&mut alices), Duration::from_secs(10), pace).await;
        alices = clients;
        all.sort_unstable();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        println!(
            "echo at 1000 connections, {}: {} round trips in {secs:.1} s = {:.0}/s; latency p50 {} µs, p99 {} µs, max {} µs",
            if pace.is_some() {
                "each one per second"
            } else {
                "each back to back"
            },
            all.len(),
            all.len() as f64 / secs,
            pct(0.50),
            pct(0.99),
            all[all.len() - 1]
        );
    }

    // 3. Up to `total`: alice to 10,000, the rest bob.
    let more_alice = LOGOUT_USER_CONNECTIONS.min(total) - alices.len();
    let (more, secs_a) = open_many(server.addr, &alice, 1_000, more_alice).await;
    alices.extend(more);
    let bobs_count = total - alices.len();
    let (bobs, secs_b) = open_many(server.addr, &bob, 1_000 + more_alice, bobs_count).await;
    let opened = more_alice + bobs_count;
    let rss = settle_rss(&server).await;
    println!(
        "{total} connections: the last {opened} opened in {:.2} s ({:.0} handshakes/s); server RSS {rss} KiB, {:.1} KiB per idle connection",
        secs_a + secs_b,
        opened as f64 / (secs_a + secs_b),
        (rss - idle_rss) as f64 / total as f64
    );

    // 4. Log alice out: time until the last of her sockets closed with 4003.
    let alice_count = alices.len();
    let waiters: Vec<_> = alices
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                loop {
                    match client.recv(Duration::from_secs(60)).await {
                        Ok(Incoming::Closed(code)) => return (code, unix_millis()),
                        Ok(_) => {}
                        Err(_) => return (None, unix_millis()),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reply = server.command("logout alice").await?;
    let mut words = reply.split_whitespace().skip(1);
    let logout_at: i64 = words.next().unwrap().parse()?;
    let mut last = logout_at;
    let mut codes: HashMap<Option<u16>, usize> = HashMap::new();
    for waiter in waiters {
        let (code, at) = waiter.await?;
        *codes.entry(code).or_default() += 1;
        last = last.max(at);
    }
    println!(
        "logout of a user with {alice_count} connections: last socket closed {} ms after the logout started; close codes {codes:?}",
        last - logout_at
    );

    // Bob's are still open (there are none when TOTAL <= 10,000).
    let mut bobs = bobs;
    if let Some(mut probe) = bobs.pop() {
        probe.send_json(&json!({"type":"ping"})).await?;
        assert_eq!(
            probe.recv_json(Duration::from_secs(5)).await?["type"],
            "pong"
        );
    }
    drop(bobs);
    let _ = server.command("quit").await;
    let _ = server.child.wait().await;
    Ok(())
}

// ---------------------------------------------------------------- hold mode

/// Open descriptors of a process.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// One connection for `hold` and `connect`: `None` if it failed or was refused.
async fn open_one(addr: SocketAddr, connect: Connect<'_>) -> Option<WsClient> {
    let opening = async {
        let mut client = connect.open(addr).await.ok()?.ok()?;
        let hello = client.recv_json(Duration::from_secs(60)).await.ok()?;
        (hello["type"] == "connected").then_some(client)
    };
    tokio::time::timeout(Duration::from_secs(90), opening)
        .await
        .ok()
        .flatten()
}

/// Opens `count` idle authenticated connections, holds them `seconds`, exits.
async fn hold(count: usize, seconds: u64) -> anyhow::Result<()> {
    let mut server = Server::start().await?;
    println!("SERVER {} {}", server.pid, server.addr);
    let token = server
        .command("login holder")
        .await?
        .trim_start_matches("TOKEN ")
        .to_owned();
    let idle_rss = settle_rss(&server).await;
    let path = format!("/ws?token={token}");
    let started = Instant::now();
    let clients: Vec<WsClient> = futures_util::stream::iter(0..count)
        .map(|i| open_one(server.addr, Connect::with_token(&path).from(source(i))))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .filter_map(std::future::ready)
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    let connected = clients.len();
    // Each socket is read until the end of the hold, so pings get their pongs;
    // anything that closes early is counted.
    let hold_for = Duration::from_secs(seconds);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let deadline = Instant::now() + hold_for;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return (true, client);
                    }
                    match client.recv(left).await {
                        Ok(Incoming::Closed(_)) => return (false, client),
                        Ok(_) => {}
                        // Nothing arrived before the deadline: still open.
                        Err(_) => return (Instant::now() >= deadline, client),
                    }
                }
            })
        })
        .collect();
    let rss = server.rss_kib();
    println!(
        "CONNECTED {connected} of {count} in {secs:.2} s ({:.0}/s); server pid {} RSS {rss} KiB (idle {idle_rss} KiB, {:.1} KiB per connection), {} open files",
        connected as f64 / secs,
        server.pid,
        (rss.saturating_sub(idle_rss)) as f64 / connected.max(1) as f64,
        open_files(server.pid)
    );
    let (mut held, mut kept) = (0_usize, Vec::with_capacity(connected));
    for reader in readers {
        let (open, client) = reader.await?;
        held += usize::from(open);
        kept.push(client);
    }
    println!(
        "HELD {held} of {connected} for {seconds} s; server RSS {} KiB, {} open files",
        server.rss_kib(),
        open_files(server.pid)
    );
    drop(kept);
    let _ = server.command("quit").await;
    let _ = tokio::time::timeout(Duration::from_secs(30), server.child.wait()).await;
    Ok(())
}

/// The client half against a running server: see the module.
async fn connect(
    addr: SocketAddr,
    token: &str,
    count: usize,
    seconds: u64,
    deflate: bool,
) -> anyhow::Result<()> {
    let path = format!("/ws?token={token}");
    let started = Instant::now();
    let clients: Vec<WsClient> = futures_util::stream::iter(0..count)
        .map(|i| {
            let path = path.clone();
            async move {
                let mut connect = Connect::with_token(&path).from(source(i));
                if deflate {
                    connect = connect.header(
                        "sec-websocket-extensions",
                        "permessage-deflate; client_max_window_bits",
                    );
                }
                open_one(addr, connect).await
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .filter_map(std::future::ready)
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    let compressed = clients.iter().filter(|c| c.extensions().is_some()).count();
    println!(
        "CONNECTED {} of {count} in {secs:.2} s, {compressed} with permessage-deflate",
        clients.len()
    );
    let hold_until = Instant::now() + Duration::from_secs(seconds);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                // Held: read (so pings get their pongs) until the deadline.
                loop {
                    let left = hold_until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match client.recv(left).await {
                        Ok(Incoming::Closed(code)) => return (false, code, 0),
                        Ok(_) => {}
                        Err(_) if Instant::now() >= hold_until => break,
                        Err(_) => return (false, None, 0),
                    }
                }
                // Then wait for the server to close it.
                let wait_until = Instant::now() + Duration::from_secs(60);
                loop {
                    let left = wait_until.saturating_duration_since(Instant::now());
                    match client.recv(left).await {
                        Ok(Incoming::Closed(code)) => return (true, code, unix_millis()),
                        Ok(_) => {}
                        Err(_) => return (true, None, 0),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep_until(hold_until.into()).await;
    println!("HOLD_OVER at {}", unix_millis());
    let mut held = 0;
    let mut codes: HashMap<String, usize> = HashMap::new();
    let mut last_close = 0;
    for reader in readers {
        let (was_held, code, at) = reader.await?;
        held += usize::from(was_held);
        let code = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        *codes
            .entry(if was_held {
                code
            } else {
                format!("early-{code}")
            })
            .or_default() += 1;
        last_close = last_close.max(at);
    }
    println!("HELD {held} for {seconds} s");
    println!("CLOSED {codes:?}, last at {last_close}");
    Ok(())
}

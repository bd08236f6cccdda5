//! `GET /api/protected` per second against a running authd, on loopback
//! only: Bearer tokens against DPoP-bound ones with ES256 and with EdDSA
//! proofs (bench/dpop_load.sh runs the three on `authd serve`).
//!
//! `dpop_load BASE bearer|dpop-es256|dpop-eddsa SECONDS CONCURRENCY [WHO [SERVER_PID [POSTMASTER_PID]]]`
//!
//! BASE is the server's URL (`http://127.0.0.1:3900`). Setup registers
//! CONCURRENCY fresh users and logs each in once: `bearer` plainly, the
//! `dpop-*` scenarios with a proof by that user's own key
//! (`integration_tests::dpop`), so its session is bound (`tokenType`
//! `DPoP`). Then CONCURRENCY tasks, one per user, each on its own HTTP
//! connection, call `GET /api/protected` back to back for SECONDS:
//! `Authorization: Bearer <token>`, or `Authorization: DPoP <token>` with a
//! fresh proof (`htm` GET, `htu` BASE + `/api/protected`, `ath` of the
//! token, a new `jti`) signed here for every request, so its signing is this
//! client's CPU, on the same cores as the server's. A latency is the
//! request's as the client sees it, its proof's signing included.
//!
//! Prints one JSON line, `{"scenario","who","requests","requests_per_s",
//! "p50_ms","p99_ms","errors","status_counts",..}` (`who`: WHO, default
//! `authd`); bench/dpop_load.sh and bench/report.py read it. Only requests
//! that end inside the SECONDS count; a failed one (a status other than 200
//! or a transport error) is an error, and the first of each kind is shown on
//! stderr. The line says where the machine's CPU went during the SECONDS,
//! in % of one core (the server, SERVER_PID; its PostgreSQL, POSTMASTER_PID
//! and its children; this client; everything else), and that per request in
//! µs. With SERVER_PID it also has the server's resident memory
//! (`/proc/<pid>/status` `VmRSS`) before and after the SECONDS, and the
//! DPoP requests accepted in the replay window that ended with them and in
//! the busiest such window of the run: the server keeps one `jti` per
//! accepted request until its proof is stale (`DPOP_PROOF_MAX_AGE`'s
//! default after its `iat`; these proofs are made as they are sent), at
//! most `LOCAL_JTI_CAP`, and its table gives memory back only once a burst
//! has passed, so on a server that served nothing else the growth is the
//! replay cache's (and the allocator's) for the busiest window's entries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use integration_tests::dpop::{DpopEdKey, DpopKey};
use integration_tests::load::{CpuSnapshot, Pids, percentile_ms, unix_seconds};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};

/// Long enough for the password policy; every load user has it.
const PASSWORD: &str = "dpop load password";
/// Users registered and logged in at once (argon2id bounds the setup anyway).
const SETUP_CONCURRENCY: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Bearer,
    DpopEs256,
    DpopEdDsa,
}

impl Scenario {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "bearer" => Some(Self::Bearer),
            "dpop-es256" => Some(Self::DpopEs256),
            "dpop-eddsa" => Some(Self::DpopEdDsa),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::DpopEs256 => "dpop-es256",
            Self::DpopEdDsa => "dpop-eddsa",
        }
    }

    /// A fresh key of the scenario's algorithm; none for `bearer`.
    fn new_key(self) -> Option<ClientKey> {
        match self {
            Self::Bearer => None,
            Self::DpopEs256 => Some(ClientKey::Es256(DpopKey::new())),
            Self::DpopEdDsa => Some(ClientKey::EdDsa(DpopEdKey::new())),
        }
    }
}

/// One load user's proof key.
#[derive(Debug)]
enum ClientKey {
    Es256(DpopKey),
    EdDsa(DpopEdKey),
}

impl ClientKey {
    fn proof(&self, htm: &str, htu: &str, token: Option<&str>) -> String {
        match self {
            Self::Es256(key) => key.proof(htm, htu, token),
            Self::EdDsa(key) => key.proof(htm, htu, token),
        }
    }
}

/// One load user, logged in: its connection, its token and its key.
#[derive(Debug)]
struct LoadUser {
    http: reqwest::Client,
    access: String,
    key: Option<ClientKey>,
}

/// What one task saw in the measured window.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    status: BTreeMap<String, u64>,
    /// When each success ended, in ms after the window opened.
    ends_ms: Vec<u64>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: dpop_load BASE bearer|dpop-es256|dpop-eddsa SECONDS CONCURRENCY \
                 [WHO [SERVER_PID [POSTMASTER_PID]]]";
    let (Some(base), Some(scenario), Some(seconds), Some(concurrency)) = (
        args.get(1),
        args.get(2).and_then(|s| Scenario::parse(s)),
        args.get(3).and_then(|s| s.parse::<u64>().ok()),
        args.get(4).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        bail!("{usage}");
    };
    let who = args.get(5).map_or("authd", String::as_str);
    let pids = Pids {
        server: args.get(6).map(|p| p.parse()).transpose()?,
        postmaster: args.get(7).map(|p| p.parse()).transpose()?,
    };
    ensure!(
        (1..=3_600).contains(&seconds) && (1..=1_000).contains(&concurrency),
        "SECONDS 1..=3600, CONCURRENCY 1..=1000"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let line = runtime.block_on(run(
        base.trim_end_matches('/'),
        scenario,
        Duration::from_secs(seconds),
        concurrency,
        who,
        pids,
    ))?;
    println!("{line}");
    Ok(())
}

async fn run(
    base: &str,
    scenario: Scenario,
    run_for: Duration,
    concurrency: usize,
    who: &str,
    pids: Pids,
) -> anyhow::Result<Value> {
    // Fresh names each run, so runs can share a database.
    let tag = format!("{}-{}", std::process::id(), unix_seconds() % 100_000);
    let setup_started = Instant::now();
    let users = setup(base, scenario, concurrency, &tag).await?;
    eprintln!(
        "dpop_load: {} {} users logged in in {:.1} s",
        users.len(),
        scenario.name(),
        setup_started.elapsed().as_secs_f64()
    );

    let url = format!("{base}/api/protected");
    // A proof made at second t is kept through second t + max age.
    let replay_window = Duration::from_secs(
        domain::dpop::DEFAULT_PROOF_MAX_AGE
            .as_secs()
            .saturating_add(1),
    );
    let reported = Arc::new(Mutex::new(HashSet::new()));
    let rss_before = pids.server.and_then(rss_bytes);
    let before = CpuSnapshot::take(pids);
    let started = Instant::now();
    let deadline = started + run_for;
    let tasks: Vec<_> = users
        .into_iter()
        .map(|user| {
            let (url, reported) = (url.clone(), Arc::clone(&reported));
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let outcome = protected(&user, &url).await;
                    let end = Instant::now();
                    if end > deadline {
                        break;
                    }
                    let key = match outcome {
                        Ok(()) => {
                            let us = u64::try_from((end - t).as_micros()).unwrap_or(u64::MAX);
                            tally.latencies_us.push(us);
                            let at = u64::try_from((end - started).as_millis()).unwrap_or(u64::MAX);
                            tally.ends_ms.push(at);
                            "200".to_owned()
                        }
                        Err(failure) => {
                            tally.errors += 1;
                            if reported.lock().unwrap().insert(failure.key.clone()) {
                                eprintln!("dpop_load: first {}: {}", failure.key, failure.detail);
                            }
                            failure.key
                        }
                    };
                    *tally.status.entry(key).or_default() += 1;
                }
                tally
            })
        })
        .collect();
    tokio::time::sleep_until(deadline.into()).await;
    let cpu = before.until(&CpuSnapshot::take(pids));
    let mut all = Tally::default();
    for task in tasks {
        let tally = task.await?;
        all.latencies_us.extend(tally.latencies_us);
        all.errors += tally.errors;
        all.ends_ms.extend(tally.ends_ms);
        for (k, v) in tally.status {
            *all.status.entry(k).or_default() += v;
        }
    }
    let rss_after = pids.server.and_then(rss_bytes);
    let secs = run_for.as_secs_f64();
    all.latencies_us.sort_unstable();
    let requests = all.latencies_us.len();
    let per_s = requests as f64 / secs;
    let mut line = json!({
        "scenario": scenario.name(),
        "who": who,
        "requests": requests,
        "requests_per_s": (per_s * 10.0).round() / 10.0,
        "p50_ms": percentile_ms(&all.latencies_us, 0.50),
        "p99_ms": percentile_ms(&all.latencies_us, 0.99),
        "errors": all.errors,
        "status_counts": all.status,
        "concurrency": concurrency,
        "duration_s": secs,
    });
    let line_map = line.as_object_mut().expect("an object");
    if let Some(cpu) = cpu {
        // µs of one core per request: who pays for a request, and how much.
        for who in ["server", "postgres", "client", "other"] {
            let pct = cpu[&format!("{who}_cpu_pct_of_one_core")].as_f64();
            let us = pct
                .filter(|_| requests > 0)
                .map(|pct| (pct / 100.0 * 1e6 / per_s).round());
            line_map.insert(format!("{who}_cpu_us_per_request"), json!(us));
        }
        line_map.extend(cpu);
    }
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        // The ids the server holds: the requests of the last window, and at
        // most ever the requests of the busiest window (a table that keeps
        // its size while it is busy, so the memory is the peak's).
        let window_ms = u64::try_from(replay_window.as_millis()).unwrap_or(u64::MAX);
        all.ends_ms.sort_unstable();
        let (held, peak) = replay_window_counts(&all.ends_ms, window_ms, run_for);
        let dpop = scenario != Scenario::Bearer;
        let (held, peak) = (dpop.then_some(held), dpop.then_some(peak));
        let growth = i64::try_from(after).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(0);
        line_map.extend([
            ("server_rss_before_bytes".into(), json!(before)),
            ("server_rss_after_bytes".into(), json!(after)),
            ("server_rss_growth_bytes".into(), json!(growth)),
            ("replay_window_s".into(), json!(replay_window.as_secs())),
            (
                "replay_cache_cap".into(),
                json!(application::dpop_proofs::LOCAL_JTI_CAP),
            ),
            ("replay_window_requests".into(), json!(held)),
            ("replay_window_peak_requests".into(), json!(peak)),
            (
                "rss_growth_bytes_per_replay_entry".into(),
                json!(
                    peak.filter(|&n| n > 0)
                        .map(|n| (growth as f64 / n as f64).round())
                ),
            ),
        ]);
    }
    Ok(line)
}

// ---------------------------------------------------------------- setup

async fn setup(
    base: &str,
    scenario: Scenario,
    count: usize,
    tag: &str,
) -> anyhow::Result<Vec<LoadUser>> {
    use futures_util::StreamExt as _;
    futures_util::stream::iter(0..count)
        .map(|i| {
            let username = format!("load-dpop-{tag}-{i}");
            async move {
                // One client, so one connection, per user: as many connections
                // as tasks, none shared.
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .pool_max_idle_per_host(1)
                    .build()?;
                let (status, body) = post(&http, base, "/api/register", None, &username).await?;
                ensure!(status.is_success(), "register {username}: {status} {body}");
                let key = scenario.new_key();
                let proof = key
                    .as_ref()
                    .map(|k| k.proof("POST", &format!("{base}/api/login"), None));
                let (status, body) =
                    post(&http, base, "/api/login", proof.as_deref(), &username).await?;
                ensure!(status == 200, "login {username}: {status} {body}");
                let expected = if key.is_some() { "DPoP" } else { "Bearer" };
                ensure!(
                    body["tokenType"] == expected,
                    "login {username}: tokenType {}, not {expected}",
                    body["tokenType"]
                );
                let access = body["accessToken"]
                    .as_str()
                    .context("login: no accessToken")?
                    .to_owned();
                Ok(LoadUser { http, access, key })
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<anyhow::Result<LoadUser>>>()
        .await
        .into_iter()
        .collect()
}

/// POSTs `{username, password}` as JSON, with `proof` as its `DPoP` header
/// when given; returns the status and the JSON answer (`null` when it is
/// not JSON).
async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    proof: Option<&str>,
    username: &str,
) -> Result<(reqwest::StatusCode, Value), reqwest::Error> {
    let mut request = http
        .post(format!("{base}{path}"))
        .json(&json!({ "username": username, "password": PASSWORD }));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

// ---------------------------------------------------------------- one request

/// A request that did not end in 200: its status (or "transport") and why.
#[derive(Debug)]
struct Failure {
    key: String,
    detail: String,
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        Self {
            key: "transport".to_owned(),
            detail: e.to_string(),
        }
    }
}

/// `GET /api/protected` with the user's token, and a fresh proof when it
/// is bound.
async fn protected(user: &LoadUser, url: &str) -> Result<(), Failure> {
    let request = match &user.key {
        None => user.http.get(url).bearer_auth(&user.access),
        Some(key) => user
            .http
            .get(url)
            .header(AUTHORIZATION, format!("DPoP {}", user.access))
            .header("DPoP", key.proof("GET", url, Some(&user.access))),
    };
    let response = request.send().await?;
    let status = response.status();
    if status == 200 {
        // Read to the end, so the connection is reused.
        response.bytes().await?;
        return Ok(());
    }
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    Err(Failure {
        key: status.as_u16().to_string(),
        detail: format!("GET /api/protected: {challenge} {body}"),
    })
}

// ---------------------------------------------------------------- figures

/// Of sorted success times (ms): how many fall in the last `window_ms` of a
/// run of `run_for`, and at most in any `window_ms`.
fn replay_window_counts(ends_ms: &[u64], window_ms: u64, run_for: Duration) -> (usize, usize) {
    let run_ms = u64::try_from(run_for.as_millis()).unwrap_or(u64::MAX);
    let last = ends_ms.len() - ends_ms.partition_point(|&t| t + window_ms <= run_ms);
    let (mut peak, mut first) = (0, 0);
    for (i, &t) in ends_ms.iter().enumerate() {
        while ends_ms[first] + window_ms <= t {
            first += 1;
        }
        peak = peak.max(i + 1 - first);
    }
    (last, peak)
}

/// The resident memory of `pid` (`VmRSS`), in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

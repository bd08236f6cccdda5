//! Logins per second against a running authd, on loopback only: password
//! logins against passkey logins (bench/login_load.sh runs both on SQLite
//! and PostgreSQL).
//!
//! `login_load BASE password-login|passkey-login SECONDS CONCURRENCY [WHO [SERVER_PID [POSTMASTER_PID]]]`
//!
//! BASE is the server's URL (`http://127.0.0.1:3900`). Setup registers
//! CONCURRENCY fresh users; for `passkey-login` each also logs in with its
//! password and registers one ES256 passkey of its own software
//! authenticator (`integration_tests::authenticator`, origin
//! `http://localhost:3000`: in the default `WEBAUTHN_ORIGINS`, rp id
//! `localhost`). Then CONCURRENCY tasks, one per user, log in back to back for
//! SECONDS: `password-login` is one `POST /api/login`; `passkey-login` is
//! `POST /api/login/passkey/options`, the authenticator's assertion and
//! `POST /api/login/passkey`, timed and counted as one login. Each task owns
//! its user's authenticator, so the signature counter grows one login at a
//! time (a shared one would race itself into `passkey_clone_suspected`).
//!
//! Prints one JSON line, `{"scenario","who","logins","logins_per_s",
//! "p50_ms","p99_ms","errors","status_counts",..}` (`who`: WHO, default
//! `authd`); bench/report.py reads it. Only logins that end inside the SECONDS
//! count; a failed one (a status other than 200 or a transport error) is an
//! error, and the first of each status is shown on stderr. The line also says
//! where the machine's CPU went during the SECONDS, in % of one core: the
//! server (SERVER_PID), its PostgreSQL (POSTMASTER_PID and its children), this
//! client, and everything else (other work on the machine), so a run that
//! shared its cores with a build shows it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use integration_tests::authenticator::{Algorithm, SoftAuthenticator};
use integration_tests::load::{CpuSnapshot, Pids, percentile_ms, unix_seconds};
use serde_json::{Value, json};

/// Long enough for the password policy; every load user has it.
const PASSWORD: &str = "login load password";
/// An origin in the server's default `WEBAUTHN_ORIGINS`.
const ORIGIN: &str = "http://localhost:3000";
/// Users registered and set up at once (argon2id bounds the setup anyway).
const SETUP_CONCURRENCY: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    PasswordLogin,
    PasskeyLogin,
}

impl Scenario {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "password-login" => Some(Self::PasswordLogin),
            "passkey-login" => Some(Self::PasskeyLogin),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::PasswordLogin => "password-login",
            Self::PasskeyLogin => "passkey-login",
        }
    }
}

/// One load user: a name, and for passkey logins its own authenticator.
#[derive(Debug)]
struct LoadUser {
    username: String,
    authenticator: Option<SoftAuthenticator>,
}

/// What one task saw in the measured window.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    status: BTreeMap<String, u64>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: login_load BASE password-login|passkey-login SECONDS CONCURRENCY \
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
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    // Fresh names each run, so runs can share a database.
    let tag = format!("{}-{}", std::process::id(), unix_seconds() % 100_000);
    let setup_started = Instant::now();
    let users = setup(&http, base, scenario, concurrency, &tag).await?;
    eprintln!(
        "login_load: {} {} users set up in {:.1} s",
        users.len(),
        scenario.name(),
        setup_started.elapsed().as_secs_f64()
    );

    let reported = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let before = CpuSnapshot::take(pids);
    let deadline = Instant::now() + run_for;
    let tasks: Vec<_> = users
        .into_iter()
        .map(|mut user| {
            let (http, base, reported) = (http.clone(), base.to_owned(), Arc::clone(&reported));
            tokio::spawn(async move {
                let mut tally = Tally::default();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let outcome = match user.authenticator.as_mut() {
                        None => password_login(&http, &base, &user.username).await,
                        Some(authenticator) => passkey_login(&http, &base, authenticator).await,
                    };
                    let end = Instant::now();
                    if end > deadline {
                        break;
                    }
                    let key = match outcome {
                        Ok(()) => {
                            let us = u64::try_from((end - t).as_micros()).unwrap_or(u64::MAX);
                            tally.latencies_us.push(us);
                            "200".to_owned()
                        }
                        Err(failure) => {
                            tally.errors += 1;
                            if reported.lock().unwrap().insert(failure.key.clone()) {
                                eprintln!("login_load: first {}: {}", failure.key, failure.detail);
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
        for (k, v) in tally.status {
            *all.status.entry(k).or_default() += v;
        }
    }
    let secs = run_for.as_secs_f64();
    all.latencies_us.sort_unstable();
    let logins = all.latencies_us.len();
    let mut line = json!({
        "scenario": scenario.name(),
        "who": who,
        "logins": logins,
        "logins_per_s": (logins as f64 / secs * 10.0).round() / 10.0,
        "p50_ms": percentile_ms(&all.latencies_us, 0.50),
        "p99_ms": percentile_ms(&all.latencies_us, 0.99),
        "errors": all.errors,
        "status_counts": all.status,
        "concurrency": concurrency,
        "duration_s": secs,
    });
    if let (Some(line), Some(cpu)) = (line.as_object_mut(), cpu) {
        line.extend(cpu);
    }
    Ok(line)
}

// ---------------------------------------------------------------- setup

async fn setup(
    http: &reqwest::Client,
    base: &str,
    scenario: Scenario,
    count: usize,
    tag: &str,
) -> anyhow::Result<Vec<LoadUser>> {
    use futures_util::StreamExt as _;
    let prefix = match scenario {
        Scenario::PasswordLogin => "pw",
        Scenario::PasskeyLogin => "pk",
    };
    futures_util::stream::iter(0..count)
        .map(|i| {
            let username = format!("load-{prefix}-{tag}-{i}");
            async move {
                let r = post(http, base, "/api/register", None, &credentials(&username)).await?;
                ensure!(r.0.is_success(), "register {username}: {} {}", r.0, r.1);
                let authenticator = match scenario {
                    Scenario::PasswordLogin => None,
                    Scenario::PasskeyLogin => Some(add_passkey(http, base, &username).await?),
                };
                Ok(LoadUser {
                    username,
                    authenticator,
                })
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<anyhow::Result<LoadUser>>>()
        .await
        .into_iter()
        .collect()
}

/// Logs `username` in and registers an ES256 passkey of a new authenticator.
async fn add_passkey(
    http: &reqwest::Client,
    base: &str,
    username: &str,
) -> anyhow::Result<SoftAuthenticator> {
    let (status, body) = post(http, base, "/api/login", None, &credentials(username)).await?;
    ensure!(status == 200, "login {username}: {status} {body}");
    let access = body["accessToken"]
        .as_str()
        .context("login: no accessToken")?
        .to_owned();
    let (status, body) = post(
        http,
        base,
        "/api/passkeys/registration/options",
        Some(&access),
        &json!({ "password": PASSWORD }),
    )
    .await?;
    ensure!(
        status == 200,
        "registration options {username}: {status} {body}"
    );
    let mut authenticator = SoftAuthenticator::new(Algorithm::Es256);
    let credential = authenticator.create(&body["publicKey"], ORIGIN);
    let (status, body) = post(
        http,
        base,
        "/api/passkeys/registration",
        Some(&access),
        &json!({ "registrationId": body["registrationId"], "credential": credential }),
    )
    .await?;
    ensure!(status == 201, "registration {username}: {status} {body}");
    Ok(authenticator)
}

// ---------------------------------------------------------------- one login

/// A login that did not end in 200: its status (or "transport") and body.
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

fn refused(step: &str, status: reqwest::StatusCode, body: &Value) -> Failure {
    Failure {
        key: status.as_u16().to_string(),
        detail: format!("{step}: {body}"),
    }
}

async fn password_login(http: &reqwest::Client, base: &str, username: &str) -> Result<(), Failure> {
    let (status, body) = post(http, base, "/api/login", None, &credentials(username)).await?;
    if status != 200 {
        return Err(refused("POST /api/login", status, &body));
    }
    Ok(())
}

async fn passkey_login(
    http: &reqwest::Client,
    base: &str,
    authenticator: &mut SoftAuthenticator,
) -> Result<(), Failure> {
    let (status, options) =
        post(http, base, "/api/login/passkey/options", None, &json!({})).await?;
    if status != 200 {
        return Err(refused("POST /api/login/passkey/options", status, &options));
    }
    let credential = authenticator.get(&options["publicKey"], ORIGIN);
    let (status, body) = post(
        http,
        base,
        "/api/login/passkey",
        None,
        &json!({
            "loginId": options["loginId"],
            "credential": credential,
        }),
    )
    .await?;
    if status != 200 {
        return Err(refused("POST /api/login/passkey", status, &body));
    }
    Ok(())
}

/// POSTs `body` as JSON; returns the status and the JSON answer (`null`
/// when it is not JSON).
async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
) -> Result<(reqwest::StatusCode, Value), reqwest::Error> {
    let mut request = http.post(format!("{base}{path}")).json(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

// ---------------------------------------------------------------- figures

/// The body of `POST /api/register` and `POST /api/login`.
fn credentials(username: &str) -> Value {
    json!({ "username": username, "password": PASSWORD })
}

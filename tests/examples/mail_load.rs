//! Email measured against a running authd, on loopback only (bench/mail_load.sh
//! runs both on the release `authd serve`):
//!
//! `mail_load BASE forgot N MAIL_DIR [WHO [SERVER_PID]]`
//!
//! `POST /api/password/forgot` for a verified address and for an unknown
//! one of the same length, N of each, one request at a time on one keep-alive connection, in the
//! order known, unknown, unknown, known, ... (ABBA: each kind follows
//! each kind as often, so what the previous request left running, the
//! known address's lookup and mail after its answer, weighs on both
//! alike). Setup registers one user with an address, reads its
//! verification mail from MAIL_DIR (the server's file mailer) and verifies
//! it; 100 of each go first, unmeasured. The line has each kind's median,
//! p90, p99 and mean, their differences, and a bootstrap 95 % interval of
//! the difference of medians (known less unknown).
//!
//! `mail_load BASE outbox N MAILBOX SINK_PID METRICS_URL [WHO [SERVER_PID]]`
//!
//! Mails per second the outbox hands to an SMTP server: the server's
//! `SMTP_URL` is `tests/clients/smtp_sink.py` (pid SINK_PID, mailbox
//! MAILBOX). Setup registers ceil(N/3) users with addresses and verifies
//! them from the sink's mails. Then the sink is paused (SIGSTOP: its port
//! still accepts connections, so the sender's first attempt waits instead
//! of failing and no mail enters the retry backoff), N forgots are asked
//! (three per user, the hourly cap), 16 at a time, each 16 queued (the
//! server's `authd_mail_total{event="reset_requested"}`, METRICS_URL)
//! before the next, and then the sink continues (SIGCONT): the line has the seconds
//! until the N-th arrived and N / that, and where the CPU went meanwhile
//! (the sink's counts as `sink`).
//!
//! Prints one JSON line (`who`: WHO, default `authd`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures_util::StreamExt as _;
use integration_tests::load::{CpuSnapshot, Pids, percentile_ms, unix_seconds};
use serde_json::{Value, json};

/// Long enough for the password policy.
const PASSWORD: &str = "mail load password";
/// Unmeasured requests of each kind before the measured ones.
const WARMUP: usize = 100;
/// Registrations (argon2id) at once.
const SETUP_CONCURRENCY: usize = 8;
/// Forgot requests at once while the outbox fills (well under the server's
/// `adapters::http::api::email::FORGOT_IN_FLIGHT`, 64).
const QUEUE_CHUNK: usize = 16;
/// How long a mail may take to show up.
const MAIL_WAIT: Duration = Duration::from_secs(60);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: mail_load BASE forgot N MAIL_DIR [WHO [SERVER_PID]]\n       \
                 mail_load BASE outbox N MAILBOX SINK_PID METRICS_URL [WHO [SERVER_PID]]";
    let (Some(base), Some(scenario), Some(n)) = (
        args.get(1),
        args.get(2),
        args.get(3).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        bail!("{usage}");
    };
    ensure!((1..=1_000_000).contains(&n), "N 1..=1000000");
    let base = base.trim_end_matches('/').to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let line = match scenario.as_str() {
        "forgot" => {
            let dir = PathBuf::from(args.get(4).context(usage)?);
            let who = args.get(5).map_or("authd", String::as_str);
            let server = args.get(6).map(|p| p.parse()).transpose()?;
            runtime.block_on(forgot(&base, n, &dir, who, server))?
        }
        "outbox" => {
            let mailbox = PathBuf::from(args.get(4).context(usage)?);
            let sink: u32 = args.get(5).context(usage)?.parse()?;
            let metrics = args.get(6).context(usage)?;
            let who = args.get(7).map_or("authd", String::as_str);
            let server = args.get(8).map(|p| p.parse()).transpose()?;
            runtime.block_on(outbox(&base, n, &mailbox, sink, metrics, who, server))?
        }
        _ => bail!("{usage}"),
    };
    println!("{line}");
    Ok(())
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .build()?)
}

/// POSTs `body`; returns the status.
async fn post(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<u16> {
    let response = http.post(url).json(body).send().await?;
    let status = response.status().as_u16();
    // Read to the end, so the connection is reused.
    response.bytes().await?;
    Ok(status)
}

/// Registers `name` with `email`.
async fn register(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    email: &str,
) -> anyhow::Result<()> {
    let body = json!({"username": name, "password": PASSWORD, "email": email});
    let status = post(http, &format!("{base}/api/register"), &body).await?;
    ensure!(status == 201, "register {name}: {status}");
    Ok(())
}

async fn verify(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<()> {
    let status = post(
        http,
        &format!("{base}/api/email/verify"),
        &json!({"token": token}),
    )
    .await?;
    ensure!(status == 204, "verify: {status}");
    Ok(())
}

/// What follows `Token: ` on a line of `text`.
fn token_in(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Token: "))
        .map(str::to_owned)
}

// ---------------------------------------------------------------- forgot

async fn forgot(
    base: &str,
    n: usize,
    mail_dir: &Path,
    who: &str,
    server: Option<u32>,
) -> anyhow::Result<Value> {
    let http = client()?;
    let tag = format!("{}-{}", std::process::id(), unix_seconds() % 100_000);
    let known = format!("known-{tag}@example.org");
    // As long as the known one: the bodies differ in nothing but letters.
    let unknown = format!("other-{tag}@example.org");
    register(&http, base, &format!("mail-load-{tag}"), &known).await?;
    // The file mailer's verification mail: 7bit text, the token on its line.
    let deadline = Instant::now() + MAIL_WAIT;
    let token = loop {
        let found = std::fs::read_dir(mail_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find(|mail| mail.contains(&format!("To: {known}")))
            .and_then(|mail| token_in(&mail));
        if let Some(token) = found {
            break token;
        }
        ensure!(
            Instant::now() < deadline,
            "no verification mail in {}",
            mail_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    verify(&http, base, &token).await?;

    let url = format!("{base}/api/password/forgot");
    let mut latencies: [Vec<u64>; 2] = [Vec::with_capacity(n), Vec::with_capacity(n)];
    let mut status: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = 0u64;
    let pids = Pids {
        server,
        postmaster: None,
    };
    let mut before = None;
    let mut started = Instant::now();
    for i in 0..(WARMUP + n) * 2 {
        if i == WARMUP * 2 {
            before = Some(CpuSnapshot::take(pids));
            started = Instant::now();
        }
        // ABBA: known, unknown, unknown, known, ...
        let kind = usize::from(matches!(i % 4, 1 | 2));
        let email = if kind == 0 { &known } else { &unknown };
        let t = Instant::now();
        let answer = post(&http, &url, &json!({"email": email})).await;
        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        let key = match answer {
            Ok(202) => "202".to_owned(),
            Ok(other) => other.to_string(),
            Err(e) => {
                eprintln!("mail_load: {e}");
                "transport".to_owned()
            }
        };
        if i < WARMUP * 2 {
            continue;
        }
        if key == "202" {
            latencies[kind].push(us);
        } else {
            errors += 1;
        }
        *status.entry(key).or_default() += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = before.and_then(|b| b.until(&CpuSnapshot::take(pids)));
    for l in &mut latencies {
        l.sort_unstable();
    }
    let [known_us, unknown_us] = &latencies;
    let summary = |us: &[u64]| {
        json!({
            "requests": us.len(),
            "p50_ms": percentile_ms(us, 0.50),
            "p90_ms": percentile_ms(us, 0.90),
            "p99_ms": percentile_ms(us, 0.99),
            "mean_ms": mean_ms(us),
        })
    };
    let diff = |p: f64| {
        let (a, b) = (percentile_ms(known_us, p), percentile_ms(unknown_us, p));
        a.as_f64()
            .zip(b.as_f64())
            .map(|(a, b)| ((a - b) * 1000.0).round() / 1000.0)
    };
    let (low, high) = median_difference_interval(known_us, unknown_us);
    let mut line = json!({
        "scenario": "forgot",
        "who": who,
        "known": summary(known_us),
        "unknown": summary(unknown_us),
        "p50_diff_ms": diff(0.50),
        "p90_diff_ms": diff(0.90),
        "p99_diff_ms": diff(0.99),
        "p50_diff_95ci_ms": [low, high],
        "errors": errors,
        "status_counts": status,
        "order": "ABBA, one request at a time, one connection",
        "requests_per_s": (((known_us.len() + unknown_us.len()) as f64 / secs) * 10.0).round() / 10.0,
        "duration_s": (secs * 10.0).round() / 10.0,
    });
    if let Some(cpu) = cpu {
        line.as_object_mut().unwrap().extend(cpu);
    }
    Ok(line)
}

fn mean_ms(us: &[u64]) -> Value {
    if us.is_empty() {
        return Value::Null;
    }
    let mean = us.iter().sum::<u64>() as f64 / us.len() as f64;
    json!((mean / 1000.0 * 1000.0).round() / 1000.0)
}

/// A bootstrap 95 % interval (1,000 resamples) of median(a) - median(b),
/// in ms.
fn median_difference_interval(a: &[u64], b: &[u64]) -> (Value, Value) {
    if a.is_empty() || b.is_empty() {
        return (Value::Null, Value::Null);
    }
    // xorshift64*: reproducible, and enough for resampling.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = |len: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % len as u64) as usize
    };
    let mut median_of = |sample: &[u64]| {
        let mut drawn: Vec<u64> = (0..sample.len())
            .map(|_| sample[next(sample.len())])
            .collect();
        drawn.sort_unstable();
        drawn[drawn.len() / 2] as f64
    };
    let mut diffs: Vec<f64> = (0..1000).map(|_| median_of(a) - median_of(b)).collect();
    diffs.sort_by(f64::total_cmp);
    let ms = |us: f64| json!((us / 1000.0 * 1000.0).round() / 1000.0);
    (ms(diffs[25]), ms(diffs[974]))
}

// ---------------------------------------------------------------- outbox

/// The sink's mails so far: (recipients, text) of each.
fn sink_mails(mailbox: &Path) -> Vec<(Vec<String>, String)> {
    std::fs::read_dir(mailbox)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| {
            let meta: Value = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            let to = meta["rcpt_tos"]
                .as_array()?
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect();
            Some((to, meta["text"].as_str().unwrap_or_default().to_owned()))
        })
        .collect()
}

/// Mails in the sink's mailbox (its `.json` files: each written last).
fn sink_count(mailbox: &Path) -> usize {
    std::fs::read_dir(mailbox)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") && !name.starts_with('.')
        })
        .count()
}

fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()?;
    ensure!(status.success(), "kill -{signal} {pid}");
    Ok(())
}

/// `authd_mail_total{event="<event>"}` of the server's `/metrics`.
async fn mail_total(http: &reqwest::Client, metrics: &str, event: &str) -> anyhow::Result<u64> {
    let text = http.get(metrics).send().await?.text().await?;
    let label = format!("event=\"{event}\"");
    Ok(text
        .lines()
        .filter(|l| l.starts_with("authd_mail_total{") && l.contains(&label))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum())
}

#[allow(clippy::too_many_arguments)]
async fn outbox(
    base: &str,
    n: usize,
    mailbox: &Path,
    sink: u32,
    metrics: &str,
    who: &str,
    server: Option<u32>,
) -> anyhow::Result<Value> {
    let tag = format!("{}-{}", std::process::id(), unix_seconds() % 100_000);
    let users = n.div_ceil(3);
    let address = |u: usize| format!("load-{tag}-{u}@example.org");
    let setup = Instant::now();
    let already = sink_count(mailbox);
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(0..users)
        .map(|u| {
            let (base, email, name) = (base.to_owned(), address(u), format!("mail-load-{tag}-{u}"));
            async move { register(&client()?, &base, &name, &email).await }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    let deadline = Instant::now() + MAIL_WAIT;
    while sink_count(mailbox) < already + users {
        ensure!(
            Instant::now() < deadline,
            "the verification mails did not all arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let http = client()?;
    let wanted: std::collections::HashSet<String> = (0..users).map(address).collect();
    for (to, text) in sink_mails(mailbox) {
        if to.len() == 1 && wanted.contains(&to[0]) && text.contains("/?verify=") {
            verify(&http, base, &token_in(&text).context("a token")?).await?;
        }
    }
    eprintln!(
        "mail_load: {users} users verified in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let queued_before = mail_total(&http, metrics, "reset_requested").await?;
    let arrived_before = sink_count(mailbox);
    signal(sink, "STOP")?;
    let queueing = Instant::now();
    // In chunks, each queued before the next is asked: past
    // `FORGOT_IN_FLIGHT` lookups at once the server drops a request (still
    // answering 202).
    let mut refused = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(QUEUE_CHUNK) {
        let asks = chunk.iter().map(|&i| {
            let (url, email) = (format!("{base}/api/password/forgot"), address(i % users));
            let http = http.clone();
            async move { post(&http, &url, &json!({"email": email})).await }
        });
        refused += futures_util::future::join_all(asks)
            .await
            .iter()
            .filter(|a| !matches!(a, Ok(202)))
            .count();
        let want = (chunk[chunk.len() - 1] + 1) as u64;
        let deadline = Instant::now() + MAIL_WAIT;
        loop {
            let queued = mail_total(&http, metrics, "reset_requested").await? - queued_before;
            if queued >= want {
                break;
            }
            if Instant::now() > deadline {
                signal(sink, "CONT")?;
                bail!("only {queued} of {want} reset mails were queued");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let queued_in = queueing.elapsed().as_secs_f64();

    let pids = Pids {
        server,
        postmaster: Some(sink),
    };
    let before = CpuSnapshot::take(pids);
    let started = Instant::now();
    signal(sink, "CONT")?;
    let mut first = None;
    let deadline = Instant::now() + MAIL_WAIT;
    loop {
        let arrived = sink_count(mailbox) - arrived_before;
        if arrived > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        if arrived >= n {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {arrived} of {n} mails arrived"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = CpuSnapshot::take(pids);
    let mut line = json!({
        "scenario": "outbox",
        "who": who,
        "mails": n,
        "users": users,
        "forgot_refused": refused,
        "queued_in_s": (queued_in * 100.0).round() / 100.0,
        "delivered_in_s": (secs * 1000.0).round() / 1000.0,
        "first_after_s": first.map(|f| (f.as_secs_f64() * 1000.0).round() / 1000.0),
        "mails_per_s": ((n as f64 / secs) * 10.0).round() / 10.0,
        "duration_s": (secs * 1000.0).round() / 1000.0,
    });
    if let Some(cpu) = before.until(&cpu) {
        let line = line.as_object_mut().unwrap();
        for (key, value) in cpu {
            line.insert(key.replace("postgres_", "sink_"), value);
        }
    }
    Ok(line)
}

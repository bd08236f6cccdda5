//! One soak run: the layout up, the users living, the faults on their
//! schedule, a JSON line per interval on stdout, and at the end every
//! revocation followed out and the families checked once more.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::checks::{self, Families, Resources};
use super::faults::{self, FaultLog};
use super::jitter::Jitter;
use super::layout::{Exit, Layout};
use super::record::Recorder;
use super::report::{self, Outcome};
use super::revocations::Tracker;
use super::settings::Settings;
use super::tls::Front;
use super::user;

/// What every task of the run shares.
#[derive(Debug)]
pub struct Ctx {
    pub settings: Settings,
    pub seed: u64,
    pub rec: Recorder,
    pub faults: FaultLog,
    pub front: Front,
    /// The services' `PUBLIC_URL` (Nginx's origin): what proofs name.
    pub public_url: String,
    /// The origin passkey assertions name.
    pub passkey_origin: String,
    /// The API processes, for probes and key checks that bypass Nginx.
    pub api_addrs: Vec<SocketAddr>,
    pub tracker: Tracker,
    pub stop: watch::Receiver<bool>,
    pub sockets_open: AtomicI64,
    pub counters: Counters,
    db_url: String,
    families: Mutex<Vec<Families>>,
    broken: Mutex<Vec<String>>,
    exits: Mutex<Vec<(u64, Exit)>>,
}

/// Counts of the racing tabs and the reuses.
#[derive(Debug, Default)]
pub struct Counters {
    pub races: AtomicU64,
    pub races_won: AtomicU64,
    pub races_lost: AtomicU64,
    pub reuses_detected: AtomicU64,
    pub reused_unexpected: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter`.
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Reads a counter.
pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Ctx {
    /// The sockets' URL as proofs name it.
    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.public_url)
    }

    /// Something the run itself could not do (a fault that failed): it
    /// breaks the run, whatever the service did.
    pub fn broken(&self, what: String) {
        eprintln!("soak: {what}");
        lock(&self.broken).push(what);
    }

    /// Checks the families in the database now (a failed check is noted,
    /// not counted as a pass).
    pub async fn check_families(&self, label: &str) {
        let at_ms = self.rec.now_ms();
        match checks::families(&self.db_url, label).await {
            Ok(families) => {
                if families.with_two > 0 {
                    eprintln!(
                        "soak: {label}: {} families with two current refresh tokens",
                        families.with_two
                    );
                }
                lock(&self.families).push(families);
            }
            Err(e) => eprintln!("soak: family check {label} at {at_ms} ms not done: {e:#}"),
        }
    }

    /// Every family check so far.
    pub fn family_checks(&self) -> Vec<Families> {
        lock(&self.families).clone()
    }

    /// What broke the run itself.
    pub fn harness_failures(&self) -> Vec<String> {
        lock(&self.broken).clone()
    }

    /// Processes that ended on their own, with when.
    pub fn exits(&self) -> Vec<(u64, Exit)> {
        lock(&self.exits).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the soak: prints the JSON lines and returns the outcome (its
/// summary not yet printed). The work directory is kept.
///
/// # Errors
/// The layout did not start.
pub async fn run(settings: Settings) -> Result<Outcome> {
    let started = Instant::now();
    let layout = Arc::new(Layout::start(&settings).await?);
    eprintln!(
        "soak: layout up in {:.1} s; logs in {}",
        started.elapsed().as_secs_f64(),
        layout.dir.display()
    );
    let (stop, stopped) = watch::channel(false);
    let t0 = Instant::now();
    let ctx = Arc::new(Ctx {
        seed: Jitter::run_seed(),
        rec: Recorder::new(t0),
        faults: FaultLog::default(),
        public_url: layout.front.origin(),
        passkey_origin: layout.front.passkey_origin(),
        front: layout.front.clone(),
        api_addrs: layout.api_addrs(),
        tracker: Tracker::new(layout.api_addrs())?,
        stop: stopped,
        sockets_open: AtomicI64::new(0),
        counters: Counters::default(),
        db_url: layout.db_url.clone(),
        families: Mutex::new(Vec::new()),
        broken: Mutex::new(Vec::new()),
        exits: Mutex::new(Vec::new()),
        settings,
    });
    emit(
        &layout.dir,
        &json!({"soak": "start", "dir": layout.dir, "settings": ctx.settings.describe(),
               "schedule": faults::schedule(ctx.settings.seconds, ctx.settings.fault_cycle)
                   .iter().map(|(at, k)| json!({"at_s": at.as_secs(), "fault": k.label()})).collect::<Vec<_>>()}),
    );
    let inflicting = tokio::spawn(faults::run(Arc::clone(&ctx), Arc::clone(&layout)));
    let (finish, finishing) = watch::channel(false);
    let monitor = tokio::spawn(monitor(Arc::clone(&ctx), Arc::clone(&layout), finishing));
    let users: Vec<_> = (0..ctx.settings.users)
        .map(|i| tokio::spawn(user::live(Arc::clone(&ctx), i)))
        .collect();
    tokio::time::sleep(Duration::from_secs(ctx.settings.seconds)).await;
    // The last line and resource samples first, with the workload still on.
    let _ = finish.send(true);
    let resources = monitor.await?;
    let _ = stop.send(true);
    let ended_ms = ctx.rec.now_ms();
    for user in users {
        if tokio::time::timeout(Duration::from_secs(30), user)
            .await
            .is_err()
        {
            ctx.broken("a user did not stop within 30 s".into());
        }
    }
    if tokio::time::timeout(Duration::from_secs(90), inflicting)
        .await
        .is_err()
    {
        ctx.broken("a fault did not end within 90 s of the run".into());
    }
    let users_done = ctx.rec.now_ms() - ended_ms;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctx.tracker.pending() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if ctx.tracker.pending() > 0 {
        ctx.broken(format!(
            "{} revocations still followed after the run",
            ctx.tracker.pending()
        ));
    }
    ctx.check_families("end").await;
    eprintln!(
        "soak: stopped; users and faults done in {users_done} ms, every revocation followed out in {} ms",
        ctx.rec.now_ms() - ended_ms
    );
    let outcome = report::summarize(&ctx, &resources, ended_ms, &layout.dir);
    let _ = std::fs::write(layout.dir.join("summary.md"), &outcome.summary);
    Ok(outcome)
}

/// Prints a JSON line on stdout, and appends it to `soak.jsonl` in `dir`.
fn emit(dir: &std::path::Path, line: &Value) {
    use std::io::Write as _;
    println!("{line}");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("soak.jsonl"))
    {
        let _ = writeln!(file, "{line}");
    }
}

/// Every second: a process that ended on its own is noted and started
/// again. Every interval: the JSON line, with a family check. Returns the
/// resources seen once `finish` says so and the last line is out.
async fn monitor(
    ctx: Arc<Ctx>,
    layout: Arc<Layout>,
    mut finish: watch::Receiver<bool>,
) -> Resources {
    let mut resources = Resources::default();
    // The baseline: the last sample before the first fault; a restarted
    // process's, a warm-up's length after it started, and at least two
    // session lifetimes: its share of the sockets comes back only as
    // sessions open new ones (a 30-minute run flagged two restarted WS
    // processes whose open files doubled from a baseline taken 43 s after
    // the restart, while they were still refilling to the others' level).
    let rewarm = (ctx.settings.fault_cycle / 7).max(ctx.settings.session_life * 2);
    let rewarm_ms = u64::try_from(rewarm.as_millis()).unwrap_or(0);
    let interval_ms = u64::try_from(ctx.settings.interval.as_millis()).unwrap_or(0);
    let warm = (rewarm_ms.saturating_sub(interval_ms), rewarm_ms);
    let mut last_line = Instant::now();
    let mut machine = machine_ticks();
    loop {
        let stopping = tokio::time::timeout(Duration::from_secs(1), finish.wait_for(|s| *s))
            .await
            .is_ok();
        for exit in layout.exits() {
            eprintln!(
                "soak: {} exited on its own ({}):\n{}",
                exit.name, exit.status, exit.log_tail
            );
            lock(&ctx.exits).push((ctx.rec.now_ms(), exit.clone()));
            if exit.name != "nginx" {
                let layout = Arc::clone(&layout);
                tokio::spawn(async move { layout.launch(&exit.name).await });
            }
        }
        if last_line.elapsed() < ctx.settings.interval && !stopping {
            continue;
        }
        let seconds = last_line.elapsed().as_secs_f64();
        last_line = Instant::now();
        ctx.check_families("interval").await;
        let now_ms = ctx.rec.now_ms();
        let mut cpu = Map::new();
        let now_machine = machine_ticks();
        let machine_pct = machine.zip(now_machine).map(|((b0, t0), (b1, t1))| {
            ((b1 - b0) as f64 / (t1 - t0).max(1) as f64 * 1000.0).round() / 10.0
        });
        machine = now_machine;
        let mut pids = layout.pids();
        if let Some(pm) = checks::postmaster(layout.pg.port()) {
            pids.push(("postgres".into(), pm));
        }
        pids.push(("soak".into(), std::process::id()));
        for (name, pid) in pids {
            let grouped = name == "nginx" || name == "postgres";
            if let Some(s) = checks::sample(pid, grouped)
                && let Some(pct) = resources.observe(&name, s, now_ms, warm)
            {
                cpu.insert(name, json!(pct));
            }
        }
        let (ops, failures, unexpected) = ctx.rec.interval(seconds);
        let families = ctx
            .family_checks()
            .last()
            .map(|f| json!({"with_current": f.with_current, "with_two": f.with_two}));
        emit(
            &layout.dir,
            &json!({
                "t_s": now_ms / 1000,
                "ops": ops,
                "sockets_open": ctx.sockets_open.load(Ordering::Relaxed),
                "failures_so_far": failures,
                "unexpected_so_far": unexpected,
                "revocations": {"followed": ctx.tracker.observations().len(), "pending": ctx.tracker.pending()},
                "faults_active": ctx.faults.active(now_ms),
                "families": families.unwrap_or(Value::Null),
                // The layout's processes and the load generator, and the
                // machine (other work on it included).
                "layout_cpu_pct_of_one_core": (cpu.values().filter_map(Value::as_f64).sum::<f64>() * 10.0).round() / 10.0,
                "machine_cpu_pct_of_all_cores": machine_pct,
                "cpu_pct_of_one_core": cpu,
                "processes": resources.now_json(now_ms),
            }),
        );
        if stopping {
            return resources;
        }
    }
}

/// The machine's (busy, total) ticks from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    Some((total - ticks.get(3)? - ticks.get(4)?, total))
}

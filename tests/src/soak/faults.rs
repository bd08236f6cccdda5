//! The faults, on a schedule: `kill -9` of an API and of a WebSocket
//! process (restarted by the run), a silent freeze of an API process's
//! database flows (then thawed), a PostgreSQL restart, a key rotation and a
//! retirement. Each is recorded with its window: from its start until 3 s
//! after the moment the processes could reach what they lost again (the
//! restarted process listens, the flows thaw, PostgreSQL accepts
//! connections), the bound the contract gives a revocation after a fault.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::layout::Layout;
use super::run::Ctx;

/// After a fault, what the contract allows a revocation: 3 s from the
/// moment the process reaches the database again.
pub const AFTER_RECOVERY_MS: u64 = 3_000;

/// How long a restarted process's supervisor waits before starting it.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// `kill -9` of `api-<n + 1>`, restarted.
    KillApi(usize),
    /// `kill -9` of `ws-<n + 1>`, restarted.
    KillWs(usize),
    /// Every database flow of `api-<n + 1>` frozen, new ones held, then thawed.
    FreezeApi(usize),
    /// `pg_ctl restart -m fast`.
    PgRestart,
    /// `authd keys rotate`.
    Rotate,
    /// `authd keys retire` of the key the last rotation replaced.
    Retire,
}

impl FaultKind {
    /// Its name in the output.
    pub fn label(&self) -> String {
        match self {
            Self::KillApi(i) => format!("kill -9 api-{}", i + 1),
            Self::KillWs(i) => format!("kill -9 ws-{}", i + 1),
            Self::FreezeApi(i) => format!("freeze api-{} db flows", i + 1),
            Self::PgRestart => "postgres restart".into(),
            Self::Rotate => "key rotation".into(),
            Self::Retire => "key retirement".into(),
        }
    }

    /// Whether a request may meet `503 database_unavailable` in its window.
    pub fn database_outage(&self) -> bool {
        matches!(self, Self::PgRestart | Self::FreezeApi(_))
    }

    /// Whether it delays what API process `api` learns of revocations.
    pub fn affects_api(&self, api: usize) -> bool {
        match self {
            Self::KillApi(i) | Self::FreezeApi(i) => *i == api,
            Self::PgRestart => true,
            Self::KillWs(_) | Self::Rotate | Self::Retire => false,
        }
    }

    /// Whether it delays what the WebSocket processes learn.
    pub fn affects_sockets(&self) -> bool {
        matches!(self, Self::PgRestart)
    }
}

/// A fault that happened.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub kind: FaultKind,
    pub started_ms: u64,
    /// When what was lost is back (`None` while it lasts).
    pub recovered_ms: Option<u64>,
    /// For a key fault: how long until every API process followed it.
    pub follow_ms: Option<u64>,
    pub note: String,
}

impl FaultRecord {
    /// The end of its window (`now_ms` stands in for a recovery to come).
    pub fn window_end(&self, now_ms: u64) -> u64 {
        self.recovered_ms.unwrap_or(now_ms) + AFTER_RECOVERY_MS
    }

    /// Whether `at_ms` falls in its window.
    pub fn covers(&self, at_ms: u64, now_ms: u64) -> bool {
        (self.started_ms..=self.window_end(now_ms)).contains(&at_ms)
    }
}

/// The faults so far, and the keys retired (whose tokens are refused on
/// purpose from then on).
#[derive(Debug, Default)]
pub struct FaultLog {
    records: Mutex<Vec<FaultRecord>>,
    retired: Mutex<Vec<String>>,
}

impl FaultLog {
    /// Every fault so far.
    pub fn records(&self) -> Vec<FaultRecord> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether `kid` was retired (or is being retired: the kid is noted
    /// before the command runs).
    pub fn retired(&self, kid: &str) -> bool {
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|k| k == kid)
    }

    /// The labels of the faults whose window covers now.
    pub fn active(&self, now_ms: u64) -> Vec<String> {
        self.records()
            .iter()
            .filter(|f| f.covers(now_ms, now_ms))
            .map(|f| f.kind.label())
            .collect()
    }

    fn begin(&self, kind: FaultKind, started_ms: u64) -> usize {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.push(FaultRecord {
            kind,
            started_ms,
            recovered_ms: None,
            follow_ms: None,
            note: String::new(),
        });
        records.len() - 1
    }

    fn end(&self, index: usize, recovered_ms: u64, follow_ms: Option<u64>, note: String) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(record) = records.get_mut(index) {
            record.recovered_ms = Some(recovered_ms);
            record.follow_ms = follow_ms;
            record.note = note;
        }
    }
}

/// The schedule: one round of the six faults per `fault_cycle`, at
/// sevenths of it (the first seventh is the warm-up), the processes hit
/// changing from round to round.
pub fn schedule(seconds: u64, cycle: Duration) -> Vec<(Duration, FaultKind)> {
    let run = Duration::from_secs(seconds);
    let mut plan = Vec::new();
    let mut round = 0;
    while cycle * round < run {
        let start = cycle * round;
        let r = round as usize;
        let kinds = [
            FaultKind::KillApi(r % 3),
            FaultKind::FreezeApi((r + 2) % 3),
            FaultKind::Rotate,
            FaultKind::KillWs((r + 1) % 3),
            FaultKind::PgRestart,
            FaultKind::Retire,
        ];
        for (slot, kind) in (1u32..).zip(kinds) {
            let at = start + cycle * slot / 7;
            if at + Duration::from_secs(5) < run {
                plan.push((at, kind));
            }
        }
        round += 1;
    }
    plan
}

/// Runs the schedule until its end or the run's end; after each fault's
/// window, the families are checked in the database.
pub async fn run(ctx: Arc<Ctx>, layout: Arc<Layout>) {
    let plan = schedule(ctx.settings.seconds, ctx.settings.fault_cycle);
    let mut stop = ctx.stop.clone();
    let mut replaced: Option<String> = None;
    for (at, kind) in plan {
        let due = ctx
            .rec
            .instant(u64::try_from(at.as_millis()).unwrap_or(u64::MAX));
        tokio::select! {
            () = tokio::time::sleep_until(due.into()) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let index = ctx.faults.begin(kind.clone(), ctx.rec.now_ms());
        eprintln!("soak: {} at {} ms", kind.label(), ctx.rec.now_ms());
        let outcome = inflict(&ctx, &layout, &kind, &mut replaced).await;
        let (follow, note) = match outcome {
            Ok(done) => done,
            Err(e) => {
                let note = format!("failed: {e:#}");
                eprintln!("soak: {}: {note}", kind.label());
                ctx.broken(format!("fault {}: {note}", kind.label()));
                (None, note)
            }
        };
        ctx.faults.end(index, ctx.rec.now_ms(), follow, note);
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(AFTER_RECOVERY_MS)).await;
            ctx.check_families(&format!("after {}", kind.label())).await;
        });
    }
}

/// Does `kind`; returns how long the processes took to follow (key
/// faults) and a note.
async fn inflict(
    ctx: &Ctx,
    layout: &Layout,
    kind: &FaultKind,
    replaced: &mut Option<String>,
) -> Result<(Option<u64>, String)> {
    let started = Instant::now();
    match kind {
        FaultKind::KillApi(i) | FaultKind::KillWs(i) => {
            let name = if matches!(kind, FaultKind::KillApi(_)) {
                format!("api-{}", i + 1)
            } else {
                format!("ws-{}", i + 1)
            };
            layout.kill(&name)?;
            tokio::time::sleep(RESTART_DELAY).await;
            layout.launch(&name).await?;
            let took = started.elapsed().as_millis();
            Ok((
                None,
                format!("restarted, listening {took} ms after the kill"),
            ))
        }
        FaultKind::FreezeApi(i) => {
            let name = format!("api-{}", i + 1);
            layout.freeze(&name, true)?;
            tokio::time::sleep(ctx.settings.freeze_for).await;
            layout.freeze(&name, false)?;
            Ok((
                None,
                format!("thawed after {} s", ctx.settings.freeze_for.as_secs()),
            ))
        }
        FaultKind::PgRestart => {
            layout.pg.restart().await;
            let took = started.elapsed().as_millis();
            Ok((
                None,
                format!("accepting connections {took} ms after the restart began"),
            ))
        }
        FaultKind::Rotate => {
            let listed = layout.keys("list").await?;
            let current = listed
                .lines()
                .find(|l| l.split_whitespace().nth(2) == Some("current"))
                .and_then(|l| l.split_whitespace().next())
                .context("no current key in `authd keys list`")?
                .to_owned();
            let added = layout.keys("rotate").await?;
            let kid = added
                .split_whitespace()
                .nth(1)
                .context("`authd keys rotate` named no kid")?
                .to_owned();
            let follow = follow(ctx, |kids| kids.contains(&kid)).await?;
            *replaced = Some(current.clone());
            Ok((
                Some(follow),
                format!("{kid} published, replacing {current}"),
            ))
        }
        FaultKind::Retire => {
            let kid = replaced
                .take()
                .context("no rotation to retire the key of")?;
            ctx.faults
                .retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(kid.clone());
            let out = layout.keys(&format!("retire {kid}")).await?;
            let follow = follow(ctx, |kids| kids.iter().all(|k| *k != kid)).await?;
            Ok((Some(follow), out.trim().to_owned()))
        }
    }
}

/// Polls every API process's JWKS until `done` holds for each; the time it
/// took the last one (in ms), at most 30 s.
async fn follow(ctx: &Ctx, done: impl Fn(&[String]) -> bool) -> Result<u64> {
    let started = Instant::now();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    for addr in &ctx.api_addrs {
        let url = format!("http://{addr}/api/.well-known/jwks.json");
        loop {
            let kids: Vec<String> = match http.get(&url).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["keys"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                    .collect(),
                Err(_) => Vec::new(),
            };
            if !kids.is_empty() && done(&kids) {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "{addr} did not follow within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX))
}

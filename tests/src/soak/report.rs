//! The verdicts and the summary table: each invariant with its counts,
//! latency before, during and after each fault, the revocations by kind,
//! resources after the warm-up; the last line says how many invariants
//! held, or which broke.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::checks::Resources;
use super::faults::{FaultKind, FaultRecord};
use super::record::{Failure, Op};
use super::revocations::judge;
use super::run::{Ctx, get};
use crate::load::percentile_ms;

/// The contract's bound on following a key rotation or retirement.
const KEY_FOLLOW_MS: u64 = 10_000;

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Invariants checked, and the names of those that broke.
    pub invariants: usize,
    pub broken: Vec<String>,
    /// The summary table, its last line the verdict.
    pub summary: String,
    /// The work directory (logs, `soak.jsonl`, `summary.md`).
    pub dir: std::path::PathBuf,
}

impl Outcome {
    /// Whether every invariant held.
    pub fn held(&self) -> bool {
        self.broken.is_empty()
    }
}

struct Table {
    rows: Vec<(String, String, u64, String)>,
}

impl Table {
    fn add(&mut self, name: &str, checked: String, violations: u64, detail: String) {
        self.rows
            .push((name.to_owned(), checked, violations, detail));
    }
}

/// Judges everything seen in a run that ended (its workload) at `ended_ms`.
pub fn summarize(ctx: &Ctx, resources: &Resources, ended_ms: u64, dir: &Path) -> Outcome {
    let now_ms = ctx.rec.now_ms();
    let faults = ctx.faults.records();
    let mut t = Table { rows: Vec::new() };
    let mut out = String::new();

    // 5xx and unanswered requests.
    let all_failures = ctx.rec.failures();
    let (db, killed, bad) = failures(&all_failures, &faults, now_ms);
    let answered: u64 = ctx.rec.statuses().values().sum();
    let examples: Vec<String> = bad
        .iter()
        .take(3)
        .map(|f| format!("{} {} {} at {} ms", f.op.name(), f.status, f.code, f.at_ms))
        .collect();
    t.add(
        "no 5xx or unanswered request outside a fault window",
        format!("{answered} requests"),
        bad.len() as u64,
        format!(
            "excused: {db} x 503 database_unavailable in outages, {killed} in kill windows {}",
            examples.join("; ")
        ),
    );

    // Revocations.
    let observations = ctx.tracker.observations();
    let (rest, ws) = judge(&observations, &faults, now_ms, ctx.settings.bound_slack);
    let brief = |d: &super::revocations::Delivery| {
        let j = d.to_json();
        format!(
            "{} within 1 s, {} within a fault's 3 s, {} late, {} missed, {} wrong close, {} excused; p50 {} ms p99 {} ms, worst {} ms outside faults, {} ms overall {}",
            d.within_normal,
            d.within_fault,
            d.late,
            d.missed,
            d.wrong_code,
            d.excused,
            j["p50_ms"],
            j["p99_ms"],
            d.worst_normal_ms,
            d.worst_ms,
            d.examples.join("; ")
        )
    };
    t.add(
        "revoked sessions' sockets close 4003 in bound",
        format!("{} sockets", ws.checked),
        ws.broken(),
        brief(&ws),
    );
    t.add(
        "every API process refuses a revoked token in bound",
        format!("{} probes", rest.checked),
        rest.broken(),
        brief(&rest),
    );

    // Families.
    let checks = ctx.family_checks();
    let two = checks.iter().filter(|c| c.with_two > 0).count() as u64;
    let worst = checks.iter().map(|c| c.with_two).max().unwrap_or(0);
    let live = checks.iter().map(|c| c.live_with_two).max().unwrap_or(0);
    let after_faults = checks
        .iter()
        .filter(|c| c.label.starts_with("after"))
        .count();
    let last = checks.last().map_or(0, |c| c.with_current);
    t.add(
        "no family with two current refresh tokens (SQL)",
        format!("{} checks", checks.len()),
        two + u64::from(checks.is_empty()),
        format!("{after_faults} after faults, the last at the end ({last} families hold one); most with two: {worst} ({live} not revoked)"),
    );

    // Reuse.
    let c = &ctx.counters;
    let reuses = observations.iter().filter(|o| o.kind == "reuse").count();
    t.add(
        "no refresh_reused but the deliberate reuses",
        format!("{} deliberate", get(&c.reuses_detected)),
        get(&c.reused_unexpected),
        format!(
            "{} deliberate reuses detected and followed ({reuses})",
            get(&c.reuses_detected)
        ),
    );
    let unexpected = ctx.rec.unexpected_answers();
    let race_broken = unexpected
        .iter()
        .filter(|(_, op, _)| *op == Op::RefreshRace)
        .count() as u64;
    t.add(
        "racing tabs inside the grace both succeed",
        format!("{} races", get(&c.races)),
        race_broken,
        format!(
            "{} both 200 with one new token, {} not (unanswered ones excused in fault windows)",
            get(&c.races_won),
            get(&c.races_lost)
        ),
    );
    let other: Vec<&(u64, Op, String)> = unexpected
        .iter()
        .filter(|(_, op, what)| *op != Op::RefreshRace && !what.contains("refresh_reused"))
        .collect();
    // A workload that never logged in one way did not test it.
    let statuses = ctx.rec.statuses();
    let logins = [Op::Login, Op::LoginMfa, Op::LoginDpop, Op::LoginPasskey];
    let unserved: Vec<&str> = logins
        .iter()
        .filter(|op| !statuses.contains_key(&(**op, 200)))
        .map(|op| op.name())
        .collect();
    let mut detail: Vec<String> = other
        .iter()
        .take(3)
        .map(|(at, op, w)| format!("{} at {at} ms: {w}", op.name()))
        .collect();
    if !unserved.is_empty() {
        detail.push(format!("no login succeeded as: {}", unserved.join(", ")));
    }
    t.add(
        "live sessions are served (no unexpected 4xx), every kind of login",
        format!("{answered} requests"),
        (other.len() + unserved.len()) as u64,
        detail.join("; "),
    );

    // Socket closes of sessions nobody revoked.
    let revoked: BTreeSet<&str> = observations.iter().map(|o| o.sid.as_str()).collect();
    let mut closes: BTreeMap<String, u64> = BTreeMap::new();
    let mut wrong = Vec::new();
    for close in ctx.rec.closes() {
        let code = close.code.map_or("dropped".to_owned(), |c| c.to_string());
        *closes.entry(code.clone()).or_default() += 1;
        let excused = revoked.contains(close.sid.as_str())
            || (close.code == Some(4001) && ctx.faults.retired(&close.kid))
            || (close.code.is_none()
                && faults.iter().any(|f| {
                    matches!(f.kind, FaultKind::KillWs(_)) && f.covers(close.at_ms, now_ms)
                }))
            || close.at_ms >= ended_ms;
        if !excused {
            wrong.push(format!("{code} at {} ms", close.at_ms));
        }
    }
    t.add(
        "live sessions' sockets stay open",
        format!("{} closes", closes.values().sum::<u64>()),
        wrong.len() as u64,
        format!(
            "by code {closes:?} (revoked, retired key, killed process excused) {}",
            wrong.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ),
    );

    // Processes.
    let exits = ctx.exits();
    t.add(
        "no process exit but the killed ones",
        "6 authd + nginx".into(),
        exits.len() as u64,
        exits
            .iter()
            .map(|(at, e)| format!("{} at {at} ms: {}", e.name, e.status))
            .collect::<Vec<_>>()
            .join("; "),
    );
    let growth = resources.growth();
    let judged: Vec<_> = growth.iter().filter(|g| g.judged()).collect();
    let leaks = judged.iter().filter(|g| g.leaks()).count() as u64;
    let rss_kib = judged
        .iter()
        .map(|g| g.last_rss_kib as i64 - g.baseline_rss_kib as i64)
        .max()
        .unwrap_or(0);
    let fds = judged
        .iter()
        .map(|g| g.last_fds as i64 - g.baseline_fds as i64)
        .max()
        .unwrap_or(0);
    t.add(
        "memory and open files flat after warm-up (authd, nginx)",
        format!("{} processes", judged.len()),
        leaks,
        format!(
            "most growth {:+.1} MiB RSS, {fds:+} open files; thresholds RSS +max(64 MiB, 50 %), \
             open files +max(200, 100 %); table below",
            rss_kib as f64 / 1024.0
        ),
    );
    let keys: Vec<&FaultRecord> = faults
        .iter()
        .filter(|f| matches!(f.kind, FaultKind::Rotate | FaultKind::Retire))
        .collect();
    let slow = keys
        .iter()
        .filter(|f| f.follow_ms.is_none_or(|ms| ms > KEY_FOLLOW_MS))
        .count() as u64;
    t.add(
        "every API process follows a key rotation / retirement in 10 s",
        format!("{} key faults", keys.len()),
        slow,
        keys.iter()
            .map(|f| format!("{}: {:?} ms", f.kind.label(), f.follow_ms))
            .collect::<Vec<_>>()
            .join("; "),
    );
    let harness = ctx.harness_failures();
    t.add(
        "every fault inflicted and recovered",
        format!("{} faults", faults.len()),
        harness.len() as u64,
        harness.join("; "),
    );

    let _ = writeln!(
        out,
        "\nsoak summary ({} s of workload, logs in {})\n",
        ended_ms / 1000,
        dir.display()
    );
    let _ = writeln!(
        out,
        "| invariant | checked | broken | detail |\n|---|---|---|---|"
    );
    for (name, checked, violations, detail) in &t.rows {
        let _ = writeln!(out, "| {name} | {checked} | {violations} | {detail} |");
    }
    latency(&mut out, ctx, &faults, now_ms);
    kinds(&mut out, &observations);
    let _ = writeln!(
        out,
        "\n| process | RSS after warm-up → end (peak), MiB | open files → end (peak) | over |\n|---|---|---|---|"
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    for g in &growth {
        let _ = writeln!(
            out,
            "| {} | {:.1} → {:.1} ({:.1}) | {} → {} ({}) | {} s |",
            g.name,
            mib(g.baseline_rss_kib),
            mib(g.last_rss_kib),
            mib(g.peak_rss_kib),
            g.baseline_fds,
            g.last_fds,
            g.peak_fds,
            g.over_s
        );
    }
    let broken: Vec<String> = t
        .rows
        .iter()
        .filter(|r| r.2 > 0)
        .map(|r| r.0.clone())
        .collect();
    let invariants = t.rows.len();
    if broken.is_empty() {
        let _ = write!(
            out,
            "\nsoak: {invariants} invariants held over {} s",
            ended_ms / 1000
        );
    } else {
        let _ = write!(
            out,
            "\nsoak: {} of {invariants} invariants broke over {} s: {}",
            broken.len(),
            ended_ms / 1000,
            broken.join("; ")
        );
    }
    Outcome {
        invariants,
        broken,
        summary: out,
        dir: dir.to_path_buf(),
    }
}

/// Failures excused by a database outage, by a kill, and the others.
fn failures<'a>(
    all: &'a [Failure],
    faults: &[FaultRecord],
    now_ms: u64,
) -> (u64, u64, Vec<&'a Failure>) {
    let (mut db, mut killed, mut bad) = (0, 0, Vec::new());
    for f in all {
        let in_window = |pick: &dyn Fn(&FaultKind) -> bool| {
            faults
                .iter()
                .any(|w| pick(&w.kind) && w.covers(f.at_ms, now_ms))
        };
        if f.status == 503
            && f.code == "database_unavailable"
            && in_window(&FaultKind::database_outage)
        {
            db += 1;
        } else if matches!(f.status, 0 | 502 | 503 | 504)
            && f.code != "database_unavailable"
            && in_window(&|k: &FaultKind| match k {
                FaultKind::KillApi(_) => !f.op.is_socket(),
                FaultKind::KillWs(_) => f.op.is_socket(),
                _ => false,
            })
        {
            killed += 1;
        } else {
            bad.push(f);
        }
    }
    (db, killed, bad)
}

/// The faults, then p50/p99 of the main operations in the 10 s before
/// each fault, during its window and in the 10 s after.
fn latency(out: &mut String, ctx: &Ctx, faults: &[FaultRecord], now_ms: u64) {
    let _ = writeln!(
        out,
        "\n| fault | at s | window s | what happened |\n|---|---|---|---|"
    );
    for f in faults {
        let window = f.window_end(now_ms).saturating_sub(f.started_ms) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "| {} | {:.1} | {window:.1} | {} |",
            f.kind.label(),
            f.started_ms as f64 / 1000.0,
            f.note
        );
    }
    let _ = writeln!(
        out,
        "\n| fault | operation | before: p50 / p99 ms (n) | during | after |\n|---|---|---|---|---|"
    );
    let ops = [
        Op::Login,
        Op::Refresh,
        Op::Protected,
        Op::ProtectedDpop,
        Op::WsOpen,
        Op::WsReauth,
    ];
    let ms = |v: serde_json::Value| v.as_f64().map_or("-".to_owned(), |ms| format!("{ms:.1}"));
    for f in faults {
        let end = f.window_end(now_ms);
        for op in ops {
            let cell = |from: u64, to: u64| {
                let us = ctx.rec.window(op, from, to);
                format!(
                    "{} / {} ({})",
                    ms(percentile_ms(&us, 0.5)),
                    ms(percentile_ms(&us, 0.99)),
                    us.len()
                )
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                f.kind.label(),
                op.name(),
                cell(f.started_ms.saturating_sub(10_000), f.started_ms),
                cell(f.started_ms, end),
                cell(end, end + 10_000)
            );
        }
    }
    let _ = writeln!(out, "\n| operation | answered | by status |\n|---|---|---|");
    let mut by_op: BTreeMap<Op, BTreeMap<u16, u64>> = BTreeMap::new();
    for ((op, status), n) in ctx.rec.statuses() {
        *by_op.entry(op).or_default().entry(status).or_default() += n;
    }
    for (op, statuses) in by_op {
        let _ = writeln!(
            out,
            "| {} | {} | {statuses:?} |",
            op.name(),
            statuses.values().sum::<u64>()
        );
    }
}

fn kinds(out: &mut String, observations: &[super::revocations::Observation]) {
    let mut by_kind: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for o in observations {
        let entry = by_kind.entry(o.kind).or_default();
        entry.0 += 1;
        entry.1 += o.sockets.len() as u64;
    }
    let _ = writeln!(
        out,
        "\n| revocation | sessions | their sockets |\n|---|---|---|"
    );
    for (kind, (n, sockets)) in by_kind {
        let _ = writeln!(out, "| {kind} | {n} | {sockets} |");
    }
}

//! The checks that read the system itself: the token families in the
//! database (no family may ever hold two current refresh tokens), and
//! every process's resident memory, open files and CPU from `/proc`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::load::parent_and_ticks;
use crate::process::which;

/// One look at the families.
#[derive(Debug, Clone)]
pub struct Families {
    /// When and why it was taken (`interval`, `after <fault>`, `end`).
    pub label: String,
    /// Families holding a current (unrotated) refresh token.
    pub with_current: u64,
    /// Families holding two or more: a violation, whether or not the family
    /// was revoked since.
    pub with_two: u64,
    /// Of those, the ones not revoked (two live tokens).
    pub live_with_two: u64,
}

/// Counts the families with two current refresh tokens (`sessions` and
/// `refresh_tokens`, migration/src/m20261126_00000{2,3}).
///
/// # Errors
/// `psql` failed (the database is restarting, say).
pub async fn families(db_url: &str, label: &str) -> Result<Families> {
    const SQL: &str = "SELECT count(*), count(*) FILTER (WHERE n > 1), \
        count(*) FILTER (WHERE n > 1 AND live) FROM ( \
          SELECT rt.session_id, count(*) AS n, bool_and(s.revoked_at IS NULL) AS live \
          FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
          WHERE rt.rotated_at IS NULL GROUP BY rt.session_id) f";
    let psql = which("psql").context("psql not found")?;
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(psql)
            .args(["-X", "-q", "-t", "-A", "-F", " ", db_url, "-c", SQL])
            .output(),
    )
    .await
    .context("psql took over 20 s")??;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let numbers: Vec<u64> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [with_current, with_two, live_with_two] = numbers[..] else {
        bail!("psql said {text:?}");
    };
    Ok(Families {
        label: label.to_owned(),
        with_current,
        with_two,
        live_with_two,
    })
}

/// A process's resources now (summed over its children for Nginx).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub rss_kib: u64,
    pub fds: u64,
    pub ticks: u64,
}

/// `VmRSS`, the open descriptors and the CPU ticks of `pid` (and, with
/// `children`, of its children too).
pub fn sample(pid: u32, children: bool) -> Option<ProcSample> {
    let mut total = one(pid)?;
    if children {
        for child in children_of(pid) {
            if let Some(s) = one(child) {
                total.rss_kib += s.rss_kib;
                total.fds += s.fds;
                total.ticks += s.ticks;
            }
        }
    }
    Some(total)
}

fn one(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let (_, ticks) = parent_and_ticks(pid)?;
    Some(ProcSample {
        rss_kib,
        fds,
        ticks,
    })
}

fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_and_ticks(*pid).is_some_and(|(p, _)| p == parent))
        .collect()
}

/// The postmaster listening on `port` (its command line names the port).
pub fn postmaster(port: u16) -> Option<u32> {
    let needle = format!("-p\0{port}\0");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("postgres") && c.contains(&needle) && !c.contains("pg_ctl")
            })
        })
}

/// Resources over time, by process (a restarted process is a new series).
#[derive(Debug, Default)]
pub struct Resources {
    series: BTreeMap<String, Series>,
}

#[derive(Debug, Clone)]
struct Series {
    first_ms: u64,
    baseline: Option<(u64, ProcSample)>,
    last: (u64, ProcSample),
    peak_rss_kib: u64,
    peak_fds: u64,
}

/// What a process's resources did after its warm-up.
#[derive(Debug, Clone)]
pub struct Growth {
    pub name: String,
    pub baseline_rss_kib: u64,
    pub last_rss_kib: u64,
    pub peak_rss_kib: u64,
    pub baseline_fds: u64,
    pub last_fds: u64,
    pub peak_fds: u64,
    /// Seconds between the baseline and the last sample.
    pub over_s: u64,
}

impl Growth {
    /// Whether it is a process of the service (`authd`, Nginx): the ones
    /// judged. PostgreSQL's backends come and go, and each counts the
    /// shared buffers it touched; the load generator is not the service.
    pub fn judged(&self) -> bool {
        self.name.starts_with("api-") || self.name.starts_with("ws-") || self.name == "nginx"
    }

    /// Whether it grew past the thresholds the summary states: resident
    /// memory by more than max(64 MiB, half its baseline), open files by
    /// more than max(200, its baseline).
    pub fn leaks(&self) -> bool {
        let rss = self.last_rss_kib.saturating_sub(self.baseline_rss_kib);
        let fds = self.last_fds.saturating_sub(self.baseline_fds);
        rss > (64 * 1024).max(self.baseline_rss_kib / 2) || fds > 200.max(self.baseline_fds)
    }
}

impl Resources {
    /// Records `name`'s sample at `now_ms`; the baseline is its first
    /// sample from `warm_ms` on, or, for a process that appeared later (a
    /// restarted one, whose sockets come back as their clients reconnect),
    /// `rewarm_ms` after it appeared. Returns its CPU since the previous
    /// sample, in % of one core.
    pub fn observe(
        &mut self,
        name: &str,
        s: ProcSample,
        now_ms: u64,
        (warm_ms, rewarm_ms): (u64, u64),
    ) -> Option<f64> {
        let series = self.series.entry(name.to_owned()).or_insert(Series {
            first_ms: now_ms,
            baseline: None,
            last: (now_ms, s),
            peak_rss_kib: 0,
            peak_fds: 0,
        });
        let (prev_ms, prev) = series.last;
        series.last = (now_ms, s);
        let due = if series.first_ms < warm_ms {
            warm_ms
        } else {
            series.first_ms + rewarm_ms
        };
        if series.baseline.is_none() && now_ms >= due {
            series.baseline = Some((now_ms, s));
        }
        if series.baseline.is_some() {
            series.peak_rss_kib = series.peak_rss_kib.max(s.rss_kib);
            series.peak_fds = series.peak_fds.max(s.fds);
        }
        // Ticks are 1/100 s (USER_HZ).
        let elapsed_ms = now_ms.checked_sub(prev_ms).filter(|ms| *ms > 0)?;
        Some(
            (s.ticks.saturating_sub(prev.ticks) as f64 * 10.0 / elapsed_ms as f64 * 1000.0).round()
                / 10.0,
        )
    }

    /// Every series that has a baseline.
    pub fn growth(&self) -> Vec<Growth> {
        self.series
            .iter()
            .filter_map(|(name, s)| {
                let (base_ms, base) = s.baseline?;
                let (last_ms, last) = s.last;
                Some(Growth {
                    name: name.clone(),
                    baseline_rss_kib: base.rss_kib,
                    last_rss_kib: last.rss_kib,
                    peak_rss_kib: s.peak_rss_kib,
                    baseline_fds: base.fds,
                    last_fds: last.fds,
                    peak_fds: s.peak_fds,
                    over_s: (last_ms - base_ms) / 1000,
                })
            })
            .collect()
    }

    /// The interval line's `processes` member: RSS (MiB) and open files now.
    pub fn now_json(&self, now_ms: u64) -> Value {
        let mut out = serde_json::Map::new();
        for (name, s) in &self.series {
            if s.last.0 == now_ms {
                out.insert(
                    name.clone(),
                    json!({"rss_mib": (s.last.1.rss_kib as f64 / 102.4).round() / 10.0, "fds": s.last.1.fds}),
                );
            }
        }
        Value::Object(out)
    }
}

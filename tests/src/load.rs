//! What the load examples (`login_load`, `dpop_load`) measure alike: the
//! CPU of the server, PostgreSQL, the client and everything else over a
//! scenario (from `/proc`), and latency quantiles.

use serde_json::{Value, json};

/// The `p` quantile of sorted microseconds, in milliseconds (nearest rank;
/// `null` without samples).
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> Value {
    if sorted_us.is_empty() {
        return Value::Null;
    }
    let rank = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len());
    json!(sorted_us[rank - 1] as f64 / 1000.0)
}

/// The processes whose CPU the JSON line shows apart.
#[derive(Clone, Copy, Debug)]
pub struct Pids {
    /// The server process.
    pub server: Option<u32>,
    /// PostgreSQL's postmaster: it and its children (the backends).
    pub postmaster: Option<u32>,
}

/// CPU time so far, in the ticks of `/proc/stat`.
#[derive(Debug)]
pub struct CpuSnapshot {
    /// All CPUs: (busy, total).
    machine: Option<(u64, u64)>,
    server: Option<u64>,
    postgres: Option<u64>,
    client: Option<u64>,
}

impl CpuSnapshot {
    /// The counters now.
    pub fn take(pids: Pids) -> Self {
        let machine = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            let ticks: Vec<u64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|t| t.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            let total: u64 = ticks.iter().take(8).sum();
            Some((total - ticks.get(3)? - ticks.get(4)?, total))
        });
        // A backend that exits inside the window takes its ticks along; the
        // server's pool keeps its connections, so few do.
        let postgres = pids.postmaster.map(|postmaster| {
            std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| {
                    let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                    let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                    let (parent, ticks) = process_ticks(&stat)?;
                    (pid == postmaster || parent == postmaster).then_some(ticks)
                })
                .sum()
        });
        let ticks_of = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|s| process_ticks(&s))
                .map(|(_, ticks)| ticks)
        };
        Self {
            machine,
            server: pids
                .server
                .and_then(|pid| ticks_of(&format!("/proc/{pid}/stat"))),
            postgres,
            client: ticks_of("/proc/self/stat"),
        }
    }

    /// `*_cpu_pct_of_one_core` from `self` to `later` (`null` for a process
    /// not given).
    /// The CPU between this snapshot and `later`, as JSON members
    /// (`server_cpu_pct_of_one_core` and the like).
    pub fn until(&self, later: &Self) -> Option<serde_json::Map<String, Value>> {
        let ((busy0, total0), (busy1, total1)) = (self.machine?, later.machine?);
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        // Ticks of all CPUs over the window; one core's share of them.
        let one_core = (total1.checked_sub(total0)? as f64 / cpus as f64).max(1.0);
        let pct = |ticks: u64| (ticks as f64 / one_core * 1000.0).round() / 10.0;
        let spent = |a: Option<u64>, b: Option<u64>| b.zip(a).map(|(b, a)| b.saturating_sub(a));
        let server = spent(self.server, later.server);
        let postgres = spent(self.postgres, later.postgres);
        let client = spent(self.client, later.client);
        let known = server.unwrap_or(0) + postgres.unwrap_or(0) + client.unwrap_or(0);
        let mut out = serde_json::Map::new();
        for (name, ticks) in [
            ("server", server),
            ("postgres", postgres),
            ("client", client),
            (
                "other",
                Some(busy1.saturating_sub(busy0).saturating_sub(known)),
            ),
        ] {
            out.insert(format!("{name}_cpu_pct_of_one_core"), json!(ticks.map(pct)));
        }
        out.insert("machine_cpus".into(), json!(cpus));
        Some(out)
    }
}

/// The parent and the CPU ticks so far (utime + stime, in the ticks of
/// `/proc/stat`) of process `pid`.
pub fn parent_and_ticks(pid: u32) -> Option<(u32, u64)> {
    process_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The parent and utime + stime of a `/proc/<pid>/stat` line.
fn process_ticks(stat: &str) -> Option<(u32, u64)> {
    // After "pid (comm) ": the state is field 3, the parent 4, utime 14 and
    // stime 15.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((fields.get(1)?.parse().ok()?, ticks))
}

/// The wall clock's Unix seconds.
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

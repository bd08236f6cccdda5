//! What a soak run is told: the binary, how long, and the workload's size
//! and pace, with the two presets (a release run, the CI run) and the
//! `SOAK_*` environment variables that override them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

/// A soak run's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `authd` binary every process runs.
    pub authd: PathBuf,
    /// How long the workload runs once set up.
    pub seconds: u64,
    /// Virtual users, each with one or two devices (source addresses).
    pub users: usize,
    /// Sockets a user's main session opens through Nginx.
    pub sockets_per_session: usize,
    /// Sockets of a user's second session (the one a session delete or a
    /// password change revokes).
    pub sockets_second_session: usize,
    /// How long a session is used before it is ended (±25 %).
    pub session_life: Duration,
    /// One protected call per this, per session.
    pub protected_every: Duration,
    /// One refresh per this, per session.
    pub refresh_every: Duration,
    /// One refresh in this many is two racing tabs.
    pub race_one_in: u64,
    /// Every socket reauths once per this.
    pub reauth_every: Duration,
    /// One JSON line per this.
    pub interval: Duration,
    /// The signing keys' algorithm (`JWT_ALG`).
    pub jwt_alg: String,
    /// One round of the six faults takes this long; a longer run repeats it.
    pub fault_cycle: Duration,
    /// How long the frozen process's database flows stay frozen.
    pub freeze_for: Duration,
    /// `KEY_PUBLISH_AHEAD` of every process.
    pub key_publish_ahead: Duration,
    /// What a measurement may add to the contract's 1 s / 3 s bounds
    /// (the probe period, a loaded machine).
    pub bound_slack: Duration,
    /// Where the logs go (a fresh directory under the system's temporary
    /// directory when unset).
    pub dir: Option<PathBuf>,
}

impl Settings {
    /// The release run of `tests/load/soak.sh`: about 2,400 sockets.
    pub fn release(authd: PathBuf, seconds: u64) -> Self {
        Self {
            authd,
            seconds,
            users: 200,
            sockets_per_session: 12,
            sockets_second_session: 2,
            session_life: Duration::from_secs(45),
            protected_every: Duration::from_secs(2),
            refresh_every: Duration::from_secs(15),
            race_one_in: 4,
            reauth_every: Duration::from_secs(30),
            interval: Duration::from_secs(10),
            jwt_alg: "ES256".into(),
            fault_cycle: Duration::from_secs(300),
            freeze_for: Duration::from_secs(10),
            key_publish_ahead: Duration::from_secs(60),
            bound_slack: Duration::ZERO,
            dir: None,
        }
    }

    /// The CI run: 60 s on the debug binary, at a lower rate.
    pub fn ci(authd: PathBuf) -> Self {
        Self {
            seconds: 60,
            users: 40,
            sockets_per_session: 5,
            sockets_second_session: 1,
            session_life: Duration::from_secs(20),
            refresh_every: Duration::from_secs(6),
            reauth_every: Duration::from_secs(8),
            fault_cycle: Duration::from_secs(60),
            freeze_for: Duration::from_secs(5),
            key_publish_ahead: Duration::from_secs(10),
            bound_slack: Duration::from_millis(500),
            ..Self::release(authd, 60)
        }
    }

    /// `self` with the `SOAK_*` variables that are set applied:
    /// `SOAK_USERS`, `SOAK_SOCKETS`, `SOAK_SESSION_S`, `SOAK_INTERVAL_S`,
    /// `SOAK_CYCLE_S`, `SOAK_JWT_ALG`, `SOAK_SLACK_MS`, `SOAK_DIR`.
    ///
    /// # Errors
    /// A value that does not parse, or a setting out of range.
    pub fn with_env(mut self) -> Result<Self> {
        let number = |name: &str| -> Result<Option<u64>> {
            std::env::var(name)
                .ok()
                .map(|v| v.parse::<u64>().with_context(|| format!("{name}={v}")))
                .transpose()
        };
        if let Some(n) = number("SOAK_USERS")? {
            self.users = usize::try_from(n)?;
        }
        if let Some(n) = number("SOAK_SOCKETS")? {
            self.sockets_per_session = usize::try_from(n)?;
        }
        if let Some(n) = number("SOAK_SESSION_S")? {
            self.session_life = Duration::from_secs(n);
        }
        if let Some(n) = number("SOAK_INTERVAL_S")? {
            self.interval = Duration::from_secs(n);
        }
        if let Some(n) = number("SOAK_CYCLE_S")? {
            self.fault_cycle = Duration::from_secs(n);
        }
        if let Some(n) = number("SOAK_SLACK_MS")? {
            self.bound_slack = Duration::from_millis(n);
        }
        if let Ok(alg) = std::env::var("SOAK_JWT_ALG") {
            self.jwt_alg = alg;
        }
        if let Some(dir) = std::env::var_os("SOAK_DIR") {
            self.dir = Some(dir.into());
        }
        self.check()?;
        Ok(self)
    }

    fn check(&self) -> Result<()> {
        if !(1..=5_000).contains(&self.users) || self.sockets_per_session > 30 {
            bail!("SOAK_USERS 1..=5000, SOAK_SOCKETS 0..=30 (Nginx allows 32 sockets per address)");
        }
        if self.seconds < 30 || self.fault_cycle < Duration::from_secs(60) {
            bail!("a soak runs 30 s at least, and a fault cycle takes 60 s at least");
        }
        if self.interval.is_zero() || self.session_life < Duration::from_secs(12) {
            bail!(
                "SOAK_INTERVAL_S at least 1, SOAK_SESSION_S at least 12 (a deliberate reuse waits out the 10-s grace)"
            );
        }
        Ok(())
    }

    /// The workload's nominal rates, as the first JSON line states them.
    pub fn describe(&self) -> Value {
        let users = self.users as f64;
        // A session cycle: its life and a pause of 2 s; one ending in three
        // has a second session (a session delete, a password change).
        let cycle = self.session_life.as_secs_f64() + 2.0;
        let round = |x: f64| (x * 10.0).round() / 10.0;
        json!({
            "users": self.users,
            "devices_per_user": 2,
            "sockets_open_nominal": self.users * self.sockets_per_session,
            "logins_per_s": round(users * (1.0 + 2.0 / 6.0) / cycle),
            "refreshes_per_s": round(users / self.refresh_every.as_secs_f64()
                * (1.0 + 1.0 / self.race_one_in as f64)),
            "protected_per_s": round(users / self.protected_every.as_secs_f64()),
            "reauths_per_s": round(users * self.sockets_per_session as f64
                / self.reauth_every.as_secs_f64()),
            "revocations_per_s": round(users * (1.0 + 2.0 / 6.0) / cycle),
            "session_life_s": self.session_life.as_secs(),
            "racing_refresh_one_in": self.race_one_in,
            "user_kinds": "6 in 10 password, 2 in 10 password + TOTP, 1 in 10 DPoP-bound (ES256 proofs), 1 in 10 passkey (ES256)",
            "jwt_alg": self.jwt_alg,
            "fault_cycle_s": self.fault_cycle.as_secs(),
            "freeze_s": self.freeze_for.as_secs(),
            "key_publish_ahead_s": self.key_publish_ahead.as_secs(),
            "bound_slack_ms": self.bound_slack.as_millis(),
        })
    }
}

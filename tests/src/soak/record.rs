//! What the workload saw, on the run's clock: every answer's latency by
//! operation, the answers that get their verdict once the fault windows
//! are known (5xx, no answer), socket closes, and the answers a live
//! session should never get.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::load::percentile_ms;

/// The operations whose latency is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Register,
    TotpEnrol,
    Login,
    LoginMfa,
    LoginDpop,
    PasskeyAdd,
    PasskeyOptions,
    LoginPasskey,
    Refresh,
    RefreshRace,
    RefreshDpop,
    Protected,
    ProtectedDpop,
    Sessions,
    SessionDelete,
    PasswordChange,
    AccountDelete,
    Logout,
    Reuse,
    WsOpen,
    WsReauth,
}

impl Op {
    /// Its name in the JSON lines and the tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::TotpEnrol => "totp_enrol",
            Self::Login => "login",
            Self::LoginMfa => "login_mfa",
            Self::LoginDpop => "login_dpop",
            Self::PasskeyAdd => "passkey_add",
            Self::PasskeyOptions => "passkey_options",
            Self::LoginPasskey => "login_passkey",
            Self::Refresh => "refresh",
            Self::RefreshRace => "refresh_race",
            Self::RefreshDpop => "refresh_dpop",
            Self::Protected => "protected",
            Self::ProtectedDpop => "protected_dpop",
            Self::Sessions => "sessions",
            Self::SessionDelete => "session_delete",
            Self::PasswordChange => "password_change",
            Self::AccountDelete => "account_delete",
            Self::Logout => "logout",
            Self::Reuse => "reuse",
            Self::WsOpen => "ws_open",
            Self::WsReauth => "ws_reauth",
        }
    }

    /// Whether it is a WebSocket operation (a killed WebSocket process's
    /// window excuses its failures, not an API process's).
    pub fn is_socket(self) -> bool {
        matches!(self, Self::WsOpen | Self::WsReauth)
    }
}

/// A server's answer as the verdicts need it: its status (`0`: no answer,
/// a transport error or a timeout) and its problem code.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: u16,
    pub code: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: u64,
    op: Op,
    us: u32,
}

/// A 5xx or a missing answer, judged against the fault windows at the end.
#[derive(Debug, Clone)]
pub struct Failure {
    pub at_ms: u64,
    pub op: Op,
    pub status: u16,
    pub code: String,
}

/// A socket the server closed (or that dropped), judged at the end.
#[derive(Debug, Clone)]
pub struct Close {
    pub at_ms: u64,
    pub code: Option<u16>,
    pub sid: String,
    pub kid: String,
}

/// Everything recorded; shared by every task of the run.
#[derive(Debug)]
pub struct Recorder {
    t0: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Samples since the last interval line.
    fresh: Vec<Sample>,
    /// Every sample before that.
    all: Vec<Sample>,
    failures: Vec<Failure>,
    closes: Vec<Close>,
    unexpected: Vec<(u64, Op, String)>,
    statuses: BTreeMap<(Op, u16), u64>,
}

/// How many unexpected answers are shown on stderr as they happen.
const SHOWN: usize = 25;

impl Recorder {
    /// A recorder whose clock starts at `t0`.
    pub fn new(t0: Instant) -> Self {
        Self {
            t0,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Milliseconds from the run's start to `at` (0 before it).
    pub fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.t0).as_millis()).unwrap_or(u64::MAX)
    }

    /// Milliseconds from the run's start to now.
    pub fn now_ms(&self) -> u64 {
        self.ms(Instant::now())
    }

    /// The instant `ms` after the run's start.
    pub fn instant(&self, ms: u64) -> Instant {
        self.t0 + std::time::Duration::from_millis(ms)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One answer to `op`, sent at `started`, received now.
    pub fn answer(&self, op: Op, started: Instant, answer: &Answer) {
        let now = Instant::now();
        let at_ms = self.ms(now);
        let us = u32::try_from(now.duration_since(started).as_micros()).unwrap_or(u32::MAX);
        let mut inner = self.lock();
        *inner.statuses.entry((op, answer.status)).or_default() += 1;
        if answer.status == 0 || answer.status >= 500 {
            inner.failures.push(Failure {
                at_ms,
                op,
                status: answer.status,
                code: answer.code.clone().unwrap_or_default(),
            });
        } else {
            inner.fresh.push(Sample { at_ms, op, us });
        }
    }

    /// An answer a live session should not get (shown on stderr, the
    /// first ones).
    pub fn unexpected(&self, op: Op, what: String) {
        let at_ms = self.now_ms();
        let mut inner = self.lock();
        if inner.unexpected.len() < SHOWN {
            eprintln!("soak: unexpected at {at_ms} ms, {}: {what}", op.name());
        }
        inner.unexpected.push((at_ms, op, what));
    }

    /// A socket closed by the server or dropped.
    pub fn socket_closed(&self, close: Close) {
        self.lock().closes.push(close);
    }

    /// The interval line's `ops` member for the samples since the last
    /// call, and the count of answers of each status since the start.
    pub fn interval(&self, seconds: f64) -> (Value, u64, u64) {
        let mut inner = self.lock();
        let fresh = std::mem::take(&mut inner.fresh);
        let mut by_op: BTreeMap<Op, Vec<u64>> = BTreeMap::new();
        for s in &fresh {
            by_op.entry(s.op).or_default().push(u64::from(s.us));
        }
        inner.all.extend(fresh);
        let mut ops = Map::new();
        for (op, mut us) in by_op {
            us.sort_unstable();
            ops.insert(
                op.name().into(),
                json!({
                    "n": us.len(),
                    "per_s": (us.len() as f64 / seconds * 10.0).round() / 10.0,
                    "p50_ms": percentile_ms(&us, 0.50),
                    "p99_ms": percentile_ms(&us, 0.99),
                }),
            );
        }
        (
            Value::Object(ops),
            inner.failures.len() as u64,
            inner.unexpected.len() as u64,
        )
    }

    /// The successful answers to `op` that arrived in `[from_ms, to_ms)`:
    /// their count and sorted latencies (µs).
    pub fn window(&self, op: Op, from_ms: u64, to_ms: u64) -> Vec<u64> {
        let inner = self.lock();
        let mut us: Vec<u64> = inner
            .all
            .iter()
            .chain(&inner.fresh)
            .filter(|s| s.op == op && (from_ms..to_ms).contains(&s.at_ms))
            .map(|s| u64::from(s.us))
            .collect();
        us.sort_unstable();
        us
    }

    /// Every 5xx and missing answer so far.
    pub fn failures(&self) -> Vec<Failure> {
        self.lock().failures.clone()
    }

    /// Every socket close so far.
    pub fn closes(&self) -> Vec<Close> {
        self.lock().closes.clone()
    }

    /// Every unexpected answer so far.
    pub fn unexpected_answers(&self) -> Vec<(u64, Op, String)> {
        self.lock().unexpected.clone()
    }

    /// Answers by operation and status since the start.
    pub fn statuses(&self) -> BTreeMap<(Op, u16), u64> {
        self.lock().statuses.clone()
    }
}

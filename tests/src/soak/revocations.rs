//! Every revocation the workload makes, followed to its end: the revoked
//! session's sockets must close `4003`, and every API process, asked
//! directly (not through Nginx), must refuse its access token, within 1 s
//! of the revoking answer, or within 3 s of the end of a fault that kept
//! the process from the database; none may be missed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::device::Tokens;
use super::faults::{FaultKind, FaultRecord};
use super::run::Ctx;
use super::sockets::{SockState, Socket};

/// How long a revocation is followed before what has not acted on it
/// counts as missed.
const FOLLOW_FOR: Duration = Duration::from_secs(20);
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// The contract's bound outside faults.
const NORMAL_MS: u64 = 1_000;

/// A revocation the workload made.
#[derive(Debug)]
pub struct Revoked {
    /// How: `logout`, `session_delete`, `password_change`, ...
    pub kind: &'static str,
    /// The revoked session's last tokens.
    pub tokens: Tokens,
    /// Its sockets open when it was revoked.
    pub sockets: Vec<Socket>,
    /// When the revoking answer arrived.
    pub at: Instant,
}

/// What was seen of one revocation.
#[derive(Debug, Clone)]
pub struct Observation {
    pub kind: &'static str,
    pub sid: String,
    pub mark_ms: u64,
    /// When each API process first refused the token (`None`: never).
    pub rest: Vec<Option<u64>>,
    /// How each socket ended (`None`: still open at the end of the follow).
    pub sockets: Vec<Option<(Option<u16>, u64)>>,
}

/// The revocations followed so far.
#[derive(Debug)]
pub struct Tracker {
    http: reqwest::Client,
    apis: Vec<SocketAddr>,
    done: Mutex<Vec<Observation>>,
    pending: AtomicUsize,
}

impl Tracker {
    /// A tracker probing `apis` directly.
    ///
    /// # Errors
    /// The HTTP client cannot start.
    pub fn new(apis: Vec<SocketAddr>) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()?,
            apis,
            done: Mutex::new(Vec::new()),
            pending: AtomicUsize::new(0),
        })
    }

    /// Follows `revoked` in a task of its own.
    pub fn follow(ctx: &Arc<Ctx>, revoked: Revoked) {
        let ctx = Arc::clone(ctx);
        ctx.tracker.pending.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let tracker = &ctx.tracker;
            let deadline = revoked.at + FOLLOW_FOR;
            let probes = tracker
                .apis
                .iter()
                .map(|addr| probe(&ctx, *addr, &revoked.tokens, deadline));
            let closes = revoked.sockets.iter().map(|s| closed(s.watch(), deadline));
            let (rest, sockets) = futures_util::future::join(
                futures_util::future::join_all(probes),
                futures_util::future::join_all(closes),
            )
            .await;
            let observation = Observation {
                kind: revoked.kind,
                sid: revoked.tokens.sid.clone(),
                mark_ms: ctx.rec.ms(revoked.at),
                rest: rest
                    .into_iter()
                    .map(|at| at.map(|at| ctx.rec.ms(at)))
                    .collect(),
                sockets: sockets
                    .into_iter()
                    .map(|end| end.map(|(code, at)| (code, ctx.rec.ms(at))))
                    .collect(),
            };
            tracker
                .done
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(observation);
            tracker.pending.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Revocations still being followed.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Every revocation followed to its end.
    pub fn observations(&self) -> Vec<Observation> {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// When `addr` first refused `tokens.access` (`401`), probing until `deadline`.
async fn probe(ctx: &Ctx, addr: SocketAddr, tokens: &Tokens, deadline: Instant) -> Option<Instant> {
    let url = format!("http://{addr}/api/protected");
    let htu = format!("{}/api/protected", ctx.public_url);
    loop {
        let mut request = ctx.tracker.http.get(&url);
        request = match &tokens.key {
            Some(key) => request
                .header("authorization", format!("DPoP {}", tokens.access))
                .header("dpop", key.proof("GET", &htu, Some(&tokens.access))),
            None => request.bearer_auth(&tokens.access),
        };
        if let Ok(response) = request.send().await {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            if status == 401 {
                return Some(Instant::now());
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// How the socket ended by `deadline`.
async fn closed(
    mut state: tokio::sync::watch::Receiver<SockState>,
    deadline: Instant,
) -> Option<(Option<u16>, Instant)> {
    let wait = state.wait_for(SockState::closed);
    match tokio::time::timeout_at(deadline.into(), wait).await {
        Ok(Ok(ended)) => match &*ended {
            SockState::Closed { code, at, .. } => Some((*code, *at)),
            SockState::Open => None,
        },
        _ => None,
    }
}

/// The verdict on one kind of target (REST processes, or sockets).
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    /// Targets checked.
    pub checked: u64,
    /// Acted on within 1 s.
    pub within_normal: u64,
    /// Acted on after 1 s but within a fault's bound.
    pub within_fault: u64,
    /// Acted on, but after the bound.
    pub late: u64,
    /// Never acted on within the follow (20 s).
    pub missed: u64,
    /// Closed some other way: dropped in a killed WebSocket process's
    /// window or closed `4001` in a key retirement's (excused), or with
    /// another code (not).
    pub excused: u64,
    pub wrong_code: u64,
    /// The slowest delivery outside faults, and overall (ms).
    pub worst_normal_ms: u64,
    pub worst_ms: u64,
    /// Delivery times (ms), for the quantiles.
    pub delays_ms: Vec<u64>,
    /// The first few violations, described.
    pub examples: Vec<String>,
}

impl Delivery {
    /// Violations: late, missed, closed with the wrong code.
    pub fn broken(&self) -> u64 {
        self.late + self.missed + self.wrong_code
    }

    fn note(&mut self, example: String) {
        if self.examples.len() < 5 {
            self.examples.push(example);
        }
    }

    fn acted(
        &mut self,
        delay_ms: u64,
        bound_ms: u64,
        slack_ms: u64,
        what: impl FnOnce() -> String,
    ) {
        self.checked += 1;
        self.delays_ms.push(delay_ms);
        self.worst_ms = self.worst_ms.max(delay_ms);
        if bound_ms == NORMAL_MS {
            self.worst_normal_ms = self.worst_normal_ms.max(delay_ms);
        }
        if delay_ms <= NORMAL_MS + slack_ms {
            self.within_normal += 1;
        } else if delay_ms <= bound_ms + slack_ms {
            self.within_fault += 1;
        } else {
            self.late += 1;
            self.note(format!(
                "{} after {delay_ms} ms (bound {bound_ms} ms)",
                what()
            ));
        }
    }

    /// The JSON of this verdict.
    pub fn to_json(&self) -> Value {
        let mut sorted = self.delays_ms.clone();
        sorted.sort_unstable();
        let us: Vec<u64> = sorted.iter().map(|ms| ms * 1000).collect();
        json!({
            "checked": self.checked,
            "within_1s": self.within_normal,
            "within_fault_bound": self.within_fault,
            "late": self.late,
            "missed": self.missed,
            "excused": self.excused,
            "wrong_code": self.wrong_code,
            "p50_ms": crate::load::percentile_ms(&us, 0.5),
            "p99_ms": crate::load::percentile_ms(&us, 0.99),
            "worst_outside_faults_ms": self.worst_normal_ms,
            "worst_ms": self.worst_ms,
        })
    }
}

/// The bound for a revocation at `mark_ms` on a target that `affected`
/// faults delay: 1 s, or 3 s after the end of such a fault that began
/// before the 1 s were up and had not ended 3 s before the mark.
fn bound(
    mark_ms: u64,
    faults: &[FaultRecord],
    now_ms: u64,
    affected: impl Fn(&FaultKind) -> bool,
) -> u64 {
    faults
        .iter()
        .filter(|f| affected(&f.kind))
        .filter(|f| f.started_ms <= mark_ms + NORMAL_MS && f.window_end(now_ms) >= mark_ms)
        .map(|f| f.window_end(now_ms).saturating_sub(mark_ms))
        .fold(NORMAL_MS, u64::max)
}

/// The verdicts on every observation: (REST processes, sockets).
pub fn judge(
    observations: &[Observation],
    faults: &[FaultRecord],
    now_ms: u64,
    slack: Duration,
) -> (Delivery, Delivery) {
    let slack_ms = u64::try_from(slack.as_millis()).unwrap_or(u64::MAX);
    let (mut rest, mut ws) = (Delivery::default(), Delivery::default());
    for o in observations {
        for (api, refused) in o.rest.iter().enumerate() {
            let bound_ms = bound(o.mark_ms, faults, now_ms, |k| k.affects_api(api));
            let what = || {
                format!(
                    "api-{} refused the token of {} ({})",
                    api + 1,
                    o.sid,
                    o.kind
                )
            };
            match refused {
                Some(at) => rest.acted(at.saturating_sub(o.mark_ms), bound_ms, slack_ms, what),
                None => {
                    rest.checked += 1;
                    rest.missed += 1;
                    rest.note(format!("{} never", what()));
                }
            }
        }
        let bound_ms = bound(o.mark_ms, faults, now_ms, FaultKind::affects_sockets);
        for end in &o.sockets {
            let what = || format!("a socket of {} ({}) closed", o.sid, o.kind);
            match end {
                Some((Some(4003), at)) => {
                    ws.acted(at.saturating_sub(o.mark_ms), bound_ms, slack_ms, what)
                }
                Some((code, at)) => {
                    ws.checked += 1;
                    // Dropped with a killed process, or closed as its key
                    // was retired.
                    let excused = faults.iter().any(|f| {
                        f.covers(*at, now_ms)
                            && match f.kind {
                                FaultKind::KillWs(_) => code.is_none(),
                                FaultKind::Retire => *code == Some(4001),
                                _ => false,
                            }
                    });
                    if excused {
                        ws.excused += 1;
                    } else {
                        ws.wrong_code += 1;
                        ws.note(format!("{} with {code:?}, not 4003", what()));
                    }
                }
                None => {
                    ws.checked += 1;
                    ws.missed += 1;
                    ws.note(format!("{}: never", what()));
                }
            }
        }
    }
    (rest, ws)
}

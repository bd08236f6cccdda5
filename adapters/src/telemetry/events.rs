//! The [`SecurityEvents`] port: counts every event, writes the audited ones
//! to the `audit` log target and, with a store, to the `audit_events` table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use application::ports::{AuditTrail, SecurityEvent, SecurityEventKind, SecurityEvents};
use async_trait::async_trait;
use domain::Timestamp;
use domain::audit::audit_throttled;

use super::Metrics;

/// Pairs remembered for [`domain::audit::THROTTLED_QUIET`]; past this many
/// (a spread attack), the expired ones are forgotten, then all of them.
const THROTTLED_PAIRS: usize = 4096;

/// Records security events.
#[derive(Debug, Clone)]
pub struct EventRecorder {
    metrics: Metrics,
    store: Option<Arc<dyn AuditTrail>>,
    throttled: Arc<Mutex<HashMap<(String, String), Timestamp>>>,
}

impl EventRecorder {
    /// A recorder that counts into `metrics` and logs (no table).
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            store: None,
            throttled: Arc::default(),
        }
    }

    /// Whether `event` should be logged and stored: always, but for a
    /// throttled attempt of a pair, or a refused DPoP proof of a reason and
    /// address, quieted by [`audit_throttled`] (the rule).
    fn worth_reporting(&self, event: &SecurityEvent) -> bool {
        // The event's username is already case-folded and cut at 64 characters.
        let username = event.username.clone().unwrap_or_default();
        let pair = match event.kind {
            SecurityEventKind::LoginThrottled => {
                (username, event.client.ip.clone().unwrap_or_default())
            }
            // The account's lock holds for every address: quieted per
            // account, or an attacker rotating addresses would write a row
            // for each.
            SecurityEventKind::SecondFactorLocked => (username, "*".into()),
            // A client that sends bad proofs as fast as it can (its own key's
            // replays, a full replay cache, garbage) writes one row a minute
            // per reason and address; the metric counts every one.
            SecurityEventKind::DpopProofRefused => (
                format!("dpop:{}", event.reason.as_deref().unwrap_or_default()),
                event.client.ip.clone().unwrap_or_default(),
            ),
            _ => return true,
        };
        let now = event.at;
        let quiet = |at: Timestamp| !audit_throttled(Some(at), now);
        let mut reported = self
            .throttled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !audit_throttled(reported.get(&pair).copied(), now) {
            return false;
        }
        if reported.len() >= THROTTLED_PAIRS {
            reported.retain(|_, at| quiet(*at));
            if reported.len() >= THROTTLED_PAIRS {
                reported.clear();
            }
        }
        reported.insert(pair, now);
        true
    }

    /// Also persists audited events to `store` (and prunes it).
    #[must_use]
    pub fn with_store(mut self, store: impl AuditTrail) -> Self {
        self.store = Some(Arc::new(store));
        self
    }
}

#[async_trait]
impl SecurityEvents for EventRecorder {
    async fn record(&self, event: &SecurityEvent) -> anyhow::Result<()> {
        self.metrics.security_event(event);
        if !event.kind.is_audited() || !self.worth_reporting(event) {
            return Ok(());
        }
        log(event);
        if let Some(store) = &self.store {
            store.append(event).await?;
        }
        Ok(())
    }

    async fn prune(&self, before: Timestamp, batch: u64) -> anyhow::Result<u64> {
        match &self.store {
            Some(store) => store.prune(before, batch).await,
            None => Ok(0),
        }
    }
}

/// One line on the `audit` target: `warn` for a reuse detection, a
/// throttled login, a wrong password presented with a valid access token or
/// a passkey whose counter went back (someone may be attacking), `info`
/// otherwise.
fn log(event: &SecurityEvent) {
    macro_rules! audit {
        ($level:ident) => {
            tracing::$level!(
                target: "audit",
                kind = event.kind.as_str(),
                user = event.user.map(|u| u.to_string()),
                username = event.username.as_deref(),
                session = event.session.map(|s| s.to_string()),
                sessions_revoked = event.sessions_revoked,
                method = event.method.map(application::ports::LoginMethod::as_str),
                client_ip = event.client.ip.as_deref(),
                user_agent = event.client.user_agent.as_deref(),
                "security event"
            )
        };
    }
    match event.kind {
        SecurityEventKind::ReuseDetected
        | SecurityEventKind::LoginThrottled
        | SecurityEventKind::SecondFactorLocked
        | SecurityEventKind::PasswordCheckFailed
        | SecurityEventKind::MfaFailed
        | SecurityEventKind::PasskeyCloneSuspected => audit!(warn),
        _ => audit!(info),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use application::ClientInfo;
    use application::ports::{AuditTrail, SecurityEvent, SecurityEventKind as K, SecurityEvents};
    use async_trait::async_trait;
    use domain::{SessionId, Timestamp, UserId};
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::EventRecorder;
    use crate::telemetry::Metrics;

    /// One captured log line: target, level and fields.
    type Line = (String, tracing::Level, BTreeMap<String, String>);

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Line>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            struct Fields(BTreeMap<String, String>);
            impl Visit for Fields {
                fn record_str(&mut self, field: &Field, value: &str) {
                    self.0.insert(field.name().into(), value.into());
                }
                fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                    self.0.insert(field.name().into(), format!("{value:?}"));
                }
            }
            let mut fields = Fields(BTreeMap::new());
            event.record(&mut fields);
            let meta = event.metadata();
            self.0
                .lock()
                .unwrap()
                .push((meta.target().into(), *meta.level(), fields.0));
        }
    }

    /// The audit trail in memory, oldest first: these tests are about what
    /// the recorder sends there (the table is tested with the persistence
    /// adapter).
    #[derive(Debug, Clone, Default)]
    struct Trail(Arc<Mutex<Vec<SecurityEvent>>>);

    #[async_trait]
    impl AuditTrail for Trail {
        async fn append(&self, event: &SecurityEvent) -> anyhow::Result<()> {
            self.0.lock().unwrap().push(event.clone());
            Ok(())
        }

        async fn prune(&self, before: Timestamp, batch: u64) -> anyhow::Result<u64> {
            let mut events = self.0.lock().unwrap();
            let old = events.iter().filter(|e| e.at < before).count();
            let n = old.min(usize::try_from(batch).unwrap());
            events.sort_by_key(|e| e.at);
            events.drain(..n);
            Ok(n as u64)
        }
    }

    impl Trail {
        fn of(&self, kind: Option<K>) -> Vec<SecurityEvent> {
            let events = self.0.lock().unwrap();
            events
                .iter()
                .filter(|e| kind.is_none_or(|k| e.kind == k))
                .cloned()
                .collect()
        }
    }

    /// Log lines captured on this thread (while the guard lives), and an
    /// audit trail.
    fn capture_and_store() -> (Capture, tracing::subscriber::DefaultGuard, Trail) {
        let capture = Capture::default();
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
        (capture, guard, Trail::default())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn audited_kinds_are_logged_and_stored_routine_ones_only_counted() {
        let (capture, _guard, store) = capture_and_store();
        let recorder = EventRecorder::new(Metrics::disabled()).with_store(store.clone());

        let client = ClientInfo {
            ip: Some("198.51.100.9".into()),
            user_agent: Some("replayer/6.6".into()),
            key: None,
        };
        let (user, session) = (
            UserId::from_uuid(uuid::Uuid::new_v4()),
            SessionId::from_uuid(uuid::Uuid::new_v4()),
        );
        let at = Timestamp::from_unix_millis(1_800_000_000_000);
        for kind in K::ALL {
            let event = SecurityEvent::new(kind, at, &client)
                .user(user)
                .session(session)
                .revoked(1);
            recorder.record(&event).await.unwrap();
        }

        let lines: Vec<Line> = capture
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.0 == "audit")
            .cloned()
            .collect();
        let audited: Vec<K> = K::ALL.into_iter().filter(|k| k.is_audited()).collect();
        assert_eq!(lines.len(), audited.len(), "{lines:?}");
        for ((_, level, fields), kind) in lines.iter().zip(&audited) {
            assert_eq!(fields["kind"], kind.as_str());
            let warn = matches!(
                kind,
                K::ReuseDetected
                    | K::LoginThrottled
                    | K::SecondFactorLocked
                    | K::PasswordCheckFailed
                    | K::MfaFailed
                    | K::PasskeyCloneSuspected
            );
            let expected = if warn {
                tracing::Level::WARN
            } else {
                tracing::Level::INFO
            };
            assert_eq!(*level, expected, "{kind:?}");
            assert_eq!(fields["user"], user.to_string());
            assert_eq!(fields["session"], session.to_string());
            assert_eq!(fields["sessions_revoked"], "1");
            assert_eq!(fields["client_ip"], "198.51.100.9");
            assert_eq!(fields["user_agent"], "replayer/6.6");
        }

        let kinds: Vec<K> = store.of(None).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, audited, "only audited kinds are stored");

        // Pruning goes to the store, in batches; without one there is nothing to prune.
        let cutoff = at.plus(std::time::Duration::from_millis(1));
        let mut pruned = Vec::new();
        loop {
            let n = recorder.prune(cutoff, 4).await.unwrap();
            pruned.push(n);
            if n < 4 {
                break;
            }
        }
        assert_eq!(
            pruned.iter().sum::<u64>(),
            audited.len() as u64,
            "{pruned:?}"
        );
        assert!(pruned.iter().all(|n| *n <= 4), "{pruned:?}");
        let bare = EventRecorder::new(Metrics::disabled());
        assert_eq!(
            bare.prune(at.plus(std::time::Duration::from_secs(1)), 4)
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn repeated_throttled_attempts_are_counted_but_reported_once_a_minute() {
        let (capture, _guard, store) = capture_and_store();
        let metrics = Metrics::new(None).unwrap();
        let recorder = EventRecorder::new(metrics.clone()).with_store(store.clone());
        let client = |ip: &str| ClientInfo {
            ip: Some(ip.into()),
            user_agent: None,
            key: None,
        };
        let at = |ms: i64| Timestamp::from_unix_millis(1_800_000_000_000 + ms);
        let attempts = [
            ("alice", "192.0.2.1", 0, true),
            ("Alice", "192.0.2.1", 1_000, false),
            ("alice", "192.0.2.1", 59_999, false),
            ("alice", "192.0.2.2", 30_000, true),
            ("bob", "192.0.2.1", 30_000, true),
            ("alice", "192.0.2.1", 60_000, true),
            ("alice", "192.0.2.1", 60_001, false),
        ];
        for (name, ip, ms, _) in attempts {
            let event = SecurityEvent::new(K::LoginThrottled, at(ms), &client(ip)).username(name);
            recorder.record(&event).await.unwrap();
        }
        // A refused DPoP proof: once a minute per reason and address.
        let proofs = [
            ("replayed", "192.0.2.1", 0, true),
            ("replayed", "192.0.2.1", 5_000, false),
            ("stale", "192.0.2.1", 5_000, true),
            ("replayed", "192.0.2.2", 5_000, true),
            ("replayed", "192.0.2.1", 60_000, true),
        ];
        for (reason, ip, ms, _) in proofs {
            let event = SecurityEvent::new(K::DpopProofRefused, at(ms), &client(ip)).reason(reason);
            recorder.record(&event).await.unwrap();
        }
        let mut stored_proofs: Vec<_> = store
            .of(Some(K::DpopProofRefused))
            .iter()
            .map(|e| {
                let ms = e.at.unix_millis() - 1_800_000_000_000;
                (e.reason.clone().unwrap(), e.client.ip.clone().unwrap(), ms)
            })
            .collect();
        stored_proofs.sort();
        let mut want_proofs: Vec<_> = proofs
            .iter()
            .filter(|p| p.3)
            .map(|p| (p.0.to_owned(), p.1.to_owned(), p.2))
            .collect();
        want_proofs.sort();
        assert_eq!(stored_proofs, want_proofs);
        // Other kinds are never held back.
        for ms in [0, 1] {
            let event =
                SecurityEvent::new(K::LoginFailed, at(ms), &client("192.0.2.1")).username("alice");
            recorder.record(&event).await.unwrap();
        }

        let reported: Vec<_> = attempts
            .iter()
            .filter(|a| a.3)
            .map(|a| (a.1, a.2))
            .collect();
        let mut stored: Vec<_> = store
            .of(Some(K::LoginThrottled))
            .iter()
            .map(|e| {
                (
                    e.client.ip.clone().unwrap(),
                    e.at.unix_millis() - 1_800_000_000_000,
                )
            })
            .collect();
        stored.sort_by_key(|s| (s.1, s.0.clone()));
        let mut want: Vec<_> = reported
            .iter()
            .map(|(ip, ms)| ((*ip).to_owned(), *ms))
            .collect();
        want.sort_by_key(|w| (w.1, w.0.clone()));
        assert_eq!(stored, want);
        let warnings = capture
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.0 == "audit" && l.2["kind"] == "login_throttled")
            .count();
        assert_eq!(warnings, reported.len());
        let failed = store.of(Some(K::LoginFailed));
        assert_eq!(failed.len(), 2);
        let text = metrics.render();
        assert!(
            text.contains(&format!(
                r#"authd_logins_total{{method="password",outcome="throttled"}} {}"#,
                attempts.len()
            )),
            "{text}"
        );
    }
}

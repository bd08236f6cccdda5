//! The periodic work a running process does besides serving: pruning ended
//! sessions, closed throttle windows and old audit events, and erasing the
//! refresh-grace seals whose grace has passed.

use std::sync::Arc;

use application::{Housekeeping, Pruned};
use tokio::sync::watch;
use tracing::Instrument as _;

use domain::housekeeping::{PRUNE_BATCH, PRUNE_EVERY, PRUNE_KEEP, SEAL_SWEEP_EVERY};

/// Starts the housekeeping tasks; they end when `stop` turns true. The seal
/// sweep runs only where refresh tokens are rotated (`sweep`: the API), the
/// prune unless `scheduled_prune` is off (see [`crate::Seams`]).
pub fn spawn(
    auth: &Arc<Housekeeping>,
    stop: &watch::Sender<bool>,
    sweep: bool,
    scheduled_prune: bool,
) {
    if sweep {
        tokio::spawn(sweep_seals(auth.clone(), stop.subscribe()));
    }
    if scheduled_prune {
        tokio::spawn(prune(auth.clone(), stop.subscribe()));
    }
}

/// Prunes every [`PRUNE_EVERY`] (first pass at start) until `stop`.
async fn prune(auth: Arc<Housekeeping>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        // One trace per housekeeping pass, its statements below it.
        let pass = auth
            .prune(PRUNE_KEEP, PRUNE_BATCH)
            .instrument(tracing::info_span!("housekeeping"));
        match pass.await {
            Ok(pruned) if pruned == Pruned::default() => {}
            Ok(pruned) => tracing::info!(
                sessions = pruned.sessions,
                login_windows = pruned.login_windows,
                mfa_tokens = pruned.mfa_tokens,
                passkey_ceremonies = pruned.passkey_ceremonies,
                dpop_jtis = pruned.dpop_jtis,
                audit_events = pruned.audit_events,
                "pruned ended sessions, closed throttle windows, ended mfaTokens and old security events"
            ),
            Err(e) => tracing::warn!(error = ?e, "housekeeping failed"),
        }
    }
}

/// Erases the refresh-grace seals whose grace has passed, every
/// [`SEAL_SWEEP_EVERY`] until `stop` (one indexed statement, usually a no-op).
async fn sweep_seals(auth: Arc<Housekeeping>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(SEAL_SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        match auth.erase_stale_seals().await {
            Ok(_) => failing = false,
            // Once per outage, not every second; the next pass catches up.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = ?e, "erasing stale refresh-grace seals failed");
            }
            Err(_) => {}
        }
    }
}

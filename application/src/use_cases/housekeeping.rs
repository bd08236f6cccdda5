//! Housekeeping: deleting what no rule needs any more.

use std::sync::Arc;
use std::time::Duration;

use domain::TokenPolicy;

use crate::ports::{
    Clock, DpopReplayStore, LoginThrottle, MailStore, MfaStore, PasskeyStore, SecurityEvents,
    SessionStore,
};

/// The periodic deletions, on exactly the ports they touch.
#[derive(Clone)]
pub struct Housekeeping {
    /// Ended sessions and grace seals.
    pub sessions: Arc<dyn SessionStore>,
    /// Closed throttle windows.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Ended `mfaToken`s.
    pub mfa: Arc<dyn MfaStore>,
    /// Passkey ceremonies never finished.
    pub passkeys: Arc<dyn PasskeyStore>,
    /// DPoP proof ids whose window has passed.
    pub dpop: Arc<dyn DpopReplayStore>,
    /// Mail tokens long expired, mails given up.
    pub mail: Arc<dyn MailStore>,
    /// Stored security events.
    pub events: Arc<dyn SecurityEvents>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// The grace, which says how long a seal is needed.
    pub token_policy: TokenPolicy,
    /// `AUDIT_RETENTION`.
    pub audit_retention: Duration,
}

impl std::fmt::Debug for Housekeeping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Housekeeping")
            .field("audit_retention", &self.audit_retention)
            .finish_non_exhaustive()
    }
}

/// What one housekeeping pass deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Ended sessions (their tokens went with them).
    pub sessions: u64,
    /// Closed login-throttle windows.
    pub login_windows: u64,
    /// Ended `mfaToken`s (logins that never got their second factor).
    pub mfa_tokens: u64,
    /// Expired passkey ceremonies (options never finished).
    pub passkey_ceremonies: u64,
    /// DPoP proof ids past their window.
    pub dpop_jtis: u64,
    /// Mail tokens expired more than an hour ago (kept that long so the
    /// hourly reset cap still counts them), and mails given up.
    pub mail_rows: u64,
    /// Security events past `AUDIT_RETENTION`.
    pub audit_events: u64,
}

impl Housekeeping {
    /// Deletes sessions (with their tokens) that ended more than `keep` ago,
    /// in batches of `batch` so that no statement holds locks for long, the
    /// login-throttle windows that have closed, the `mfaToken`s and passkey
    /// ceremonies that have ended and the security events past `AUDIT_RETENTION`.
    ///
    /// # Errors
    /// Storage failures (what was deleted before stays deleted).
    pub async fn prune(&self, keep: Duration, batch: u64) -> anyhow::Result<Pruned> {
        let now = self.clock.now();
        let before = now.minus(keep);
        let sessions = in_batches(batch, || self.sessions.prune(before, batch)).await?;
        let login_windows = self.throttle.prune(now).await?;
        let mfa_tokens = self.mfa.prune_challenges(now).await?;
        let passkey_ceremonies = self.passkeys.prune_ceremonies(now).await?;
        let dpop_jtis = self.dpop.prune(now).await?;
        let mail_rows = self
            .mail
            .prune(now.minus(domain::email::RESET_MAIL_WINDOW))
            .await?;
        let audit_before = now.minus(self.audit_retention);
        let audit_events = in_batches(batch, || self.events.prune(audit_before, batch)).await?;
        Ok(Pruned {
            sessions,
            login_windows,
            mfa_tokens,
            passkey_ceremonies,
            dpop_jtis,
            mail_rows,
            audit_events,
        })
    }

    /// Erases the grace seals that no replay can need any more (tokens rotated
    /// more than `REFRESH_REUSE_GRACE` ago); returns how many. The wiring runs
    /// it every second, so a seal outlives its grace by about a second.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn erase_stale_seals(&self) -> anyhow::Result<u64> {
        let before = self.token_policy.seals_needed_since(self.clock.now());
        self.sessions.erase_seals(before).await
    }
}

/// Runs `delete` (which removes at most `batch` rows) until a pass removes
/// fewer; returns the total.
async fn in_batches<F, Fut>(batch: u64, mut delete: F) -> anyhow::Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let mut total = 0;
    loop {
        let n = delete().await?;
        total += n;
        if n < batch {
            return Ok(total);
        }
    }
}

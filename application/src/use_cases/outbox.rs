//! The outbox's sender: claims the mails that are due, hands each to the
//! [`Mailer`], and records what became of it. Every API process runs one
//! (`adapters` drives [`Outbox::deliver_due`] from a task, woken by
//! [`crate::ports::OutboxSignal`] and by a poll); a claim keeps two processes
//! from sending one mail at once.

use std::sync::Arc;

use domain::email::{OUTBOX_LEASE, next_attempt};

use crate::ClientInfo;
use crate::ports::security_events::report;
use crate::ports::{
    ClaimedMail, Clock, DeliveryError, MailSeal, MailStore, Mailer, SecurityEvent,
    SecurityEventKind, SecurityEvents,
};

/// Mails claimed at once.
pub const OUTBOX_BATCH: u32 = 32;

/// Mails of a batch sent at once, each on its own connection: an SMTP
/// exchange spends most of its time waiting (lettre writes a message's end
/// without `TCP_NODELAY`, so each mail waits for the server's delayed
/// acknowledgement, ~40 ms), and a server takes a few connections from one
/// client without complaint.
pub const OUTBOX_PARALLEL: usize = 8;

/// The sender, on the ports it needs.
#[derive(Clone)]
pub struct Outbox {
    /// The queued mails.
    pub store: Arc<dyn MailStore>,
    /// Opens them.
    pub seal: Arc<dyn MailSeal>,
    /// Sends them.
    pub mailer: Arc<dyn Mailer>,
    /// A mail given up is audited `mail_failed`.
    pub events: Arc<dyn SecurityEvents>,
    /// Now.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

/// What a pass of [`Outbox::deliver_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Handed to the mail system.
    pub sent: usize,
    /// To be tried again.
    pub deferred: usize,
    /// Given up.
    pub failed: usize,
}

impl Delivered {
    /// Mails this pass claimed.
    pub const fn claimed(&self) -> usize {
        self.sent + self.deferred + self.failed
    }
}

impl Outbox {
    /// Claims up to [`OUTBOX_BATCH`] due mails and tries each once
    /// ([`OUTBOX_PARALLEL`] at a time): a
    /// delivered mail goes; one that failed for now (no connection, `4xx`)
    /// is due again later (`domain::email::next_attempt`); one refused
    /// (`5xx`), or failing for a day, is given up and audited `mail_failed`.
    ///
    /// # Errors
    /// Storage failures (a claimed mail then waits for its lease to end).
    pub async fn deliver_due(&self) -> anyhow::Result<Delivered> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_due(now, now.plus(OUTBOX_LEASE), OUTBOX_BATCH)
            .await?;
        let mut done = Delivered::default();
        for chunk in claimed.chunks(OUTBOX_PARALLEL) {
            let fates = futures_util::future::join_all(chunk.iter().map(|m| self.deliver(m))).await;
            for fate in fates {
                match fate? {
                    Fate::Sent => done.sent += 1,
                    Fate::Deferred => done.deferred += 1,
                    Fate::Failed => done.failed += 1,
                }
            }
        }
        Ok(done)
    }

    async fn deliver(&self, claimed: &ClaimedMail) -> anyhow::Result<Fate> {
        let mail = match self.seal.open(&claimed.id, &claimed.sealed) {
            Ok(mail) => mail,
            Err(e) => {
                // Sealed under another deployment's key: no attempt can help.
                tracing::warn!(mail = %claimed.id, error = %e, "queued mail does not open");
                return self.give_up(claimed, "sealed under another key").await;
            }
        };
        match self.mailer.send(&mail).await {
            Ok(()) => {
                self.store.delivered(&claimed.id).await?;
                Ok(Fate::Sent)
            }
            Err(DeliveryError::Transient(error)) => {
                let now = self.clock.now();
                match next_attempt(claimed.attempts, claimed.queued_at, now) {
                    Some(at) => {
                        tracing::warn!(
                            mail = %claimed.id,
                            attempts = claimed.attempts,
                            retry_in_s = at.unix_seconds() - now.unix_seconds(),
                            %error,
                            "mail not delivered yet"
                        );
                        self.store.retry_at(&claimed.id, at, &error).await?;
                        Ok(Fate::Deferred)
                    }
                    None => self.give_up(claimed, &error).await,
                }
            }
            Err(DeliveryError::Permanent(error)) => self.give_up(claimed, &error).await,
        }
    }

    async fn give_up(&self, claimed: &ClaimedMail, error: &str) -> anyhow::Result<Fate> {
        let now = self.clock.now();
        tracing::warn!(mail = %claimed.id, attempts = claimed.attempts, %error, "mail given up");
        self.store.give_up(&claimed.id, now, error).await?;
        let outbox = ClientInfo {
            ip: None,
            user_agent: Some("outbox".into()),
            key: None,
        };
        let reason: String = error.chars().take(120).collect();
        let event = SecurityEvent::new(SecurityEventKind::MailFailed, now, &outbox).reason(&reason);
        report(self.events.as_ref(), event).await;
        Ok(Fate::Failed)
    }
}

enum Fate {
    Sent,
    Deferred,
    Failed,
}

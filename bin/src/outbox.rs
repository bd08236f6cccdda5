//! The outbox's sender in every API process: delivers the queued mail at
//! once when this process queued it (woken by [`OutboxWake`]), and polls
//! for mail queued by other processes or due again after a failure.

use std::sync::Arc;
use std::time::Duration;

use application::ports::OutboxSignal;
use application::use_cases::Outbox;
use tokio::sync::{Notify, watch};

/// How often the sender looks for due mail without being woken.
pub const OUTBOX_POLL: Duration = Duration::from_secs(2);

/// Wakes this process's sender when a request queued a mail.
#[derive(Debug, Default)]
pub struct OutboxWake(Notify);

impl OutboxSignal for OutboxWake {
    fn mail_queued(&self) {
        self.0.notify_one();
    }
}

/// Starts the sender; it ends when `stop` turns true.
pub fn spawn(outbox: &Arc<Outbox>, wake: &Arc<OutboxWake>, stop: &watch::Sender<bool>) {
    tokio::spawn(send(outbox.clone(), wake.clone(), stop.subscribe()));
}

async fn send(outbox: Arc<Outbox>, wake: Arc<OutboxWake>, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        // A full batch: there may be more waiting.
        let more = match outbox.deliver_due().await {
            Ok(done) => {
                failing = false;
                done.claimed() >= application::use_cases::outbox::OUTBOX_BATCH as usize
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = ?e, "the outbox could not be read");
                }
                failing = true;
                false
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            () = wake.0.notified() => {}
            () = tokio::time::sleep(OUTBOX_POLL) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

//! In-memory addresses, mail tokens and outbox; a seal that keeps the mail
//! beside its bytes; a mailer that keeps what it was given.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use domain::email::{EmailAddress, MailPurpose, RESET_MAIL_WINDOW, mail_allowed};
use domain::{Timestamp, TokenHash, UserId};

use crate::ports::{
    ClaimedMail, DeliveryError, Issued, MailSeal, MailStore, Mailer, NewMailToken, OutboxSignal,
    OutgoingMail, QueuedMail, SetAddressError, StoredMailToken,
};

struct Token {
    new: NewMailToken,
    used: bool,
    /// Issue order (the fake clock may not move between two).
    seq: usize,
}

struct Queued {
    mail: QueuedMail,
    next: Timestamp,
    attempts: u32,
    claimed_until: Option<Timestamp>,
    given_up: bool,
}

/// The three tables.
#[derive(Default)]
pub struct MailTable {
    tokens: Mutex<HashMap<TokenHash, Token>>,
    verified: Mutex<HashMap<UserId, EmailAddress>>,
    outbox: Mutex<Vec<Queued>>,
    issued: AtomicUsize,
}

impl MailTable {
    /// Mails still queued (not delivered, not given up).
    pub fn queued(&self) -> usize {
        self.outbox
            .lock()
            .unwrap()
            .iter()
            .filter(|q| !q.given_up)
            .count()
    }
}

#[async_trait]
impl MailStore for MailTable {
    async fn issue(&self, token: &NewMailToken, mail: &QueuedMail) -> anyhow::Result<Issued> {
        let mut tokens = self.tokens.lock().unwrap();
        let since = token.issued_at.minus(RESET_MAIL_WINDOW);
        let sent = tokens
            .values()
            .filter(|t| {
                t.new.user == token.user
                    && t.new.purpose == token.purpose
                    && t.new.issued_at > since
            })
            .count();
        if !mail_allowed(token.purpose, sent as u64) {
            return Ok(Issued::CapReached);
        }
        let seq = self.issued.fetch_add(1, Ordering::SeqCst);
        tokens.insert(
            token.hash,
            Token {
                new: token.clone(),
                used: false,
                seq,
            },
        );
        self.outbox.lock().unwrap().push(Queued {
            mail: mail.clone(),
            next: mail.queued_at,
            attempts: 0,
            claimed_until: None,
            given_up: false,
        });
        Ok(Issued::Queued)
    }

    async fn find_token(&self, hash: &TokenHash) -> anyhow::Result<Option<StoredMailToken>> {
        let tokens = self.tokens.lock().unwrap();
        Ok(tokens.get(hash).map(|t| StoredMailToken {
            user: t.new.user,
            purpose: t.new.purpose,
            address: t.new.address.as_str().to_owned(),
            password_stamp: t.new.password_stamp.clone(),
            expires_at: t.new.expires_at,
            used: t.used,
            superseded: tokens.values().any(|o| {
                o.new.user == t.new.user && o.new.purpose == t.new.purpose && o.seq > t.seq
            }),
        }))
    }

    async fn use_token(&self, hash: &TokenHash, _now: Timestamp) -> anyhow::Result<bool> {
        Ok(match self.tokens.lock().unwrap().get_mut(hash) {
            Some(t) if !t.used => {
                t.used = true;
                true
            }
            _ => false,
        })
    }

    async fn set_verified(
        &self,
        user: UserId,
        address: &EmailAddress,
        _now: Timestamp,
    ) -> Result<(), SetAddressError> {
        let mut verified = self.verified.lock().unwrap();
        if verified
            .iter()
            .any(|(u, a)| *u != user && a.canonical() == address.canonical())
        {
            return Err(SetAddressError::Taken);
        }
        verified.insert(user, address.clone());
        Ok(())
    }

    async fn verified_address(&self, user: UserId) -> anyhow::Result<Option<String>> {
        Ok(self
            .verified
            .lock()
            .unwrap()
            .get(&user)
            .map(|a| a.as_str().to_owned()))
    }

    async fn pending_address(
        &self,
        user: UserId,
        now: Timestamp,
    ) -> anyhow::Result<Option<String>> {
        let tokens = self.tokens.lock().unwrap();
        Ok(tokens
            .values()
            .filter(|t| t.new.user == user && t.new.purpose == MailPurpose::Verify)
            .max_by_key(|t| t.seq)
            .filter(|t| !t.used && now < t.new.expires_at)
            .map(|t| t.new.address.as_str().to_owned()))
    }

    async fn owner_of(&self, address: &EmailAddress) -> anyhow::Result<Option<UserId>> {
        Ok(self
            .verified
            .lock()
            .unwrap()
            .iter()
            .find(|(_, a)| a.canonical() == address.canonical())
            .map(|(u, _)| *u))
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> anyhow::Result<Vec<ClaimedMail>> {
        let mut outbox = self.outbox.lock().unwrap();
        let mut claimed = Vec::new();
        for q in outbox.iter_mut() {
            if claimed.len() >= limit as usize {
                break;
            }
            if q.given_up || q.next > now || q.claimed_until.is_some_and(|c| c > now) {
                continue;
            }
            q.claimed_until = Some(lease_until);
            q.attempts += 1;
            claimed.push(ClaimedMail {
                id: q.mail.id.clone(),
                sealed: q.mail.sealed.clone(),
                queued_at: q.mail.queued_at,
                attempts: q.attempts,
            });
        }
        Ok(claimed)
    }

    async fn delivered(&self, id: &str) -> anyhow::Result<()> {
        self.outbox.lock().unwrap().retain(|q| q.mail.id != id);
        Ok(())
    }

    async fn retry_at(&self, id: &str, at: Timestamp, _error: &str) -> anyhow::Result<()> {
        if let Some(q) = self
            .outbox
            .lock()
            .unwrap()
            .iter_mut()
            .find(|q| q.mail.id == id)
        {
            q.next = at;
            q.claimed_until = None;
        }
        Ok(())
    }

    async fn give_up(&self, id: &str, _now: Timestamp, _error: &str) -> anyhow::Result<()> {
        if let Some(q) = self
            .outbox
            .lock()
            .unwrap()
            .iter_mut()
            .find(|q| q.mail.id == id)
        {
            q.given_up = true;
            q.mail.sealed.clear();
        }
        Ok(())
    }

    async fn prune(&self, before: Timestamp) -> anyhow::Result<u64> {
        let mut tokens = self.tokens.lock().unwrap();
        let n = tokens.len();
        tokens.retain(|_, t| t.new.expires_at >= before);
        Ok((n - tokens.len()) as u64)
    }
}

/// Keeps each mail in a map; the "sealed" bytes are its id.
#[derive(Default)]
pub struct KeptMail(Mutex<HashMap<String, OutgoingMail>>);

impl MailSeal for KeptMail {
    fn seal(&self, mail: &OutgoingMail) -> anyhow::Result<Vec<u8>> {
        self.0.lock().unwrap().insert(mail.id.clone(), mail.clone());
        Ok(mail.id.as_bytes().to_vec())
    }

    fn open(&self, id: &str, sealed: &[u8]) -> anyhow::Result<OutgoingMail> {
        anyhow::ensure!(sealed == id.as_bytes(), "sealed as another mail");
        self.0
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no such mail"))
    }
}

/// Makes the error a [`Mailbox`] answers.
pub type Failure = fn(String) -> DeliveryError;

/// What a mailer was handed; `fail` makes it answer that error instead.
#[derive(Default)]
pub struct Mailbox {
    pub sent: Mutex<Vec<OutgoingMail>>,
    pub fail: Mutex<Option<Failure>>,
}

#[async_trait]
impl Mailer for Mailbox {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), DeliveryError> {
        if let Some(fail) = *self.fail.lock().unwrap() {
            return Err(fail("the test says no".into()));
        }
        self.sent.lock().unwrap().push(mail.clone());
        Ok(())
    }
}

/// Counts the wake-ups.
#[derive(Default)]
pub struct Signals(pub AtomicUsize);

impl OutboxSignal for Signals {
    fn mail_queued(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

//! In-memory adapters for the use-case tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::{
    AccessClaims, Family, PasswordHash, RevokeReason, RotationDecision, Session, SessionId,
    Timestamp, TokenHash, TokenPolicy, User, UserId, Username,
};
use secrecy::{ExposeSecret, SecretString};

use crate::composition::{Ports, UseCases, compose};
use crate::ports::*;
use crate::{AccessCheck, Account, AuthConfig, Housekeeping, Logins, Registration};

#[derive(Default)]
pub struct Users(Mutex<HashMap<String, User>>);

#[async_trait]
impl UserRepository for Users {
    async fn insert(&self, user: &User) -> Result<(), InsertUserError> {
        let mut m = self.0.lock().unwrap();
        if m.contains_key(&user.username.canonical()) {
            return Err(InsertUserError::Duplicate);
        }
        m.insert(user.username.canonical(), user.clone());
        Ok(())
    }
    async fn find_by_username(&self, username: &Username) -> anyhow::Result<Option<User>> {
        Ok(self.0.lock().unwrap().get(&username.canonical()).cloned())
    }
    async fn find_by_id(&self, id: UserId) -> anyhow::Result<Option<User>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .values()
            .find(|u| u.id == id)
            .cloned())
    }
    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        _now: Timestamp,
    ) -> anyhow::Result<()> {
        for u in self.0.lock().unwrap().values_mut().filter(|u| u.id == id) {
            u.password_hash = hash.clone();
        }
        Ok(())
    }
    /// Removes the user only: these fakes keep sessions apart, so no
    /// session is reported (the SQL store's deletion is tested on both databases).
    async fn delete(&self, id: UserId, _now: Timestamp) -> anyhow::Result<Option<Vec<SessionId>>> {
        let mut users = self.0.lock().unwrap();
        let before = users.len();
        users.retain(|_, u| u.id != id);
        Ok((users.len() < before).then(Vec::new))
    }
}

/// Families by id, plus the seal stored on each rotated token.
#[derive(Default)]
pub struct SessionTable {
    pub families: Mutex<HashMap<SessionId, Family>>,
    seals: Mutex<HashMap<TokenHash, [u8; 32]>>,
}

impl SessionTable {
    fn forget_seals(&self, family: &Family) {
        let mut seals = self.seals.lock().unwrap();
        for t in &family.tokens {
            seals.remove(&t.hash);
        }
    }

    /// How many grace seals are stored.
    pub fn seal_count(&self) -> usize {
        self.seals.lock().unwrap().len()
    }
}

#[async_trait]
impl SessionStore for SessionTable {
    async fn create(&self, session: &Session, first: &domain::RefreshToken) -> anyhow::Result<()> {
        let family = Family {
            session: session.clone(),
            tokens: vec![first.clone()],
        };
        self.families.lock().unwrap().insert(session.id, family);
        Ok(())
    }
    async fn refresh(
        &self,
        presented: &TokenHash,
        successor: &SuccessorToken,
        now: Timestamp,
        policy: &TokenPolicy,
    ) -> anyhow::Result<RefreshOutcome> {
        let mut families = self.families.lock().unwrap();
        let Some(family) = families
            .values_mut()
            .find(|f| f.tokens.iter().any(|t| t.hash == *presented))
        else {
            return Ok(RefreshOutcome::Refused(RefreshRefusal::Unknown));
        };
        let decision = family.refresh(presented, now, policy, successor.hash);
        let session = family.session.clone();
        Ok(match decision {
            RotationDecision::Rotate { .. } => {
                // Only the direct parent of the current token keeps its seal.
                self.forget_seals(family);
                self.seals
                    .lock()
                    .unwrap()
                    .insert(*presented, successor.seal);
                let successor = family
                    .current()
                    .cloned()
                    .expect("rotation leaves a current token");
                RefreshOutcome::Rotated { session, successor }
            }
            RotationDecision::GraceReplay => RefreshOutcome::GraceReplay {
                session,
                current: family
                    .current()
                    .cloned()
                    .expect("grace implies a current token"),
                seal: self.seals.lock().unwrap().get(presented).copied(),
            },
            RotationDecision::ReuseDetected => {
                self.forget_seals(family);
                RefreshOutcome::ReuseDetected { session }
            }
            RotationDecision::Refuse(refusal) => RefreshOutcome::Refused(refusal),
        })
    }
    async fn find_by_token(&self, hash: &TokenHash) -> anyhow::Result<Option<Session>> {
        let families = self.families.lock().unwrap();
        Ok(families
            .values()
            .find(|f| f.tokens.iter().any(|t| t.hash == *hash))
            .map(|f| f.session.clone()))
    }
    async fn token_family(
        &self,
        hash: &TokenHash,
    ) -> anyhow::Result<Option<crate::ports::TokenFamily>> {
        let families = self.families.lock().unwrap();
        Ok(families.values().find_map(|f| {
            let presented = f.tokens.iter().find(|t| t.hash == *hash)?;
            Some(crate::ports::TokenFamily {
                session: f.session.clone(),
                presented: presented.clone(),
                current: f.current().cloned(),
            })
        }))
    }
    async fn find(&self, id: SessionId) -> anyhow::Result<Option<Session>> {
        Ok(self
            .families
            .lock()
            .unwrap()
            .get(&id)
            .map(|f| f.session.clone()))
    }
    async fn list_live(&self, user: UserId, now: Timestamp) -> anyhow::Result<Vec<Session>> {
        let families = self.families.lock().unwrap();
        let mut live: Vec<Session> = families
            .values()
            .filter(|f| f.session.user_id == user && f.live_tokens(now) == 1)
            .map(|f| f.session.clone())
            .collect();
        live.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(live)
    }
    async fn revoke(
        &self,
        id: SessionId,
        reason: RevokeReason,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let mut families = self.families.lock().unwrap();
        Ok(families
            .get_mut(&id)
            .is_some_and(|f| f.session.revoke(now, reason)))
    }
    async fn revoke_all_for_user(
        &self,
        user: UserId,
        except: Option<SessionId>,
        reason: RevokeReason,
        now: Timestamp,
    ) -> anyhow::Result<Vec<SessionId>> {
        let mut families = self.families.lock().unwrap();
        let mut ids = Vec::new();
        let revocable = |f: &&mut Family| f.session.user_id == user && Some(f.session.id) != except;
        for f in families.values_mut().filter(revocable) {
            if f.session.revoke(now, reason) {
                ids.push(f.session.id);
            }
        }
        Ok(ids)
    }
    async fn revoked_since(&self, since: Timestamp) -> anyhow::Result<Vec<SessionId>> {
        let families = self.families.lock().unwrap();
        Ok(families
            .values()
            .filter(|f| f.session.revoked_at.is_some_and(|at| at >= since))
            .map(|f| f.session.id)
            .collect())
    }
    async fn prune(&self, ended_before: Timestamp, batch: u64) -> anyhow::Result<u64> {
        let mut families = self.families.lock().unwrap();
        let ended: Vec<SessionId> = families
            .values()
            .filter(|f| {
                f.session.revoked_at.is_some_and(|at| at < ended_before)
                    || f.session.expires_at < ended_before
            })
            .map(|f| f.session.id)
            .take(batch as usize)
            .collect();
        for id in &ended {
            if let Some(f) = families.remove(id) {
                self.forget_seals(&f);
            }
        }
        Ok(ended.len() as u64)
    }
    async fn erase_seals(&self, rotated_before: Timestamp) -> anyhow::Result<u64> {
        let families = self.families.lock().unwrap();
        let mut seals = self.seals.lock().unwrap();
        let before = seals.len();
        for t in families.values().flat_map(|f| &f.tokens) {
            if t.rotated_at.is_some_and(|at| at < rotated_before) {
                seals.remove(&t.hash);
            }
        }
        Ok((before - seals.len()) as u64)
    }
}

/// "Hashes" as `plain$<pw>` (current) or `legacy$<pw>` (needs rehash).
/// `overloaded` makes every `reserve` refuse.
#[derive(Default)]
pub struct Hasher {
    pub verifications: AtomicUsize,
    pub overloaded: AtomicBool,
}

#[async_trait]
impl PasswordHasher for Hasher {
    fn reserve(&self) -> Result<HashTicket, Overloaded> {
        if self.overloaded.load(Ordering::SeqCst) {
            Err(Overloaded {
                retry_after: Duration::from_secs(1),
            })
        } else {
            Ok(HashTicket::new(()))
        }
    }
    async fn hash(
        &self,
        _ticket: HashTicket,
        password: SecretString,
    ) -> anyhow::Result<PasswordHash> {
        Ok(PasswordHash::new(format!(
            "plain${}",
            password.expose_secret()
        )))
    }
    async fn verify(
        &self,
        _ticket: HashTicket,
        password: SecretString,
        hash: PasswordHash,
    ) -> anyhow::Result<PasswordCheck> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        let (scheme, stored) = hash.as_str().split_once('$').unwrap_or(("", ""));
        Ok(if stored != password.expose_secret() {
            PasswordCheck::Mismatch
        } else {
            PasswordCheck::Match {
                needs_rehash: scheme != "plain",
            }
        })
    }
    fn dummy_hash(&self) -> PasswordHash {
        PasswordHash::new("plain$\u{0}unguessable")
    }
}

/// Tokens are `tok-N`; the claims stay in memory.
#[derive(Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, AccessClaims>>,
    pub signatures: AtomicUsize,
    pub verifications: AtomicUsize,
}

impl Tokens {
    /// The claims `token` was signed with.
    pub fn claims_of(&self, token: &str) -> Option<AccessClaims> {
        self.issued.lock().unwrap().get(token).cloned()
    }
}

#[async_trait]
impl AccessTokenSigner for Tokens {
    async fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let n = self.signatures.fetch_add(1, Ordering::SeqCst);
        let token = format!("tok-{n}");
        self.issued
            .lock()
            .unwrap()
            .insert(token.clone(), claims.clone());
        Ok(token)
    }
}

impl AccessTokenVerifier for Tokens {
    fn published_keys(&self) -> Vec<PublishedKey> {
        Vec::new()
    }

    fn kid_of(&self, _token: &str) -> Option<String> {
        None
    }

    fn accepts_key(&self, _kid: &str) -> bool {
        true
    }

    fn verify(
        &self,
        token: &str,
        now: Timestamp,
        leeway_secs: i64,
    ) -> Result<AccessClaims, InvalidToken> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        let claims = self
            .issued
            .lock()
            .unwrap()
            .get(token)
            .cloned()
            .ok_or(InvalidToken::Signature)?;
        domain::check_token_times(claims.exp, claims.nbf, now, leeway_secs)?;
        Ok(claims)
    }
}

pub struct Clock(pub AtomicI64);

impl Clock {
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl crate::ports::Clock for Clock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_millis(self.0.load(Ordering::SeqCst))
    }
}

#[derive(Default)]
pub struct Random(AtomicU64);

impl RandomSource for Random {
    fn fill(&self, buf: &mut [u8]) {
        let n = self.0.fetch_add(1, Ordering::SeqCst).to_le_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = n[i % 8] ^ (i as u8).wrapping_mul(151);
        }
    }
}

#[derive(Default)]
pub struct Bus {
    listeners: Mutex<Vec<RevocationListener>>,
    pub published: Mutex<Vec<SessionId>>,
}

#[async_trait]
impl RevocationBus for Bus {
    async fn publish(&self, sessions: &[SessionId]) -> anyhow::Result<()> {
        self.published.lock().unwrap().extend_from_slice(sessions);
        let listeners = self.listeners.lock().unwrap().clone();
        for id in sessions {
            listeners.iter().for_each(|l| l(*id));
        }
        Ok(())
    }
    fn subscribe(&self, listener: RevocationListener) {
        self.listeners.lock().unwrap().push(listener);
    }
}

/// The throttle rule of the port's docs, in memory.
pub struct Throttle {
    pub policy: ThrottlePolicy,
    windows: Mutex<HashMap<ThrottleKey, (Timestamp, u32)>>,
}

#[async_trait]
impl LoginThrottle for Throttle {
    async fn take_slot(
        &self,
        key: &ThrottleKey,
        now: Timestamp,
    ) -> anyhow::Result<Option<Duration>> {
        let mut windows = self.windows.lock().unwrap();
        let current = windows
            .get(key)
            .map(|&(start, attempts)| domain::ThrottleWindow { start, attempts });
        Ok(
            match domain::admit(current, now, &self.policy.for_scope(key.scope())) {
                domain::Admission::Admit { window } => {
                    windows.insert(key.clone(), (window.start, window.attempts));
                    None
                }
                domain::Admission::Refuse { retry_after } => Some(retry_after),
            },
        )
    }
    async fn release(&self, key: &ThrottleKey) -> anyhow::Result<()> {
        if let Some((start, attempts)) = self.windows.lock().unwrap().get_mut(key) {
            *attempts = domain::throttle::release(domain::ThrottleWindow {
                start: *start,
                attempts: *attempts,
            })
            .attempts;
        }
        Ok(())
    }
    async fn clear(&self, key: &ThrottleKey) -> anyhow::Result<()> {
        self.windows.lock().unwrap().remove(key);
        Ok(())
    }
    async fn clear_user(&self, username: &str) -> anyhow::Result<()> {
        self.windows
            .lock()
            .unwrap()
            .retain(|key, _| key.username != username);
        Ok(())
    }
    async fn prune(&self, now: Timestamp) -> anyhow::Result<u64> {
        let mut windows = self.windows.lock().unwrap();
        let before = windows.len();
        windows.retain(|_, (start, _)| !domain::throttle::window_closed(*start, now, &self.policy));
        Ok((before - windows.len()) as u64)
    }
}

/// Keeps every reported security event.
#[derive(Default)]
pub struct Events(pub Mutex<Vec<SecurityEvent>>);

impl Events {
    pub fn kinds(&self) -> Vec<SecurityEventKind> {
        self.0.lock().unwrap().iter().map(|e| e.kind).collect()
    }

    pub fn last(&self) -> SecurityEvent {
        self.0.lock().unwrap().last().cloned().expect("an event")
    }
}

#[async_trait]
impl SecurityEvents for Events {
    async fn record(&self, event: &SecurityEvent) -> anyhow::Result<()> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
    async fn prune(&self, before: Timestamp, batch: u64) -> anyhow::Result<u64> {
        let mut events = self.0.lock().unwrap();
        let old = events.iter().filter(|e| e.at < before).count();
        let n = old.min(usize::try_from(batch).unwrap_or(usize::MAX));
        let mut left = n;
        events.retain(|e| {
            if left > 0 && e.at < before {
                left -= 1;
                false
            } else {
                true
            }
        });
        Ok(n as u64)
    }
}

mod mail;
mod mfa;
mod passkeys;
pub use mail::{KeptMail, MailTable, Mailbox, Signals};
pub use mfa::{Mfa, Totp};
pub use passkeys::{DpopIds, PasskeyTable, TransparentProofs, TransparentRelyingParty};

/// The use cases on fakes (composed as `bin` composes them), with handles
/// on the fakes.
pub struct World {
    pub logins: Arc<Logins>,
    pub sessions: Arc<crate::Sessions>,
    pub account: Arc<Account>,
    pub two_factor: Arc<crate::use_cases::TwoFactor>,
    pub passkeys: Arc<crate::use_cases::Passkeys>,
    pub registration: Arc<Registration>,
    pub access: Arc<AccessCheck>,
    pub housekeeping: Arc<Housekeeping>,
    pub config: AuthConfig,
    pub users: Arc<Users>,
    pub store: Arc<SessionTable>,
    pub hasher: Arc<Hasher>,
    pub tokens: Arc<Tokens>,
    pub clock: Arc<Clock>,
    pub bus: Arc<Bus>,
    pub events: Arc<Events>,
    pub mfa: Arc<Mfa>,
    pub passkey_table: Arc<PasskeyTable>,
    pub emails: Arc<crate::use_cases::Emails>,
    pub outbox: Arc<crate::use_cases::Outbox>,
    pub mail: Arc<MailTable>,
    pub mailbox: Arc<Mailbox>,
    ports: Ports,
}

impl World {
    pub fn new(config: AuthConfig) -> Self {
        let users = Arc::new(Users::default());
        let store = Arc::new(SessionTable::default());
        let hasher = Arc::new(Hasher::default());
        let tokens = Arc::new(Tokens::default());
        let clock = Arc::new(Clock(AtomicI64::new(1_700_000_000_000)));
        let bus = Arc::new(Bus::default());
        let events = Arc::new(Events::default());
        let mfa = Arc::new(Mfa::default());
        let passkey_table = Arc::new(PasskeyTable::default());
        let mail = Arc::new(MailTable::default());
        let mailbox = Arc::new(Mailbox::default());
        let ports = Ports {
            users: users.clone(),
            sessions: store.clone(),
            hasher: hasher.clone(),
            signer: tokens.clone(),
            verifier: tokens.clone(),
            clock: clock.clone(),
            random: Arc::new(Random::default()),
            bus: bus.clone(),
            throttle: Arc::new(Throttle {
                policy: ThrottlePolicy::default(),
                windows: Mutex::default(),
            }),
            health: Arc::new(Health),
            events: events.clone(),
            mfa: mfa.clone(),
            totp: Arc::new(Totp),
            passkeys: passkey_table.clone(),
            relying_party: Arc::new(TransparentRelyingParty::default()),
            dpop_verifier: Arc::new(TransparentProofs),
            dpop_replay: Arc::new(DpopIds::default()),
            mail_store: mail.clone(),
            mail_seal: Arc::new(KeptMail::default()),
            mailer: mailbox.clone(),
            outbox_signal: Arc::new(Signals::default()),
        };
        let UseCases {
            registration,
            logins,
            sessions,
            account,
            two_factor,
            passkeys,
            dpop: _,
            access,
            revocations: _,
            readiness: _,
            housekeeping,
            emails,
            outbox,
            config,
        } = compose(ports.clone(), &config);
        Self {
            logins,
            sessions,
            account,
            two_factor,
            passkeys,
            registration,
            access,
            housekeeping,
            config,
            users,
            store,
            hasher,
            tokens,
            clock,
            bus,
            events,
            mfa,
            passkey_table,
            emails,
            outbox,
            mail,
            mailbox,
            ports,
        }
    }

    /// The use cases of another process on the same storage and bus, with `config`.
    pub fn another_process(&self, config: AuthConfig) -> UseCases {
        compose(self.ports.clone(), &config)
    }
}

/// The database always answers.
pub struct Health;

#[async_trait]
impl HealthCheck for Health {
    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

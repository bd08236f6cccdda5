//! In-memory storage for the WebSocket tests until the SeaORM adapters land
//! (copied from the application's use-case fakes). Crypto, clock and
//! randomness are the real adapters.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use application::ports::*;
use async_trait::async_trait;
use domain::{
    Family, PasswordHash, RevokeReason, RotationDecision, Session, SessionId, Timestamp, TokenHash,
    TokenPolicy, User, UserId, Username,
};
use secrecy::{ExposeSecret, SecretString};

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
    async fn update_password_hash(&self, id: UserId, hash: &PasswordHash) -> anyhow::Result<()> {
        for u in self.0.lock().unwrap().values_mut().filter(|u| u.id == id) {
            u.password_hash = hash.clone();
        }
        Ok(())
    }
}

/// Families by id, plus the seal stored on each rotated token.
#[derive(Default)]
pub struct Sessions {
    pub families: Mutex<HashMap<SessionId, Family>>,
    seals: Mutex<HashMap<TokenHash, [u8; 32]>>,
}

#[async_trait]
impl SessionStore for Sessions {
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
                seal: self.seals.lock().unwrap()[presented],
            },
            RotationDecision::ReuseDetected => RefreshOutcome::ReuseDetected { session },
            RotationDecision::Expired => RefreshOutcome::Refused(RefreshRefusal::Expired),
            RotationDecision::SessionExpired => {
                RefreshOutcome::Refused(RefreshRefusal::SessionExpired)
            }
            RotationDecision::Revoked => RefreshOutcome::Refused(RefreshRefusal::Revoked),
            RotationDecision::Unknown => RefreshOutcome::Refused(RefreshRefusal::Unknown),
        })
    }
    async fn find_by_token(&self, hash: &TokenHash) -> anyhow::Result<Option<Session>> {
        let families = self.families.lock().unwrap();
        Ok(families
            .values()
            .find(|f| f.tokens.iter().any(|t| t.hash == *hash))
            .map(|f| f.session.clone()))
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
        Ok(families.get_mut(&id).is_some_and(|f| {
            let was_live = !f.session.is_revoked();
            f.session.revoke(now, reason);
            was_live
        }))
    }
    async fn revoke_all_for_user(
        &self,
        user: UserId,
        reason: RevokeReason,
        now: Timestamp,
    ) -> anyhow::Result<Vec<SessionId>> {
        let mut families = self.families.lock().unwrap();
        let mut ids = Vec::new();
        for f in families
            .values_mut()
            .filter(|f| f.session.user_id == user && !f.session.is_revoked())
        {
            f.session.revoke(now, reason);
            ids.push(f.session.id);
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
            families.remove(id);
        }
        Ok(ended.len() as u64)
    }
}

/// "Hashes" as `plain$<pw>` (current) or `legacy$<pw>` (needs rehash).
#[derive(Default)]
pub struct Hasher {
    pub verifications: AtomicUsize,
}

#[async_trait]
impl PasswordHasher for Hasher {
    async fn hash(&self, password: SecretString) -> anyhow::Result<PasswordHash> {
        Ok(PasswordHash::new(format!(
            "plain${}",
            password.expose_secret()
        )))
    }
    async fn verify(
        &self,
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

pub struct Health;

#[async_trait]
impl HealthCheck for Health {
    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Never throttles (the WebSocket tests do not exercise logins at volume).
pub struct NoThrottle;

#[async_trait]
impl LoginThrottle for NoThrottle {
    async fn blocked_for(
        &self,
        _key: &ThrottleKey,
        _now: Timestamp,
    ) -> anyhow::Result<Option<Duration>> {
        Ok(None)
    }
    async fn record_failure(&self, _key: &ThrottleKey, _now: Timestamp) -> anyhow::Result<()> {
        Ok(())
    }
    async fn clear(&self, _key: &ThrottleKey) -> anyhow::Result<()> {
        Ok(())
    }
    async fn prune(&self, _now: Timestamp) -> anyhow::Result<u64> {
        Ok(0)
    }
}

//! In-memory passkey storage and a transparent relying party: its
//! "credentials" are JSON that says what a real one would have verified.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use domain::{Timestamp, TokenHash, UserId};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::ports::{
    AssertionClaim, Ceremony, CeremonyKind, CredentialId, Passkey, PasskeyExists, PasskeyRejected,
    PasskeyStore, PasskeyUser, RegisteredCredential, RelyingParty, StartedCeremony,
    VerifiedAssertion,
};

/// DPoP proof ids in a set.
#[derive(Default)]
pub struct DpopIds(pub Mutex<HashMap<TokenHash, Timestamp>>);

#[async_trait]
impl crate::ports::DpopReplayStore for DpopIds {
    async fn use_once(&self, id: &TokenHash, expires_at: Timestamp) -> anyhow::Result<bool> {
        let mut ids = self.0.lock().unwrap();
        if ids.contains_key(id) {
            return Ok(false);
        }
        ids.insert(*id, expires_at);
        Ok(true)
    }

    async fn prune(&self, now: Timestamp) -> anyhow::Result<u64> {
        let mut ids = self.0.lock().unwrap();
        let before = ids.len();
        ids.retain(|_, until| *until > now);
        Ok((before - ids.len()) as u64)
    }
}

/// A "proof" is its claims as JSON: `{"jkt","jti","htm","htu","iat","ath"}`.
#[derive(Default)]
pub struct TransparentProofs;

impl crate::ports::DpopVerifier for TransparentProofs {
    fn verify(&self, compact: &str) -> Result<domain::dpop::ProofClaims, &'static str> {
        let c: Value = serde_json::from_str(compact).map_err(|_| "malformed")?;
        let text = |k: &str| c[k].as_str().map(str::to_owned).ok_or("claims");
        Ok(domain::dpop::ProofClaims {
            jkt: domain::dpop::Jkt(text("jkt")?),
            jti: text("jti")?,
            htm: text("htm")?,
            htu: text("htu")?,
            iat: c["iat"].as_i64().ok_or("claims")?,
            ath: c["ath"].as_str().map(str::to_owned),
        })
    }
}

/// Passkeys, handles and ceremonies in maps; each method atomic under its lock.
#[derive(Default)]
pub struct PasskeyTable {
    pub handles: Mutex<HashMap<UserId, Vec<u8>>>,
    pub ceremonies: Mutex<HashMap<TokenHash, Ceremony>>,
    pub passkeys: Mutex<Vec<Passkey>>,
}

#[async_trait]
impl PasskeyStore for PasskeyTable {
    async fn user_handle(&self, user: UserId, candidate: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut handles = self.handles.lock().unwrap();
        Ok(handles
            .entry(user)
            .or_insert_with(|| candidate.to_vec())
            .clone())
    }

    async fn user_of_handle(&self, handle: &[u8]) -> anyhow::Result<Option<UserId>> {
        let handles = self.handles.lock().unwrap();
        Ok(handles.iter().find(|(_, h)| *h == handle).map(|(u, _)| *u))
    }

    async fn save_ceremony(&self, ceremony: &Ceremony) -> anyhow::Result<()> {
        self.ceremonies
            .lock()
            .unwrap()
            .insert(ceremony.id, ceremony.clone());
        Ok(())
    }

    async fn take_ceremony(
        &self,
        id: &TokenHash,
        kind: CeremonyKind,
        user: Option<UserId>,
    ) -> anyhow::Result<Option<Ceremony>> {
        let mut ceremonies = self.ceremonies.lock().unwrap();
        let mine = ceremonies
            .get(id)
            .is_some_and(|c| c.kind == kind && c.user == user);
        Ok(if mine { ceremonies.remove(id) } else { None })
    }

    async fn prune_ceremonies(&self, now: Timestamp) -> anyhow::Result<u64> {
        let mut ceremonies = self.ceremonies.lock().unwrap();
        let before = ceremonies.len();
        ceremonies.retain(|_, c| c.expires_at > now);
        Ok((before - ceremonies.len()) as u64)
    }

    async fn add(&self, passkey: &Passkey) -> anyhow::Result<()> {
        let mut passkeys = self.passkeys.lock().unwrap();
        if passkeys.iter().any(|p| p.credential == passkey.credential) {
            return Err(anyhow::Error::new(PasskeyExists));
        }
        passkeys.push(passkey.clone());
        Ok(())
    }

    async fn list(&self, user: UserId) -> anyhow::Result<Vec<Passkey>> {
        let passkeys = self.passkeys.lock().unwrap();
        Ok(passkeys
            .iter()
            .filter(|p| p.user == user)
            .cloned()
            .collect())
    }

    async fn find(&self, credential: &CredentialId) -> anyhow::Result<Option<Passkey>> {
        let passkeys = self.passkeys.lock().unwrap();
        Ok(passkeys
            .iter()
            .find(|p| &p.credential == credential)
            .cloned())
    }

    async fn remove(&self, user: UserId, id: Uuid) -> anyhow::Result<bool> {
        let mut passkeys = self.passkeys.lock().unwrap();
        let before = passkeys.len();
        passkeys.retain(|p| !(p.user == user && p.id == id));
        Ok(passkeys.len() < before)
    }

    async fn record_use(
        &self,
        id: Uuid,
        seen: u32,
        assertion: VerifiedAssertion,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let mut passkeys = self.passkeys.lock().unwrap();
        let Some(p) = passkeys
            .iter_mut()
            .find(|p| p.id == id && p.counter == seen)
        else {
            return Ok(false);
        };
        p.counter = assertion.counter;
        p.backup_state = assertion.backup_state;
        p.last_used_at = Some(now);
        Ok(true)
    }

    async fn count(&self, user: UserId) -> anyhow::Result<u64> {
        Ok(self.list(user).await?.len() as u64)
    }
}

/// A relying party whose ceremonies are numbered challenges. A credential
/// is the JSON a test writes: `{"challenge", "id", "valid", "counter",
/// "backupEligible", "userHandle"}`, all optional but the challenge.
#[derive(Default)]
pub struct TransparentRelyingParty {
    next: AtomicU64,
}

impl TransparentRelyingParty {
    fn started(&self, kind: &str, extra: Value) -> StartedCeremony {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let challenge = format!("{kind}-{n}");
        let mut options = json!({ "challenge": challenge });
        if let (Some(o), Some(e)) = (options.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        StartedCeremony {
            options,
            state: challenge.into_bytes(),
        }
    }

    fn verified(state: &[u8], credential: &str) -> Result<Value, PasskeyRejected> {
        let c: Value = serde_json::from_str(credential)
            .map_err(|e| PasskeyRejected(format!("not JSON: {e}")))?;
        if c["challenge"].as_str().map(str::as_bytes) != Some(state) {
            return Err(PasskeyRejected("challenge".into()));
        }
        if c["valid"] == json!(false) {
            return Err(PasskeyRejected("signature".into()));
        }
        Ok(c)
    }

    fn id_of(c: &Value) -> CredentialId {
        CredentialId(c["id"].as_str().unwrap_or("cred").as_bytes().to_vec())
    }
}

impl RelyingParty for TransparentRelyingParty {
    fn start_registration(
        &self,
        user: &PasskeyUser,
        exclude: &[CredentialId],
    ) -> anyhow::Result<StartedCeremony> {
        let exclude: Vec<String> = exclude
            .iter()
            .map(|c| String::from_utf8_lossy(&c.0).into_owned())
            .collect();
        let handle = data_encoding::HEXLOWER.encode(&user.handle);
        Ok(self.started(
            "reg",
            json!({ "user": { "id": handle, "name": user.name }, "excludeCredentials": exclude }),
        ))
    }

    fn finish_registration(
        &self,
        state: &[u8],
        credential: &str,
    ) -> Result<RegisteredCredential, PasskeyRejected> {
        let c = Self::verified(state, credential)?;
        Ok(RegisteredCredential {
            id: Self::id_of(&c),
            public_key: b"public key".to_vec(),
            counter: c["counter"].as_u64().unwrap_or(0) as u32,
            backup_eligible: c["backupEligible"] == json!(true),
            backup_state: c["backupEligible"] == json!(true),
        })
    }

    fn start_login(&self) -> anyhow::Result<StartedCeremony> {
        Ok(self.started("login", json!({ "allowCredentials": [] })))
    }

    fn read_assertion(&self, credential: &str) -> Result<AssertionClaim, PasskeyRejected> {
        let c: Value = serde_json::from_str(credential)
            .map_err(|e| PasskeyRejected(format!("not JSON: {e}")))?;
        Ok(AssertionClaim {
            credential: Self::id_of(&c),
            user_handle: c["userHandle"]
                .as_str()
                .and_then(|h| data_encoding::HEXLOWER.decode(h.as_bytes()).ok()),
        })
    }

    fn finish_login(
        &self,
        state: &[u8],
        credential: &str,
        stored: &Passkey,
        _user_handle: &[u8],
    ) -> Result<VerifiedAssertion, PasskeyRejected> {
        let c = Self::verified(state, credential)?;
        if Self::id_of(&c) != stored.credential {
            return Err(PasskeyRejected("another credential".into()));
        }
        Ok(VerifiedAssertion {
            counter: c["counter"].as_u64().unwrap_or(0) as u32,
            backup_eligible: stored.backup_eligible,
            backup_state: stored.backup_eligible,
        })
    }
}

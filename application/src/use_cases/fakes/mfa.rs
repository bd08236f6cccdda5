//! In-memory two-factor storage and a transparent TOTP "cipher".

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::{Timestamp, TokenHash, UserId};
use secrecy::SecretString;

use crate::ports::{MfaChallenge, MfaStore, NewTotpSecret, TotpCodes, TotpSecret};

/// Two-factor state in maps; each method is atomic under one lock.
#[derive(Default)]
pub struct Mfa {
    pub secrets: Mutex<HashMap<UserId, TotpSecret>>,
    /// (user, hash) -> used.
    pub recovery: Mutex<HashMap<(UserId, TokenHash), bool>>,
    pub challenges: Mutex<HashMap<TokenHash, MfaChallenge>>,
    /// Wrong confirming codes of each pending enrolment.
    pub enrolment_wrong: Mutex<HashMap<UserId, u32>>,
}

#[async_trait]
impl MfaStore for Mfa {
    async fn totp(&self, user: UserId) -> anyhow::Result<Option<TotpSecret>> {
        Ok(self.secrets.lock().unwrap().get(&user).cloned())
    }

    async fn begin_totp(
        &self,
        user: UserId,
        sealed: &[u8],
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let mut secrets = self.secrets.lock().unwrap();
        if secrets.get(&user).is_some_and(|s| s.confirmed_at.is_some()) {
            return Ok(false);
        }
        self.enrolment_wrong.lock().unwrap().remove(&user);
        secrets.insert(
            user,
            TotpSecret {
                sealed: sealed.to_vec(),
                created_at: now,
                confirmed_at: None,
                last_step: None,
            },
        );
        Ok(true)
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        began: Timestamp,
        step: u64,
        recovery: &[TokenHash],
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let mut secrets = self.secrets.lock().unwrap();
        match secrets.get_mut(&user) {
            Some(s) if s.created_at == began && s.confirmed_at.is_none() => {
                s.confirmed_at = Some(now);
                s.last_step = Some(step);
            }
            _ => return Ok(false),
        }
        let mut codes = self.recovery.lock().unwrap();
        codes.retain(|(u, _), _| *u != user);
        codes.extend(recovery.iter().map(|h| ((user, *h), false)));
        Ok(true)
    }

    async fn count_wrong_enrolment_code(
        &self,
        user: UserId,
        began: Timestamp,
    ) -> anyhow::Result<u32> {
        let mut secrets = self.secrets.lock().unwrap();
        let mut wrong = self.enrolment_wrong.lock().unwrap();
        match secrets.get(&user) {
            Some(s) if s.created_at == began && s.confirmed_at.is_none() => {
                let n = wrong.entry(user).or_default();
                *n += 1;
                let n = *n;
                if !domain::totp::enrolment_usable(n) {
                    secrets.remove(&user);
                    wrong.remove(&user);
                }
                Ok(n)
            }
            _ => Ok(0),
        }
    }

    async fn remove_totp(&self, user: UserId) -> anyhow::Result<bool> {
        self.recovery.lock().unwrap().retain(|(u, _), _| *u != user);
        Ok(self.secrets.lock().unwrap().remove(&user).is_some())
    }

    async fn use_step(&self, user: UserId, step: u64) -> anyhow::Result<bool> {
        let mut secrets = self.secrets.lock().unwrap();
        match secrets.get_mut(&user) {
            Some(s) if s.confirmed_at.is_some() && s.last_step.is_none_or(|l| l < step) => {
                s.last_step = Some(step);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &TokenHash,
        _now: Timestamp,
    ) -> anyhow::Result<bool> {
        let mut codes = self.recovery.lock().unwrap();
        match codes.get_mut(&(user, *hash)) {
            Some(used) if !*used => {
                *used = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn recovery_codes_left(&self, user: UserId) -> anyhow::Result<u32> {
        let codes = self.recovery.lock().unwrap();
        Ok(codes
            .iter()
            .filter(|((u, _), used)| *u == user && !**used)
            .count() as u32)
    }

    async fn create_challenge(&self, challenge: &MfaChallenge) -> anyhow::Result<()> {
        self.challenges
            .lock()
            .unwrap()
            .insert(challenge.hash, challenge.clone());
        Ok(())
    }

    async fn challenge(
        &self,
        hash: &TokenHash,
        now: Timestamp,
    ) -> anyhow::Result<Option<MfaChallenge>> {
        Ok(self
            .challenges
            .lock()
            .unwrap()
            .get(hash)
            .filter(|c| c.expires_at > now)
            .cloned())
    }

    async fn count_wrong_code(&self, hash: &TokenHash) -> anyhow::Result<u32> {
        Ok(self
            .challenges
            .lock()
            .unwrap()
            .get_mut(hash)
            .map_or(u32::MAX, |c| {
                c.wrong_codes += 1;
                c.wrong_codes
            }))
    }

    async fn end_challenge(&self, hash: &TokenHash) -> anyhow::Result<bool> {
        Ok(self.challenges.lock().unwrap().remove(hash).is_some())
    }

    async fn end_challenges_of(&self, user: UserId) -> anyhow::Result<u64> {
        let mut challenges = self.challenges.lock().unwrap();
        let before = challenges.len();
        challenges.retain(|_, c| c.user != user);
        Ok((before - challenges.len()) as u64)
    }

    async fn prune_challenges(&self, now: Timestamp) -> anyhow::Result<u64> {
        let mut challenges = self.challenges.lock().unwrap();
        let before = challenges.len();
        challenges.retain(|_, c| c.expires_at > now);
        Ok((before - challenges.len()) as u64)
    }
}

/// "Seals" a secret by prefixing the user (so another user's sealed secret
/// does not open); a step's code is [`Totp::code`].
#[derive(Default)]
pub struct Totp;

impl Totp {
    /// The code of `step` for any secret: its last six decimal digits.
    pub fn code(step: u64) -> String {
        format!("{:06}", step % 1_000_000)
    }
}

impl TotpCodes for Totp {
    fn generate(&self, user: UserId, issuer: &str, account: &str) -> anyhow::Result<NewTotpSecret> {
        Ok(NewTotpSecret {
            sealed: user.as_uuid().as_bytes().to_vec(),
            base32: SecretString::from("JBSWY3DPEHPK3PXP".to_owned()),
            uri: SecretString::from(format!("otpauth://totp/{issuer}:{account}")),
        })
    }

    fn matching_step(
        &self,
        user: UserId,
        sealed: &[u8],
        steps: &[u64],
        typed: &str,
    ) -> anyhow::Result<Option<u64>> {
        anyhow::ensure!(sealed == user.as_uuid().as_bytes(), "does not open");
        Ok(steps.iter().copied().find(|s| Self::code(*s) == typed))
    }
}

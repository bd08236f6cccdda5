//! The signing-key set (contract: "Signing keys"): which key signs, which
//! are published and accepted, and what a retirement changes, as pure
//! functions of the set's times.
//!
//! A key has three times: when it was created (and published), when it may
//! start signing (`signs_from`, `KEY_PUBLISH_AHEAD` after creation for a
//! rotation), and, for an emergency, when it was retired. Everything else
//! follows: the *current* key is the newest one allowed to sign; a key stops
//! signing when a newer one becomes current, and stays accepted for the
//! lifetime of the last token it signed (access-token lifetime plus the
//! clock leeway), then leaves the set.

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use crate::Timestamp;
use crate::revocation::CLOCK_LEEWAY;

/// A JWS algorithm a key signs with (`JWT_ALG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (4096-bit keys).
    Rs256,
    /// RSASSA-PSS with SHA-256 (4096-bit keys).
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl Algorithm {
    /// Every algorithm, in the contract's order.
    pub const ALL: [Self; 4] = [Self::Rs256, Self::Ps256, Self::Es256, Self::EdDsa];

    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm of a JOSE `alg` name (exact spelling).
    ///
    /// # Errors
    /// Any other name.
    pub fn parse(name: &str) -> Result<Self, UnknownAlgorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or(UnknownAlgorithm)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of `RS256`, `PS256`, `ES256`, `EdDSA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the algorithm is not one of RS256, PS256, ES256, EdDSA")]
pub struct UnknownAlgorithm;

/// One key of the set, as every process reads it from the shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Key id (the RFC 7638 thumbprint of its public key).
    pub kid: String,
    /// What it signs with.
    pub alg: Algorithm,
    /// Created and published.
    pub created_at: Timestamp,
    /// The earliest moment it may sign.
    pub signs_from: Timestamp,
    /// Withdrawn (`authd keys retire`).
    pub retired_at: Option<Timestamp>,
}

impl KeyRecord {
    /// A key created at `now` by a rotation: published at once, signing
    /// after `publish_ahead`.
    pub fn rotated_in(
        kid: String,
        alg: Algorithm,
        now: Timestamp,
        publish_ahead: Duration,
    ) -> Self {
        Self {
            kid,
            alg,
            created_at: now,
            signs_from: now.plus(publish_ahead),
            retired_at: None,
        }
    }

    /// The first key of an empty set, signing at once: no token exists yet
    /// whose verifiers could lack it.
    pub fn first(kid: String, alg: Algorithm, now: Timestamp) -> Self {
        Self {
            kid,
            alg,
            created_at: now,
            signs_from: now,
            retired_at: None,
        }
    }

    fn withdrawn(&self, now: Timestamp) -> bool {
        self.retired_at.is_some_and(|at| at <= now)
    }

    /// The order in which keys take over: by `signs_from`, then by kid so
    /// that every process picks the same one of two equal times.
    fn succession(&self, other: &Self) -> Ordering {
        (self.signs_from, &self.kid).cmp(&(other.signs_from, &other.kid))
    }
}

/// Where a key is in its life at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// The signing key.
    Current,
    /// Replaced since `stopped`; published and accepted until `until`.
    Retiring {
        /// When it stopped signing.
        stopped: Timestamp,
        /// When it leaves the set.
        until: Timestamp,
    },
    /// Neither published nor accepted since `since`.
    Retired {
        /// Withdrawn, or left the set at the end of its retiring time.
        since: Timestamp,
    },
}

impl KeyState {
    /// Whether the JWKS carries it and tokens it signed verify.
    pub fn is_published(self) -> bool {
        !matches!(self, Self::Retired { .. })
    }

    /// The state's name in `authd keys list`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retiring { .. } => "retiring",
            Self::Retired { .. } => "retired",
        }
    }
}

/// How long a key stays accepted after it stopped signing: the last token it
/// signed lives `access_ttl` and is accepted [`CLOCK_LEEWAY`] past its `exp`.
pub fn retiring_period(access_ttl: Duration) -> Duration {
    access_ttl.saturating_add(CLOCK_LEEWAY)
}

/// The signing key at `now`: of the keys not withdrawn and allowed to sign,
/// the one that took over last.
pub fn current(keys: &[KeyRecord], now: Timestamp) -> Option<&KeyRecord> {
    keys.iter()
        .filter(|k| !k.withdrawn(now) && k.signs_from <= now)
        .max_by(|a, b| a.succession(b))
}

/// The state of `key` (one of `keys`) at `now`.
pub fn state(
    keys: &[KeyRecord],
    key: &KeyRecord,
    now: Timestamp,
    access_ttl: Duration,
) -> KeyState {
    if let Some(at) = key.retired_at.filter(|at| *at <= now) {
        return KeyState::Retired { since: at };
    }
    if key.signs_from > now {
        return KeyState::Next;
    }
    // It stopped signing when the first key after it (not withdrawn) took over.
    let stopped = keys
        .iter()
        .filter(|k| !k.withdrawn(now) && k.signs_from <= now)
        .filter(|k| k.succession(key) == Ordering::Greater)
        .map(|k| k.signs_from)
        .min();
    match stopped {
        None => KeyState::Current,
        Some(stopped) => {
            let until = stopped.plus(retiring_period(access_ttl));
            if now < until {
                KeyState::Retiring { stopped, until }
            } else {
                KeyState::Retired { since: until }
            }
        }
    }
}

/// The keys published (and accepted) at `now`.
pub fn published(keys: &[KeyRecord], now: Timestamp, access_ttl: Duration) -> Vec<&KeyRecord> {
    keys.iter()
        .filter(|k| state(keys, k, now, access_ttl).is_published())
        .collect()
}

/// What `authd keys retire <kid>` does to the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// The key withdrawn now.
    pub retire: String,
    /// A published key that must sign from now on (its `signs_from` becomes
    /// now): the newest published one, when the current key is withdrawn
    /// and no older published key would take over by itself.
    pub promote: Option<String>,
    /// No published key is left to sign: a new key must be created, signing
    /// at once.
    pub needs_new_key: bool,
}

/// Why a key cannot be retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RetireError {
    /// No key has this kid.
    #[error("no key has this kid")]
    Unknown,
    /// It is no longer published.
    #[error("the key is already retired")]
    AlreadyRetired,
}

/// Plans the withdrawal of `kid` at `now`. Retiring the current key first
/// makes the newest published key current.
///
/// # Errors
/// [`RetireError`] for an unknown or already retired key.
pub fn retire(
    keys: &[KeyRecord],
    kid: &str,
    now: Timestamp,
    access_ttl: Duration,
) -> Result<Retirement, RetireError> {
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(RetireError::Unknown)?;
    let was = state(keys, key, now, access_ttl);
    if !was.is_published() {
        return Err(RetireError::AlreadyRetired);
    }
    let mut plan = Retirement {
        retire: kid.to_owned(),
        promote: None,
        needs_new_key: false,
    };
    if was != KeyState::Current {
        return Ok(plan);
    }
    let newest = keys
        .iter()
        .filter(|k| k.kid != kid && state(keys, k, now, access_ttl).is_published())
        .max_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
    match newest {
        None => plan.needs_new_key = true,
        Some(newest) => {
            // An older key would take over by itself; a next key needs its
            // start moved to now.
            if newest.signs_from > now {
                plan.promote = Some(newest.kid.clone());
            } else {
                let mut after = keys.to_vec();
                after.retain(|k| k.kid != kid);
                if current(&after, now).map(|k| &k.kid) != Some(&newest.kid) {
                    plan.promote = Some(newest.kid.clone());
                }
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(900);
    const AHEAD: Duration = Duration::from_secs(600);

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + secs)
    }

    fn names(keys: &[KeyRecord], now: Timestamp) -> Vec<(&str, &'static str)> {
        keys.iter()
            .map(|k| (k.kid.as_str(), state(keys, k, now, TTL).name()))
            .collect()
    }

    #[test]
    fn algorithms_parse_by_their_exact_jose_names() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()), Ok(alg));
        }
        for bad in ["rs256", "HS256", "none", "", "EDDSA"] {
            assert_eq!(Algorithm::parse(bad), Err(UnknownAlgorithm), "{bad}");
        }
    }

    #[test]
    fn a_rotation_publishes_first_signs_after_the_delay_and_retires_the_old_key_later() {
        let mut keys = vec![KeyRecord::first("a".into(), Algorithm::Rs256, at(0))];
        assert_eq!(names(&keys, at(0)), [("a", "current")]);
        keys.push(KeyRecord::rotated_in(
            "b".into(),
            Algorithm::Es256,
            at(100),
            AHEAD,
        ));
        // Published at once, never signing before the delay.
        assert_eq!(names(&keys, at(100)), [("a", "current"), ("b", "next")]);
        assert_eq!(current(&keys, at(699)).unwrap().kid, "a");
        assert_eq!(published(&keys, at(100), TTL).len(), 2);
        // Signing after it; the old key stays accepted for a token's lifetime.
        assert_eq!(current(&keys, at(700)).unwrap().kid, "b");
        let until = at(700).plus(TTL).plus(CLOCK_LEEWAY);
        assert_eq!(
            state(&keys, &keys[0], at(700), TTL),
            KeyState::Retiring {
                stopped: at(700),
                until
            }
        );
        assert_eq!(
            names(&keys, until.minus(Duration::from_millis(1)))[0].1,
            "retiring"
        );
        assert_eq!(
            state(&keys, &keys[0], until, TTL),
            KeyState::Retired { since: until }
        );
        assert_eq!(published(&keys, until, TTL).len(), 1);
    }

    #[test]
    fn equal_start_times_pick_the_same_key_everywhere() {
        let a = KeyRecord::first("a".into(), Algorithm::Rs256, at(0));
        let b = KeyRecord::first("b".into(), Algorithm::Rs256, at(0));
        let one = [a.clone(), b.clone()];
        let other = [b, a];
        assert_eq!(current(&one, at(1)).unwrap().kid, "b");
        assert_eq!(current(&other, at(1)).unwrap().kid, "b");
    }

    #[test]
    fn retiring_the_current_key_promotes_the_newest_published_one() {
        let mut keys = vec![
            KeyRecord::first("a".into(), Algorithm::Rs256, at(0)),
            KeyRecord::rotated_in("b".into(), Algorithm::Rs256, at(100), AHEAD),
        ];
        // "a" current, "b" next: "b" must sign from now on.
        let plan = retire(&keys, "a", at(200), TTL).unwrap();
        assert_eq!(plan.promote.as_deref(), Some("b"));
        assert!(!plan.needs_new_key);
        keys[0].retired_at = Some(at(200));
        keys[1].signs_from = at(200);
        assert_eq!(names(&keys, at(200)), [("a", "retired"), ("b", "current")]);

        // Now "b" current and nothing else published: a new key is needed.
        let plan = retire(&keys, "b", at(300), TTL).unwrap();
        assert_eq!((plan.promote, plan.needs_new_key), (None, true));
        assert_eq!(
            retire(&keys, "a", at(300), TTL),
            Err(RetireError::AlreadyRetired)
        );
        assert_eq!(retire(&keys, "zz", at(300), TTL), Err(RetireError::Unknown));
    }

    #[test]
    fn retiring_a_replacement_hands_signing_back_to_the_key_it_replaced() {
        let mut keys = vec![
            KeyRecord::first("a".into(), Algorithm::Rs256, at(0)),
            KeyRecord::rotated_in("b".into(), Algorithm::Rs256, at(100), AHEAD),
        ];
        // "b" current, "a" retiring: "a" takes over by itself.
        let plan = retire(&keys, "b", at(800), TTL).unwrap();
        assert_eq!((plan.promote, plan.needs_new_key), (None, false));
        keys[1].retired_at = Some(at(800));
        assert_eq!(names(&keys, at(800)), [("a", "current"), ("b", "retired")]);
        // Retiring a next or a retiring key changes nothing else.
        let keys = vec![
            KeyRecord::first("a".into(), Algorithm::Rs256, at(0)),
            KeyRecord::rotated_in("b".into(), Algorithm::Rs256, at(100), AHEAD),
        ];
        let plan = retire(&keys, "b", at(200), TTL).unwrap();
        assert_eq!((plan.promote, plan.needs_new_key), (None, false));
        let plan = retire(&keys, "a", at(800), TTL).unwrap();
        assert_eq!((plan.promote, plan.needs_new_key), (None, false));
    }

    #[test]
    fn a_withdrawal_in_the_future_counts_only_from_its_time() {
        let mut keys = vec![KeyRecord::first("a".into(), Algorithm::Rs256, at(0))];
        keys[0].retired_at = Some(at(50));
        assert_eq!(names(&keys, at(49)), [("a", "current")]);
        assert_eq!(names(&keys, at(50)), [("a", "retired")]);
        assert!(current(&keys, at(50)).is_none());
    }
}

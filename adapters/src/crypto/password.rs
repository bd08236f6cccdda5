//! Password hashing: argon2id for new hashes; argon2 (any variant), bcrypt
//! and PBKDF2-SHA256 accepted when verifying, so imported users can log in
//! and be upgraded.
//!
//! Every hash and verification is CPU- and memory-hard on purpose, so it runs
//! off the async threads on a small pool of its own ([`pool`],
//! [`Argon2Hasher::concurrency`] threads behind a bounded queue): at most that
//! many argon2 runs, each holding its whole memory cost (19 MiB by default),
//! are under way together, and a full queue refuses more work right away
//! instead of letting it pile up. Each run allocates its memory afresh and
//! frees it after; [`crate::system::tune_allocator`] makes glibc give it back
//! to the system (its module has the measurement).
//!
//! A check answers no sooner than the slowest kind of hash in use would
//! ([`timing`]), so its time tells nothing about the account.

mod argon2id;
mod pool;
mod timing;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use application::ports::{HashTicket, Overloaded, PasswordCheck, PasswordHasher};
use argon2::Params;
use argon2::password_hash::phc;
use argon2::password_hash::{self, PasswordVerifier as _};
use async_trait::async_trait;
use domain::PasswordHash;
use secrecy::{ExposeSecret as _, SecretString};

use argon2id::{argon2_needs_rehash, hash_argon2id, verify_argon2};
use pool::Pool;
pub use pool::QueueStats;
use timing::{Floor, kind_of};

/// bcrypt reads at most this many bytes of a password and ignores the rest.
const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// The most PBKDF2 rounds an imported hash may ask for: 10 million (OWASP
/// asks 600,000 for PBKDF2-HMAC-SHA256, Django 1.2 million).
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// The highest bcrypt cost (log2 of the rounds) an imported hash may ask
/// for: 16, a few seconds here. The format allows 31, some days of work.
const MAX_BCRYPT_COST: u32 = 16;

/// The contract's `PASSWORD_QUEUE_LIMIT` default.
pub const DEFAULT_QUEUE_LIMIT: usize = 64;

/// Imported hashes of the usual kinds (bcrypt cost 10, PBKDF2-SHA256 with
/// OWASP's 600,000 rounds), timed at start so that the first login of such
/// an account does not stand out (see [`timing`]).
const REFERENCE_IMPORTS: [&str; 2] = [
    "$2b$10$LXuaCVGEZbZYxadu7fx2ieG/AlrzGvBaDdFNj3na2ukvGWtvXyWVW",
    "$pbkdf2-sha256$i=600000,l=32$YXV0aGQtdGVzdC1zYWx0IQ$cg2/hSV734b3wYj+NdcjkVWYYTCFnpjbHW4GdLrXQ28",
];

/// The cost of an argon2id hash: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes over the memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

/// Hashes with argon2id (OWASP parameters by default); verifies argon2,
/// bcrypt and PBKDF2-SHA256 hashes.
#[derive(Clone)]
pub struct Argon2Hasher {
    params: Params,
    pool: Pool,
    floor: Arc<Floor>,
    dummy: PasswordHash,
}

impl Argon2Hasher {
    /// argon2id with the OWASP Password Storage Cheat Sheet parameters
    /// (m = 19456 KiB, t = 2, p = 1), a queue of [`DEFAULT_QUEUE_LIMIT`]
    /// places, and the timing floor seeded with the usual imported schemes
    /// (timed on the hashing threads in the background, a few hundred
    /// milliseconds of work).
    ///
    /// Computes the dummy hash now (tens of milliseconds).
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    #[expect(
        clippy::expect_used,
        reason = "the default parameters are valid; documented under Panics"
    )]
    pub fn new() -> Self {
        Self::with_queue_limit(DEFAULT_QUEUE_LIMIT).expect("argon2id with default parameters")
    }

    /// [`Self::new`] with `limit` places in the queue (`PASSWORD_QUEUE_LIMIT`).
    ///
    /// # Errors
    /// `limit` is 0, or the OS RNG failed.
    pub fn with_queue_limit(limit: usize) -> anyhow::Result<Self> {
        let hasher = Self::build(Params::default(), limit)?;
        hasher.time_reference_imports();
        Ok(hasher)
    }

    /// argon2id with other parameters (cheaper ones make tests fast) and the
    /// default queue; the timing floor learns only from the checks it runs.
    ///
    /// # Errors
    /// Parameters argon2 refuses (for example `m_kib < 8 * p`, `t = 0`,
    /// `p = 0`), or the OS RNG failed.
    pub fn with_params(m_kib: u32, t: u32, p: u32) -> anyhow::Result<Self> {
        Self::with_cost(Argon2Cost { m_kib, t, p }, DEFAULT_QUEUE_LIMIT)
    }

    /// argon2id at `cost` with `limit` places in the queue; the timing floor
    /// learns only from the checks it runs.
    ///
    /// # Errors
    /// Parameters argon2 refuses, `limit` is 0, or the OS RNG failed.
    pub fn with_cost(cost: Argon2Cost, limit: usize) -> anyhow::Result<Self> {
        let params = Params::new(cost.m_kib, cost.t, cost.p, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        Self::build(params, limit)
    }

    fn build(params: Params, limit: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(limit > 0, "the password queue needs at least one place");
        let concurrency = std::thread::available_parallelism()
            .map_or(2, usize::from)
            .max(2);
        // A real hash of a random password: checking it costs what checking
        // a real user's hash costs, and no password can match it.
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).context("OS random number generator failed")?;
        let started = Instant::now();
        let dummy = hash_argon2id(&params, &secret)?;
        let floor = Arc::new(Floor::default());
        floor.record(kind_of(dummy.as_str()), started.elapsed());
        Ok(Self {
            params,
            pool: Pool::start(concurrency, limit)?,
            floor,
            dummy,
        })
    }

    /// Times one check of each [`REFERENCE_IMPORTS`] hash on the hashing
    /// threads (ahead of any login queued after it).
    fn time_reference_imports(&self) {
        for hash in REFERENCE_IMPORTS {
            let (params, floor) = (self.params.clone(), Arc::clone(&self.floor));
            self.pool.spawn(move || {
                let started = Instant::now();
                let (_, ran) = check(&params, b"not the password", hash);
                if ran {
                    floor.record(kind_of(hash), started.elapsed());
                }
            });
        }
    }

    /// How many hashes or verifications may run at the same time.
    pub fn concurrency(&self) -> usize {
        self.pool.concurrency()
    }

    /// What the queue has refused and skipped so far, and its places taken now.
    pub fn queue_stats(&self) -> QueueStats {
        self.pool.stats()
    }

    /// The shortest time a verification takes now.
    pub fn timing_floor(&self) -> Duration {
        self.floor.get()
    }
}

impl Default for Argon2Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hasher")
            .field("m_kib", &self.params.m_cost())
            .field("t", &self.params.t_cost())
            .field("p", &self.params.p_cost())
            .field("concurrency", &self.concurrency())
            .finish_non_exhaustive()
    }
}

/// The scheme of a stored hash, for log lines: the identifier between the
/// first two `$`, if it looks like one; never any of the hash itself.
fn scheme_of(hash: &str) -> &str {
    match hash.split('$').nth(1) {
        Some(id)
            if hash.starts_with('$')
                && (1..=16).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            id
        }
        _ => "unknown",
    }
}

/// A hash we cannot check: nobody can log in with it, and operators learn of it.
fn unusable(hash: &str, reason: &dyn fmt::Display) -> PasswordCheck {
    tracing::warn!(scheme = scheme_of(hash), %reason, "stored password hash cannot be checked; treating as a mismatch");
    PasswordCheck::Mismatch
}

/// The result of a `password-hash` verifier.
fn phc_result(result: password_hash::Result<()>, hash: &str, needs_rehash: bool) -> PasswordCheck {
    match result {
        Ok(()) => PasswordCheck::Match { needs_rehash },
        Err(password_hash::Error::PasswordInvalid) => PasswordCheck::Mismatch,
        Err(e) => unusable(hash, &e),
    }
}

/// Checks `password` against any supported hash. Blocking and slow.
///
/// Also says whether the scheme ran: a hash refused before its work (over
/// the caps, unreadable, a bcrypt hash and a password over 72 bytes) answers
/// at once, and its time says nothing about the scheme's cost.
fn check(params: &Params, password: &[u8], hash: &str) -> (PasswordCheck, bool) {
    let ran = |r: &password_hash::Result<()>| {
        matches!(r, Ok(()) | Err(password_hash::Error::PasswordInvalid))
    };
    if hash.starts_with("$argon2") {
        let parsed = match phc::PasswordHash::new(hash) {
            Ok(parsed) => parsed,
            Err(e) => return (unusable(hash, &e), false),
        };
        // The hash names its own variant, version and parameters.
        let result = verify_argon2(password, &parsed);
        let ran = ran(&result);
        (
            phc_result(result, hash, argon2_needs_rehash(params, &parsed)),
            ran,
        )
    } else if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        // bcrypt silently ignores everything after byte 72, so a longer
        // password would "match" whenever its first 72 bytes do. Every
        // character of a password counts here (NIST SP 800-63B, and the
        // contract): a bcrypt hash can only be the hash of a password of at
        // most 72 bytes, so a longer one is simply not it.
        if password.len() > BCRYPT_MAX_PASSWORD_BYTES {
            return (PasswordCheck::Mismatch, false);
        }
        match hash.parse::<bcrypt::HashParts>() {
            Ok(parts) if parts.get_cost() > MAX_BCRYPT_COST => {
                let reason =
                    format_args!("bcrypt cost {} is over {MAX_BCRYPT_COST}", parts.get_cost());
                return (unusable(hash, &reason), false);
            }
            Ok(_) => {}
            Err(e) => return (unusable(hash, &e), false),
        }
        match bcrypt::verify(password, hash) {
            Ok(true) => (PasswordCheck::Match { needs_rehash: true }, true),
            Ok(false) => (PasswordCheck::Mismatch, true),
            Err(e) => (unusable(hash, &e), false),
        }
    } else if hash.starts_with("$pbkdf2-sha256$") {
        let parsed = match phc::PasswordHash::new(hash) {
            Ok(parsed) => parsed,
            Err(e) => return (unusable(hash, &e), false),
        };
        match pbkdf2::Params::try_from(&parsed.params) {
            Ok(p) if p.rounds() > MAX_PBKDF2_ROUNDS => {
                let reason =
                    format_args!("{} PBKDF2 rounds are over {MAX_PBKDF2_ROUNDS}", p.rounds());
                return (unusable(hash, &reason), false);
            }
            Ok(_) => {}
            Err(e) => return (unusable(hash, &e), false),
        }
        let result = pbkdf2::Pbkdf2::SHA256.verify_password(password, &parsed);
        let ran = ran(&result);
        (phc_result(result, hash, true), ran)
    } else {
        (unusable(hash, &"unrecognised hash format"), false)
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    // The span lasts until the hashing thread has answered: queueing and
    // hashing both count.
    #[tracing::instrument(name = "password.hash", skip_all)]
    async fn hash(
        &self,
        ticket: HashTicket,
        password: SecretString,
    ) -> anyhow::Result<PasswordHash> {
        let params = self.params.clone();
        let (hash, _) = self
            .pool
            .run(ticket, move || {
                hash_argon2id(&params, password.expose_secret().as_bytes())
            })
            .await?;
        hash
    }

    #[tracing::instrument(name = "password.verify", skip_all, fields(scheme = scheme_of(hash.as_str())))]
    async fn verify(
        &self,
        ticket: HashTicket,
        password: SecretString,
        hash: PasswordHash,
    ) -> anyhow::Result<PasswordCheck> {
        let params = self.params.clone();
        let floor = Arc::clone(&self.floor);
        let (result, started) = self
            .pool
            .run(ticket, move || {
                let started = Instant::now();
                let (result, ran) =
                    check(&params, password.expose_secret().as_bytes(), hash.as_str());
                if ran {
                    floor.record(kind_of(hash.as_str()), started.elapsed());
                }
                result
            })
            .await?;
        // No answer before the slowest kind of hash would give one (the
        // queue's wait is not part of it: it is the same for every account).
        tokio::time::sleep_until((started + self.floor.get()).into()).await;
        Ok(result)
    }

    fn reserve(&self) -> Result<HashTicket, Overloaded> {
        self.pool.reserve()
    }

    fn dummy_hash(&self) -> PasswordHash {
        self.dummy.clone()
    }
}

#[cfg(test)]
mod tests;

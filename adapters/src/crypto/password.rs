//! Password hashing: argon2id for new hashes; argon2 (any variant), bcrypt
//! and PBKDF2-SHA256 accepted when verifying, so imported users can log in
//! and be upgraded.
//!
//! Every hash and verification is CPU- and memory-hard on purpose, so it runs
//! off the async threads on a small pool of its own ([`pool`],
//! [`Argon2Hasher::concurrency`] threads behind a bounded queue): each argon2
//! run holds its whole memory cost (19 MiB by default), and the allocator
//! keeps that memory with the thread that used it. On tokio's blocking pool,
//! whose threads come and go by the dozen, a burst of logins left the process
//! at 400-700 MB; with a fixed pool it stays at a few of those buffers, which
//! each thread reuses ([`argon2_memory`]).
//!
//! A check answers no sooner than the slowest kind of hash in use would
//! ([`timing`]), so its time tells nothing about the account.

mod argon2_memory;
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

use argon2_memory::{argon2_needs_rehash, hash_argon2id, verify_argon2};
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
    pub fn new() -> Self {
        Self::with_queue_limit(DEFAULT_QUEUE_LIMIT).expect("argon2id with default parameters")
    }

    /// [`Self::new`] with `limit` places in the queue (`PASSWORD_QUEUE_LIMIT`).
    ///
    /// # Errors
    /// `limit` is 0, or the OS RNG failed.
    pub fn with_queue_limit(limit: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(limit > 0, "the password queue needs at least one place");
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
        let params = Params::new(m_kib, t, p, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        Self::build(params, DEFAULT_QUEUE_LIMIT)
    }

    fn build(params: Params, limit: usize) -> anyhow::Result<Self> {
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
        let result = verify_argon2(params, password, &parsed);
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
mod tests {
    use super::*;
    use argon2::{Algorithm, Argon2, PasswordHasher as _, Version};
    use argon2_memory::{ARGON2_MEMORY, MAX_ARGON2_M_KIB, MAX_ARGON2_WORK_KIB, argon2_within_caps};

    /// From /work/shared/vectors.md, both of `password123`.
    const BCRYPT: &str = "$2b$10$LXuaCVGEZbZYxadu7fx2ieG/AlrzGvBaDdFNj3na2ukvGWtvXyWVW";
    const PBKDF2: &str = "$pbkdf2-sha256$i=600000,l=32$YXV0aGQtdGVzdC1zYWx0IQ$cg2/hSV734b3wYj+NdcjkVWYYTCFnpjbHW4GdLrXQ28";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    /// Cheap parameters for round trips; `new()` is tested on its own.
    fn fast() -> Argon2Hasher {
        Argon2Hasher::with_params(1024, 1, 1).unwrap()
    }

    async fn verify(h: &Argon2Hasher, password: &str, hash: &str) -> PasswordCheck {
        h.verify(
            h.reserve().unwrap(),
            secret(password),
            PasswordHash::new(hash),
        )
        .await
        .unwrap()
    }

    const MATCH_OLD: PasswordCheck = PasswordCheck::Match { needs_rehash: true };
    const MATCH_CURRENT: PasswordCheck = PasswordCheck::Match {
        needs_rehash: false,
    };

    #[tokio::test]
    async fn default_parameters_are_owasp_argon2id() {
        let h = Argon2Hasher::new();
        let hash = h
            .hash(h.reserve().unwrap(), secret("correct horse battery"))
            .await
            .unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash:?}"
        );
        assert_eq!(
            verify(&h, "correct horse battery", hash.as_str()).await,
            MATCH_CURRENT
        );
        assert_eq!(
            verify(&h, "correct horse battery!", hash.as_str()).await,
            PasswordCheck::Mismatch
        );
        assert!(h.concurrency() >= 2);
    }

    #[tokio::test]
    async fn bcrypt_vector() {
        let h = fast();
        assert_eq!(verify(&h, "password123", BCRYPT).await, MATCH_OLD);
        for wrong in ["password124", "Password123", "", "password1234"] {
            assert_eq!(
                verify(&h, wrong, BCRYPT).await,
                PasswordCheck::Mismatch,
                "{wrong}"
            );
        }
        for prefix in ["$2a$", "$2y$"] {
            let variant = BCRYPT.replacen("$2b$", prefix, 1);
            assert_eq!(
                verify(&h, "password123", &variant).await,
                MATCH_OLD,
                "{prefix}"
            );
        }
    }

    #[tokio::test]
    async fn pbkdf2_vector() {
        let h = fast();
        assert_eq!(verify(&h, "password123", PBKDF2).await, MATCH_OLD);
        assert_eq!(
            verify(&h, "password124", PBKDF2).await,
            PasswordCheck::Mismatch
        );
        assert_eq!(verify(&h, "", PBKDF2).await, PasswordCheck::Mismatch);
    }

    #[tokio::test]
    async fn bcrypt_does_not_truncate_long_passwords() {
        let h = fast();
        let base = "a".repeat(BCRYPT_MAX_PASSWORD_BYTES);
        let hash = bcrypt::hash(&base, 4).unwrap();
        // Exactly 72 bytes: every byte is used by bcrypt, so it matches.
        assert_eq!(verify(&h, &base, &hash).await, MATCH_OLD);
        // bcrypt alone would call these a match; we do not.
        assert!(
            bcrypt::verify(format!("{base}b"), &hash).unwrap(),
            "bcrypt truncates"
        );
        assert_eq!(
            verify(&h, &format!("{base}b"), &hash).await,
            PasswordCheck::Mismatch
        );
        assert_eq!(
            verify(&h, &format!("{base}{base}"), &hash).await,
            PasswordCheck::Mismatch
        );
    }

    #[tokio::test]
    async fn argon2_counts_bytes_after_72() {
        let h = fast();
        let prefix = "p".repeat(80);
        let hash = h
            .hash(h.reserve().unwrap(), secret(&format!("{prefix}1")))
            .await
            .unwrap();
        assert_eq!(
            verify(&h, &format!("{prefix}1"), hash.as_str()).await,
            MATCH_CURRENT
        );
        assert_eq!(
            verify(&h, &format!("{prefix}2"), hash.as_str()).await,
            PasswordCheck::Mismatch
        );
        assert_eq!(
            verify(&h, &prefix, hash.as_str()).await,
            PasswordCheck::Mismatch
        );
    }

    #[tokio::test]
    async fn long_unicode_password_round_trip() {
        let h = fast();
        let password: String = "pässwörd-🦀-ключ-".chars().cycle().take(1024).collect();
        assert_eq!(password.chars().count(), 1024);
        let hash = h
            .hash(h.reserve().unwrap(), secret(&password))
            .await
            .unwrap();
        assert_eq!(verify(&h, &password, hash.as_str()).await, MATCH_CURRENT);
        let mut other: Vec<char> = password.chars().collect();
        other[1023] = 'X';
        let other: String = other.into_iter().collect();
        assert_eq!(
            verify(&h, &other, hash.as_str()).await,
            PasswordCheck::Mismatch
        );
    }

    #[tokio::test]
    async fn weaker_or_other_argon2_needs_rehash() {
        let h = Argon2Hasher::with_params(2048, 2, 1).unwrap();
        let pw = "correct horse battery";
        let weaker = [
            Argon2Hasher::with_params(1024, 2, 1).unwrap(),
            Argon2Hasher::with_params(2048, 1, 1).unwrap(),
        ];
        for w in &weaker {
            let hash = w.hash(w.reserve().unwrap(), secret(pw)).await.unwrap();
            assert_eq!(verify(&h, pw, hash.as_str()).await, MATCH_OLD, "{w:?}");
        }
        let strong = Argon2Hasher::with_params(4096, 3, 2).unwrap();
        let stronger = strong
            .hash(strong.reserve().unwrap(), secret(pw))
            .await
            .unwrap();
        assert_eq!(verify(&h, pw, stronger.as_str()).await, MATCH_CURRENT);
        // argon2i and argon2d with our parameters: accepted, then upgraded.
        for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let other = Argon2::new(algorithm, Version::V0x13, h.params.clone())
                .hash_password(pw.as_bytes())
                .unwrap()
                .to_string();
            assert_eq!(verify(&h, pw, &other).await, MATCH_OLD, "{other}");
            assert_eq!(verify(&h, "wrong", &other).await, PasswordCheck::Mismatch);
        }
    }

    #[tokio::test]
    async fn unknown_or_corrupt_hashes_never_match() {
        let h = fast();
        let good = h
            .hash(h.reserve().unwrap(), secret("password123"))
            .await
            .unwrap();
        let cases = [
            String::new(),
            "password123".to_owned(),
            "$1$saltsalt$abcdefghijklmnopqrstuv".to_owned(),
            "$2x$10$LXuaCVGEZbZYxadu7fx2ieG/AlrzGvBaDdFNj3na2ukvGWtvXyWVW".to_owned(),
            BCRYPT[..40].to_owned(),
            PBKDF2.replace("i=600000", "i=zero"),
            "$pbkdf2-sha512$i=1000,l=32$YXV0aGQtdGVzdC1zYWx0IQ$cg2/hSV734b3wYj+NdcjkVWYYTCFnpjbHW4GdLrXQ28".to_owned(),
            good.as_str().replace("m=1024", "m=1"),
            good.as_str()[..good.as_str().len() - 10].to_owned(),
            "$argon2id$v=19$m=1024,t=1,p=1$!!!!$!!!!".to_owned(),
        ];
        for case in &cases {
            assert_eq!(
                verify(&h, "password123", case).await,
                PasswordCheck::Mismatch,
                "{case:?}"
            );
        }
    }

    #[tokio::test]
    async fn dummy_hash_is_a_real_argon2id_hash_of_nothing_guessable() {
        let h = fast();
        let dummy = h.dummy_hash();
        assert!(
            dummy.as_str().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{dummy:?}"
        );
        assert_eq!(h.dummy_hash(), dummy, "computed once");
        assert_eq!(
            verify(&h, "password123", dummy.as_str()).await,
            PasswordCheck::Mismatch
        );
        assert_ne!(fast().dummy_hash(), dummy, "random per hasher");
        assert!(
            Argon2Hasher::new()
                .dummy_hash()
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(Argon2Hasher::with_params(0, 1, 1).is_err());
        assert!(Argon2Hasher::with_params(1024, 0, 1).is_err());
        assert!(Argon2Hasher::with_params(1024, 1, 0).is_err());
    }

    #[test]
    fn log_labels_never_carry_the_hash() {
        assert_eq!(scheme_of(BCRYPT), "2b");
        assert_eq!(scheme_of(PBKDF2), "pbkdf2-sha256");
        assert_eq!(scheme_of("plaintext-password"), "unknown");
        assert_eq!(scheme_of("$c2VjcmV0IHNlY3JldCBzZWNyZXQ$x"), "unknown");
        assert_eq!(scheme_of("$a/b$c"), "unknown");
    }

    #[tokio::test]
    async fn hashes_cross_check_with_the_argon2_crate() {
        let h = fast();
        let pw = "correct horse battery";
        // Ours, checked by the crate's own verifier.
        let ours = h.hash(h.reserve().unwrap(), secret(pw)).await.unwrap();
        let parsed = phc::PasswordHash::new(ours.as_str()).unwrap();
        assert_eq!(parsed.algorithm, argon2::ARGON2ID_IDENT);
        assert_eq!(parsed.version, Some(19));
        assert_eq!(parsed.params.as_str(), "m=1024,t=1,p=1");
        assert_eq!(parsed.salt.unwrap().len(), 16);
        assert_eq!(parsed.hash.unwrap().len(), 32);
        assert!(ours.as_str().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(parsed.to_string(), ours.as_str(), "canonical PHC string");
        Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .unwrap();
        assert_eq!(
            Argon2::default().verify_password(b"correct horse battery!", &parsed),
            Err(password_hash::Error::PasswordInvalid)
        );
        // The crate's hashes (other variants, parameters, output lengths),
        // checked by ours.
        for (algorithm, m, t, p, len) in [
            (Algorithm::Argon2id, 1024, 1, 1, 32),
            (Algorithm::Argon2id, 2048, 2, 2, 64),
            (Algorithm::Argon2i, 256, 3, 1, 16),
            (Algorithm::Argon2d, 64, 2, 4, 32),
        ] {
            let params = Params::new(m, t, p, Some(len)).unwrap();
            let theirs = Argon2::new(algorithm, Version::V0x13, params)
                .hash_password(pw.as_bytes())
                .unwrap()
                .to_string();
            let current = algorithm == Algorithm::Argon2id;
            assert_eq!(
                verify(&h, pw, &theirs).await,
                PasswordCheck::Match {
                    needs_rehash: !current
                },
                "{theirs}"
            );
            assert_eq!(
                verify(&h, "correct horse batterY", &theirs).await,
                PasswordCheck::Mismatch,
                "{theirs}"
            );
        }
    }

    #[tokio::test]
    async fn the_hashing_threads_reuse_their_memory() {
        let h = fast();
        for _ in 0..h.concurrency() * 2 {
            h.hash(h.reserve().unwrap(), secret("pw")).await.unwrap();
        }
        let kept = h
            .pool
            .run(h.reserve().unwrap(), || {
                ARGON2_MEMORY.with_borrow(|m| m.as_ref().map(Vec::len))
            })
            .await
            .unwrap()
            .0;
        // A hashing thread holds no buffer yet, or one of our 1024 blocks.
        assert!(matches!(kept, Some(0 | 1024)), "{kept:?}");
    }

    #[tokio::test]
    async fn stored_hash_with_huge_memory_cost_is_refused_without_allocating() {
        let h = fast();
        let good = h
            .hash(h.reserve().unwrap(), secret("password123"))
            .await
            .unwrap();
        let (over, max) = (MAX_ARGON2_M_KIB + 1, u32::MAX);
        for m in [over, 4 * 1024 * 1024, max] {
            let huge = good.as_str().replace("m=1024", &format!("m={m}"));
            let parsed = phc::PasswordHash::new(&huge).unwrap();
            // On a hashing thread: refused before its buffer is touched.
            std::thread::spawn({
                let params = h.params.clone();
                move || {
                    ARGON2_MEMORY.set(Some(Vec::new()));
                    assert_eq!(
                        verify_argon2(&params, b"password123", &parsed),
                        Err(password_hash::Error::ParamInvalid { name: "m" })
                    );
                    assert_eq!(
                        ARGON2_MEMORY.with_borrow(|b| b.as_ref().map(Vec::capacity)),
                        Some(0)
                    );
                }
            })
            .join()
            .unwrap();
            // Through the hasher: a mismatch, at once (running argon2 over
            // 1 GiB or more would take seconds).
            let start = std::time::Instant::now();
            assert_eq!(
                verify(&h, "password123", &huge).await,
                PasswordCheck::Mismatch,
                "{huge}"
            );
            assert!(start.elapsed() < std::time::Duration::from_millis(500));
        }
    }

    /// A stored hash asking for more work than the caps is not run: a
    /// mismatch at once, where running it would hold a hashing thread for
    /// minutes (argon2, PBKDF2) or days (bcrypt cost 31).
    #[tokio::test]
    async fn stored_hash_with_huge_time_cost_is_refused_at_once() {
        let h = fast();
        let good = h
            .hash(h.reserve().unwrap(), secret("password123"))
            .await
            .unwrap();
        let at_cap = u32::try_from(MAX_ARGON2_WORK_KIB / 1024).unwrap();
        // 1 MiB × 4096 passes is exactly the cap; 1 GiB × 4 too.
        for (m, t, ok) in [
            (1024, at_cap, true),
            (1024, at_cap + 1, false),
            (MAX_ARGON2_M_KIB, 4, true),
            (MAX_ARGON2_M_KIB, 5, false),
        ] {
            let params = Params::new(m, t, 1, None).unwrap();
            assert_eq!(argon2_within_caps(&params).is_ok(), ok, "m={m} t={t}");
        }
        assert!(good.as_str().contains("m=1024,t=1,"), "{}", good.as_str());
        let argon2 = |t: &str| good.as_str().replace("t=1,", &format!("t={t},"));
        let bcrypt = |cost: &str| BCRYPT.replacen("$10$", &format!("${cost}$"), 1);
        let pbkdf2 = |i: &str| PBKDF2.replacen("i=600000", &format!("i={i}"), 1);
        let over_cap = [
            argon2(&(at_cap + 1).to_string()),
            argon2(&u32::MAX.to_string()),
            bcrypt("17"),
            bcrypt("31"),
            pbkdf2(&(MAX_PBKDF2_ROUNDS + 1).to_string()),
            pbkdf2(&u32::MAX.to_string()),
        ];
        for huge in over_cap {
            let start = std::time::Instant::now();
            assert_eq!(
                verify(&h, "password123", &huge).await,
                PasswordCheck::Mismatch,
                "{huge}"
            );
            assert!(
                start.elapsed() < std::time::Duration::from_millis(500),
                "{huge}"
            );
        }
    }

    /// Every kind of account answers a login in the same time: an unknown
    /// user (the dummy hash), argon2id, bcrypt (with a password bcrypt cannot
    /// hold, too), PBKDF2, and a hash nobody can check.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_check_takes_as_long_as_the_slowest_kind() {
        let h = Argon2Hasher::new();
        let user = h
            .hash(h.reserve().unwrap(), secret("password123"))
            .await
            .unwrap();
        let long = "x".repeat(73);
        let cases = [
            (
                "unknown user",
                "password123",
                h.dummy_hash().as_str().to_owned(),
            ),
            ("argon2id", "password124", user.as_str().to_owned()),
            ("bcrypt", "password124", BCRYPT.to_owned()),
            ("bcrypt, 73 bytes", long.as_str(), BCRYPT.to_owned()),
            ("pbkdf2", "password124", PBKDF2.to_owned()),
            ("corrupt", "password124", "$argon2id$v=19$m=nope".to_owned()),
        ];
        // Each kind once, so that the floor has seen them all.
        for (_, password, hash) in &cases {
            verify(&h, password, hash).await;
        }
        let slowest = ["password124", "password124"]
            .iter()
            .zip([BCRYPT, PBKDF2])
            .map(|(pw, hash)| {
                let started = Instant::now();
                let _ = check(&h.params, pw.as_bytes(), hash);
                started.elapsed()
            })
            .max()
            .unwrap();
        for (name, password, hash) in &cases {
            let floor = h.timing_floor();
            let started = Instant::now();
            assert_eq!(
                verify(&h, password, hash).await,
                PasswordCheck::Mismatch,
                "{name}"
            );
            let took = started.elapsed();
            // The slowest kind itself is not stretched: its own run may be a
            // little under its average.
            assert!(
                took >= floor * 3 / 4,
                "{name}: {took:?} under the floor {floor:?}"
            );
            // The floor follows the slowest scheme (within a burst's noise).
            assert!(
                floor >= slowest / 2,
                "{name}: floor {floor:?}, slowest {slowest:?}"
            );
        }
    }
}

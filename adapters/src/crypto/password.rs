//! Password hashing: argon2id for new hashes; argon2 (any variant), bcrypt
//! and PBKDF2-SHA256 accepted when verifying, so imported users can log in
//! and be upgraded.
//!
//! Every hash and verification is CPU- and memory-hard on purpose, so it runs
//! off the async threads on a small pool of its own
//! ([`Argon2Hasher::concurrency`] threads): each argon2 run holds its whole
//! memory cost (19 MiB by default), and the allocator keeps that memory with
//! the thread that used it. On tokio's blocking pool, whose threads come and
//! go by the dozen, a burst of logins left the process at 400-700 MB; with a
//! fixed pool it stays at a few of those buffers.
//!
//! Each hashing thread also keeps its argon2 memory from one run to the next
//! instead of allocating a fresh buffer per run: freed buffers still stayed
//! in the allocator's per-thread arenas (60 MB at start, about 240 MB after a
//! login load), one reused buffer per thread does not grow.

use std::cell::RefCell;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use anyhow::Context as _;
use application::ports::{PasswordCheck, PasswordHasher};
use argon2::password_hash::phc::{self, Output, ParamsString, Salt};
use argon2::password_hash::{self, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use domain::PasswordHash;
use secrecy::{ExposeSecret as _, SecretString};

/// bcrypt reads at most this many bytes of a password and ignores the rest.
const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// The largest argon2 memory cost (KiB) a stored hash may ask for: 1 GiB. A
/// corrupt or hostile row asking for more is not checked (as a corrupt hash)
/// rather than making the process allocate gigabytes.
const MAX_ARGON2_M_KIB: u32 = 1024 * 1024;

/// The most argon2 work a stored hash may ask for, in KiB-passes (memory cost
/// times time cost): 4 GiB-passes, so 1 GiB × 4 or 64 MiB × 64 (ours is
/// 19 MiB × 2). A row asking for more would hold a hashing thread for
/// minutes, and the only way to get one is a corrupt or forged row; such a
/// hash is not checked, as with [`MAX_ARGON2_M_KIB`].
const MAX_ARGON2_WORK_KIB: u64 = 4 * 1024 * 1024;

/// The most PBKDF2 rounds an imported hash may ask for: 10 million (OWASP
/// asks 600,000 for PBKDF2-HMAC-SHA256, Django 1.2 million).
const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// The highest bcrypt cost (log2 of the rounds) an imported hash may ask
/// for: 16, a few seconds here. The format allows 31, some days of work.
const MAX_BCRYPT_COST: u32 = 16;

thread_local! {
    /// The argon2 memory of a hashing thread, reused by every run on it:
    /// `Some` on the hashing threads (set by [`start_pool`]), `None` on any
    /// other thread, which allocates per run and keeps nothing.
    static ARGON2_MEMORY: RefCell<Option<Vec<Block>>> = const { RefCell::new(None) };
}

/// Hashes with argon2id (OWASP parameters by default); verifies argon2,
/// bcrypt and PBKDF2-SHA256 hashes.
#[derive(Clone)]
pub struct Argon2Hasher {
    params: Params,
    jobs: mpsc::Sender<Job>,
    concurrency: usize,
    dummy: PasswordHash,
}

impl Argon2Hasher {
    /// argon2id with the OWASP Password Storage Cheat Sheet parameters:
    /// m = 19456 KiB, t = 2, p = 1.
    ///
    /// Computes the dummy hash now (tens of milliseconds).
    ///
    /// # Panics
    /// If the operating system's random number generator fails.
    pub fn new() -> Self {
        Self::from_params(Params::default()).expect("argon2id with default parameters")
    }

    /// argon2id with other parameters: cheaper ones make tests fast.
    ///
    /// # Errors
    /// Parameters argon2 refuses (for example `m_kib < 8 * p`, `t = 0`,
    /// `p = 0`), or the OS RNG failed.
    pub fn with_params(m_kib: u32, t: u32, p: u32) -> anyhow::Result<Self> {
        let params = Params::new(m_kib, t, p, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        Self::from_params(params)
    }

    fn from_params(params: Params) -> anyhow::Result<Self> {
        let concurrency = std::thread::available_parallelism()
            .map_or(2, usize::from)
            .max(2);
        // A real hash of a random password: checking it costs what checking
        // a real user's hash costs, and no password can match it.
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).context("OS random number generator failed")?;
        let dummy = hash_argon2id(&params, &secret)?;
        Ok(Self {
            params,
            jobs: start_pool(concurrency)?,
            concurrency,
            dummy,
        })
    }

    /// How many hashes or verifications may run at the same time.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Runs `work` on the hashing threads (queued while all are busy).
    async fn run_limited<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        // What the job logs belongs to the caller's span (request, use case).
        let span = tracing::Span::current();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(span.in_scope(work));
            }))
            .map_err(|_| anyhow::anyhow!("the password hashing threads are gone"))?;
        result.await.context("password hashing failed")
    }
}

/// A unit of work for the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// Starts `n` threads that run jobs until every sender is dropped.
fn start_pool(n: usize) -> anyhow::Result<mpsc::Sender<Job>> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for i in 0..n {
        let queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                ARGON2_MEMORY.set(Some(Vec::new()));
                loop {
                    let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(job) = job else { break };
                    // A panicking job drops its reply channel (the caller gets an
                    // error); the thread lives on.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })
            .context("starting a password hashing thread")?;
    }
    Ok(jobs)
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
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// Runs `f` on `blocks` argon2 memory blocks.
///
/// On a hashing thread they are the thread's own buffer: grown when a run
/// needs more (to at least `keep` blocks, our own memory cost), and kept for
/// the next run unless it is larger than `keep` (an imported hash with a
/// bigger memory cost does not pin its memory). On any other thread they are
/// allocated for this run only.
///
/// # Errors
/// [`argon2::Error::OutOfMemory`] if the memory cannot be allocated.
fn with_argon2_memory<T>(
    blocks: usize,
    keep: usize,
    f: impl FnOnce(&mut [Block]) -> T,
) -> Result<T, argon2::Error> {
    ARGON2_MEMORY.with_borrow_mut(|memory| match memory {
        Some(buffer) => {
            if buffer.len() < blocks {
                // Free the old buffer before allocating the bigger one.
                *buffer = Vec::new();
                *buffer = zeroed_blocks(blocks.max(keep))?;
            }
            let result = f(&mut buffer[..blocks]);
            if buffer.len() > keep {
                *buffer = Vec::new();
            }
            Ok(result)
        }
        None => Ok(f(&mut zeroed_blocks(blocks)?)),
    })
}

/// `n` zeroed blocks, or an error rather than an abort if they do not fit.
fn zeroed_blocks(n: usize) -> Result<Vec<Block>, argon2::Error> {
    let mut blocks = Vec::new();
    blocks
        .try_reserve_exact(n)
        .map_err(|_| argon2::Error::OutOfMemory)?;
    blocks.resize(n, Block::new());
    Ok(blocks)
}

/// One run of `argon2` into `out`, on reused memory where possible (see
/// [`with_argon2_memory`]); `ours` are the hasher's own parameters.
fn argon2_into(
    argon2: &Argon2<'_>,
    ours: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    with_argon2_memory(
        argon2.params().block_count(),
        ours.block_count(),
        |blocks| argon2.hash_password_into_with_memory(password, salt, out, blocks),
    )?
}

/// A new argon2id hash of `password` with a random 16-byte salt, as the PHC
/// string `$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>`: what the crate's
/// `PasswordHasher::hash_password` makes, here on reused memory.
fn hash_argon2id(params: &Params, password: &[u8]) -> anyhow::Result<PasswordHash> {
    let salt = password_hash::try_generate_salt().context("OS random number generator failed")?;
    let salt = Salt::new(&salt).map_err(|e| anyhow::anyhow!("argon2id salt: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer
        .get_mut(..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN))
        .context("argon2id output length")?;
    argon2_into(&argon2, params, password, &salt, out)
        .map_err(|e| anyhow::anyhow!("argon2id hashing failed: {e}"))?;
    let hash = phc::PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)
            .map_err(|e| anyhow::anyhow!("argon2id parameters: {e}"))?,
        salt: Some(salt),
        hash: Some(Output::new(out).map_err(|e| anyhow::anyhow!("argon2id output: {e}"))?),
    };
    Ok(PasswordHash::new(hash.to_string()))
}

/// Checks `password` against a parsed argon2 hash (any variant and version,
/// with its own parameters, salt and output length) as the crate's
/// `PasswordVerifier` does, but on reused memory, and refusing a memory cost
/// above [`MAX_ARGON2_M_KIB`] or work above [`MAX_ARGON2_WORK_KIB`] before
/// allocating anything.
///
/// # Errors
/// [`password_hash::Error::PasswordInvalid`] for a wrong password (or a hash
/// without salt or output); any other error means the hash cannot be checked.
fn verify_argon2(
    ours: &Params,
    password: &[u8],
    hash: &phc::PasswordHash,
) -> password_hash::Result<()> {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return Err(password_hash::Error::PasswordInvalid);
    };
    let params = Params::try_from(hash)?;
    argon2_within_caps(&params)?;
    let algorithm = Algorithm::try_from(hash.algorithm.as_str())?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer
        .get_mut(..expected.len())
        .ok_or(password_hash::Error::OutputSize)?;
    argon2_into(&argon2, ours, password, salt, out)?;
    // `Output`'s `==` is constant-time (`ctutils::CtEq`).
    if Output::new(out)? == *expected {
        Ok(())
    } else {
        Err(password_hash::Error::PasswordInvalid)
    }
}

/// Refuses a memory cost above [`MAX_ARGON2_M_KIB`] and work above
/// [`MAX_ARGON2_WORK_KIB`].
fn argon2_within_caps(params: &Params) -> password_hash::Result<()> {
    if params.m_cost() > MAX_ARGON2_M_KIB {
        return Err(argon2::Error::MemoryTooMuch.into());
    }
    if u64::from(params.m_cost()) * u64::from(params.t_cost()) > MAX_ARGON2_WORK_KIB {
        return Err(password_hash::Error::ParamInvalid { name: "t" });
    }
    Ok(())
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
fn check(params: &Params, password: &[u8], hash: &str) -> PasswordCheck {
    if hash.starts_with("$argon2") {
        let parsed = match phc::PasswordHash::new(hash) {
            Ok(parsed) => parsed,
            Err(e) => return unusable(hash, &e),
        };
        // The hash names its own variant, version and parameters.
        let result = verify_argon2(params, password, &parsed);
        phc_result(result, hash, argon2_needs_rehash(params, &parsed))
    } else if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        // bcrypt silently ignores everything after byte 72, so a longer
        // password would "match" whenever its first 72 bytes do. Every
        // character of a password counts here (NIST SP 800-63B, and the
        // contract): a bcrypt hash can only be the hash of a password of at
        // most 72 bytes, so a longer one is simply not it.
        if password.len() > BCRYPT_MAX_PASSWORD_BYTES {
            return PasswordCheck::Mismatch;
        }
        match hash.parse::<bcrypt::HashParts>() {
            Ok(parts) if parts.get_cost() > MAX_BCRYPT_COST => {
                return unusable(
                    hash,
                    &format_args!("bcrypt cost {} is over {MAX_BCRYPT_COST}", parts.get_cost()),
                );
            }
            Ok(_) => {}
            Err(e) => return unusable(hash, &e),
        }
        match bcrypt::verify(password, hash) {
            Ok(true) => PasswordCheck::Match { needs_rehash: true },
            Ok(false) => PasswordCheck::Mismatch,
            Err(e) => unusable(hash, &e),
        }
    } else if hash.starts_with("$pbkdf2-sha256$") {
        let parsed = match phc::PasswordHash::new(hash) {
            Ok(parsed) => parsed,
            Err(e) => return unusable(hash, &e),
        };
        match pbkdf2::Params::try_from(&parsed.params) {
            Ok(p) if p.rounds() > MAX_PBKDF2_ROUNDS => {
                return unusable(
                    hash,
                    &format_args!("{} PBKDF2 rounds are over {MAX_PBKDF2_ROUNDS}", p.rounds()),
                );
            }
            Ok(_) => {}
            Err(e) => return unusable(hash, &e),
        }
        let result = pbkdf2::Pbkdf2::SHA256.verify_password(password, &parsed);
        phc_result(result, hash, true)
    } else {
        unusable(hash, &"unrecognised hash format")
    }
}

/// Anything but argon2id v19 with at least our parameters is upgraded.
fn argon2_needs_rehash(ours: &Params, hash: &phc::PasswordHash) -> bool {
    let current_algorithm = hash.algorithm.as_str() == argon2::ARGON2ID_IDENT.as_str()
        && hash.version == Some(Version::V0x13.into());
    let strong_enough = Params::try_from(hash).is_ok_and(|theirs| {
        theirs.m_cost() >= ours.m_cost()
            && theirs.t_cost() >= ours.t_cost()
            && theirs.p_cost() >= ours.p_cost()
            && hash
                .hash
                .as_ref()
                .is_some_and(|h| h.len() >= Params::DEFAULT_OUTPUT_LEN)
    });
    !(current_algorithm && strong_enough)
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    // The span lasts until the hashing thread has answered: queueing and
    // hashing both count.
    #[tracing::instrument(name = "password.hash", skip_all)]
    async fn hash(&self, password: SecretString) -> anyhow::Result<PasswordHash> {
        let params = self.params.clone();
        self.run_limited(move || hash_argon2id(&params, password.expose_secret().as_bytes()))
            .await?
    }

    #[tracing::instrument(name = "password.verify", skip_all, fields(scheme = scheme_of(hash.as_str())))]
    async fn verify(
        &self,
        password: SecretString,
        hash: PasswordHash,
    ) -> anyhow::Result<PasswordCheck> {
        let params = self.params.clone();
        self.run_limited(move || check(&params, password.expose_secret().as_bytes(), hash.as_str()))
            .await
    }

    fn dummy_hash(&self) -> PasswordHash {
        self.dummy.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{AssociatedData, ParamsBuilder, PasswordHasher as _};
    use std::sync::atomic::{AtomicUsize, Ordering};

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
        h.verify(secret(password), PasswordHash::new(hash))
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
        let hash = h.hash(secret("correct horse battery")).await.unwrap();
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
        let hash = h.hash(secret(&format!("{prefix}1"))).await.unwrap();
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
        let hash = h.hash(secret(&password)).await.unwrap();
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
            let hash = w.hash(secret(pw)).await.unwrap();
            assert_eq!(verify(&h, pw, hash.as_str()).await, MATCH_OLD, "{w:?}");
        }
        let stronger = Argon2Hasher::with_params(4096, 3, 2)
            .unwrap()
            .hash(secret(pw))
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
        let good = h.hash(secret("password123")).await.unwrap();
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_n_run_at_once() {
        let h = Arc::new(fast());
        let n = h.concurrency();
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..n * 3)
            .map(|_| {
                let (h, running, peak) = (Arc::clone(&h), Arc::clone(&running), Arc::clone(&peak));
                tokio::spawn(async move {
                    h.run_limited(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(30));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            peak.load(Ordering::SeqCst),
            n,
            "the limit is reached but never passed"
        );
    }

    #[tokio::test]
    async fn hashes_cross_check_with_the_argon2_crate() {
        let h = fast();
        let pw = "correct horse battery";
        // Ours, checked by the crate's own verifier.
        let ours = h.hash(secret(pw)).await.unwrap();
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

    #[test]
    fn reused_dirty_memory_gives_the_rfc_9106_argon2id_tag() {
        // RFC 9106 section 5.3 (the argon2 crate's own KAT), with a secret
        // and associated data, run twice on one thread's kept buffer after
        // filling it with garbage.
        let params = ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .data(AssociatedData::new(&[0x04; 12]).unwrap())
            .build()
            .unwrap();
        let argon2 =
            Argon2::new_with_secret(&[0x03; 8], Algorithm::Argon2id, Version::V0x13, params)
                .unwrap();
        let expected = [
            0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37, 0xa3, 0x4a, 0x8b,
            0x53, 0xc9, 0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75, 0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9,
            0x6b, 0x01, 0xe6, 0x59,
        ];
        let ours = Params::new(64, 1, 1, None).unwrap();
        std::thread::spawn(move || {
            ARGON2_MEMORY.set(Some(Vec::new()));
            for _ in 0..2 {
                with_argon2_memory(64, 64, |blocks| {
                    for b in blocks {
                        b.as_mut().fill(0xdead_beef_dead_beef);
                    }
                })
                .unwrap();
                let mut out = [0u8; 32];
                argon2_into(&argon2, &ours, &[0x01; 32], &[0x02; 16], &mut out).unwrap();
                assert_eq!(out, expected);
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_hashing_thread_keeps_one_buffer_of_our_size() {
        std::thread::spawn(|| {
            ARGON2_MEMORY.set(Some(Vec::new()));
            let kept = || ARGON2_MEMORY.with_borrow(|m| m.as_ref().map(|b| (b.len(), b.as_ptr())));
            // A smaller run still allocates our size, once.
            assert_eq!(with_argon2_memory(10, 20, |b| b.len()).unwrap(), 10);
            let (len, first) = kept().unwrap();
            assert_eq!(len, 20);
            assert_eq!(with_argon2_memory(20, 20, |b| b.len()).unwrap(), 20);
            assert_eq!(kept(), Some((20, first)), "the same buffer again");
            // A bigger run (an imported hash) gets its memory, which is not kept.
            assert_eq!(with_argon2_memory(30, 20, |b| b.len()).unwrap(), 30);
            assert_eq!(kept().unwrap().0, 0);
            assert_eq!(with_argon2_memory(5, 20, |b| b.len()).unwrap(), 5);
            assert_eq!(kept().unwrap().0, 20);
        })
        .join()
        .unwrap();
        // Any other thread keeps nothing.
        assert_eq!(with_argon2_memory(10, 20, |b| b.len()).unwrap(), 10);
        assert!(ARGON2_MEMORY.with_borrow(Option::is_none));
    }

    #[tokio::test]
    async fn the_hashing_threads_reuse_their_memory() {
        let h = fast();
        for _ in 0..h.concurrency() * 2 {
            h.hash(secret("pw")).await.unwrap();
        }
        let kept = h
            .run_limited(|| ARGON2_MEMORY.with_borrow(|m| m.as_ref().map(Vec::len)))
            .await
            .unwrap();
        // A hashing thread holds no buffer yet, or one of our 1024 blocks.
        assert!(matches!(kept, Some(0 | 1024)), "{kept:?}");
    }

    #[tokio::test]
    async fn stored_hash_with_huge_memory_cost_is_refused_without_allocating() {
        let h = fast();
        let good = h.hash(secret("password123")).await.unwrap();
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
        let good = h.hash(secret("password123")).await.unwrap();
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
}

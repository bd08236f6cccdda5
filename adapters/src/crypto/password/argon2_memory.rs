//! argon2 on memory kept by each hashing thread.
//!
//! Each hashing thread keeps its argon2 memory from one run to the next
//! instead of allocating a fresh buffer per run: freed buffers still stayed
//! in the allocator's per-thread arenas (60 MB at start, about 240 MB after a
//! login load), one reused buffer per thread does not grow. The crate's PHC
//! functions allocate per run, so hashing and verifying are written here on
//! `hash_password_into_with_memory`.

use std::cell::RefCell;

use anyhow::Context as _;
use argon2::password_hash;
use argon2::password_hash::phc::{self, Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use domain::PasswordHash;

/// The largest argon2 memory cost (KiB) a stored hash may ask for: 1 GiB. A
/// corrupt or hostile row asking for more is not checked (as a corrupt hash)
/// rather than making the process allocate gigabytes.
pub(super) const MAX_ARGON2_M_KIB: u32 = 1024 * 1024;

/// The most argon2 work a stored hash may ask for, in KiB-passes (memory cost
/// times time cost): 4 GiB-passes, so 1 GiB × 4 or 64 MiB × 64 (ours is
/// 19 MiB × 2). A row asking for more would hold a hashing thread for
/// minutes, and the only way to get one is a corrupt or forged row; such a
/// hash is not checked, as with [`MAX_ARGON2_M_KIB`].
pub(super) const MAX_ARGON2_WORK_KIB: u64 = 4 * 1024 * 1024;

thread_local! {
    /// The argon2 memory of a hashing thread, reused by every run on it:
    /// `Some` on the hashing threads (set by [`start_pool`]), `None` on any
    /// other thread, which allocates per run and keeps nothing.
    pub(super) static ARGON2_MEMORY: RefCell<Option<Vec<Block>>> = const { RefCell::new(None) };
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
pub(super) fn with_argon2_memory<T>(
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
pub(super) fn zeroed_blocks(n: usize) -> Result<Vec<Block>, argon2::Error> {
    let mut blocks = Vec::new();
    blocks
        .try_reserve_exact(n)
        .map_err(|_| argon2::Error::OutOfMemory)?;
    blocks.resize(n, Block::new());
    Ok(blocks)
}

/// One run of `argon2` into `out`, on reused memory where possible (see
/// [`with_argon2_memory`]); `ours` are the hasher's own parameters.
pub(super) fn argon2_into(
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
pub(super) fn hash_argon2id(params: &Params, password: &[u8]) -> anyhow::Result<PasswordHash> {
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
pub(super) fn verify_argon2(
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
pub(super) fn argon2_within_caps(params: &Params) -> password_hash::Result<()> {
    if params.m_cost() > MAX_ARGON2_M_KIB {
        return Err(argon2::Error::MemoryTooMuch.into());
    }
    if u64::from(params.m_cost()) * u64::from(params.t_cost()) > MAX_ARGON2_WORK_KIB {
        return Err(password_hash::Error::ParamInvalid { name: "t" });
    }
    Ok(())
}

/// Anything but argon2id v19 with at least our parameters is upgraded.
pub(super) fn argon2_needs_rehash(ours: &Params, hash: &phc::PasswordHash) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{AssociatedData, ParamsBuilder};

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
}

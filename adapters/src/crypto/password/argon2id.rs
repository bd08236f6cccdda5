//! argon2 through the crate's own PHC functions, within caps. Each run
//! allocates its memory afresh; [`crate::system::tune_allocator`] is what
//! gives it back to the system (its module has the measurement).

use anyhow::Context as _;
use argon2::password_hash::phc;
use argon2::password_hash::{self, PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
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

/// A new argon2id (v19) hash of `password` with a random 16-byte salt, as
/// the PHC string `$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>`.
pub(super) fn hash_argon2id(params: &Params, password: &[u8]) -> anyhow::Result<PasswordHash> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let hash = argon2
        .hash_password(password)
        .map_err(|e| anyhow::anyhow!("argon2id hashing failed: {e}"))
        .context("hashing a password")?;
    Ok(PasswordHash::new(hash.to_string()))
}

/// Checks `password` against a parsed argon2 hash (any variant and version,
/// with its own parameters, salt and output length; the output compared in
/// constant time), refusing a memory cost above [`MAX_ARGON2_M_KIB`] or work
/// above [`MAX_ARGON2_WORK_KIB`] before allocating anything.
///
/// # Errors
/// [`password_hash::Error::PasswordInvalid`] for a wrong password (or a hash
/// without salt or output); any other error means the hash cannot be checked.
pub(super) fn verify_argon2(
    password: &[u8],
    hash: &phc::PasswordHash,
) -> password_hash::Result<()> {
    argon2_within_caps(&Params::try_from(hash)?)?;
    Argon2::default().verify_password(password, hash)
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

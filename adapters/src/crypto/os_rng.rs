//! The operating system's CSPRNG in the shape `rsa` 0.10 wants.
//!
//! `rsa` 0.10 takes a `rand_core` 0.10 RNG; rather than add `rand` (or a
//! second `getrandom`) for one trait, this adapts `getrandom::fill`.

use rsa::rand_core::{TryCryptoRng, TryRng};

/// `getrandom` (the kernel's CSPRNG) as a `rand_core` 0.10 [`TryCryptoRng`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OsRng;

/// The kernel refused to give randomness.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub(crate) struct OsRngError(getrandom::Error);

impl TryRng for OsRng {
    type Error = OsRngError;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        getrandom::u32().map_err(OsRngError)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        getrandom::u64().map_err(OsRngError)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(dst).map_err(OsRngError)
    }
}

impl TryCryptoRng for OsRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_with_fresh_bytes() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        OsRng.try_fill_bytes(&mut a).unwrap();
        OsRng.try_fill_bytes(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}

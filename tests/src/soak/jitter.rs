//! Seeded jitter for the workload (SplitMix64): pacing and choices that
//! differ between virtual users and between runs.

use std::time::Duration;

/// A small, fast, seeded generator; not for secrets.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator for one user: the run's seed mixed with its index.
    pub fn seeded(run_seed: u64, index: u64) -> Self {
        let mut jitter = Self(run_seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        jitter.next_u64();
        jitter
    }

    /// A fresh seed from the operating system.
    pub fn run_seed() -> u64 {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("randomness from the OS");
        u64::from_le_bytes(bytes)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// `d` scaled by a factor in `[1 - spread, 1 + spread]`.
    pub fn around(&mut self, d: Duration, spread: f64) -> Duration {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64((1.0 - spread + 2.0 * spread * unit).max(0.0))
    }
}

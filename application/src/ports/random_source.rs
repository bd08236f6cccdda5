//! Randomness.

use uuid::Uuid;

/// A cryptographically secure source of randomness.
pub trait RandomSource: Send + Sync + 'static {
    /// Fills `buf` from a CSPRNG.
    fn fill(&self, buf: &mut [u8]);

    /// A random (version 4) UUID.
    fn uuid(&self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

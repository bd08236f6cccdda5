//! Fixed test signing keys: generated once per target directory and kept
//! there (mode 0600, never in git), so test binaries do not each pay for
//! RSA key generation.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::PathBuf;
use std::sync::OnceLock;

use adapters::crypto::keys::PrivateKey;
use secrecy::ExposeSecret as _;

/// How many distinct keys the tests use (the service's, and a stranger's).
const SLOTS: usize = 2;

/// The service's test key.
pub const SERVICE: usize = 0;
/// A key the service does not know (forged tokens).
pub const STRANGER: usize = 1;

/// The 2048-bit test key in `slot` ([`SERVICE`] or [`STRANGER`]).
///
/// # Panics
/// An unknown slot, or the key can be neither read nor generated.
pub fn fixed_key(slot: usize) -> PrivateKey {
    static KEYS: [OnceLock<PrivateKey>; SLOTS] = [const { OnceLock::new() }; SLOTS];
    KEYS[slot].get_or_init(|| load_or_generate(slot)).clone()
}

/// `target/<profile>/test-keys`, beside the test binaries.
fn directory() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<binary>
    exe.ancestors()
        .nth(2)
        .expect("a test binary lives in target/<profile>/deps")
        .join("test-keys")
}

fn load_or_generate(slot: usize) -> PrivateKey {
    let dir = directory();
    let path = dir.join(format!("rsa2048-{slot}.pem"));
    let stored = std::fs::read_to_string(&path).ok();
    if let Some(key) = stored.and_then(|pem| PrivateKey::from_pem(&pem).ok()) {
        return key;
    }
    let key = PrivateKey::generate(2048).expect("generating a test key");
    std::fs::create_dir_all(&dir).expect("the test-keys directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("test-keys mode");
    // Written aside and renamed: a binary running at the same time reads
    // the old file or the new one, never half of one.
    let aside = dir.join(format!("rsa2048-{slot}.pem.{}", std::process::id()));
    let pem = key.to_pkcs8_pem().expect("PEM");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)
        .expect("writing a test key");
    file.write_all(pem.expose_secret().as_bytes())
        .expect("writing a test key");
    std::fs::rename(&aside, &path).expect("placing a test key");
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_key_is_kept_private_and_read_back_unchanged() {
        let key = fixed_key(STRANGER);
        let path = directory().join(format!("rsa2048-{STRANGER}.pem"));
        let mode = std::fs::metadata(&path)
            .expect("the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        let stored = PrivateKey::from_pem(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(stored.kid(), key.kid());
        assert_ne!(fixed_key(SERVICE).kid(), key.kid(), "two slots, two keys");
    }
}

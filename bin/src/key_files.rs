//! The key files: the server secret, and a signing key from before the key set.
//!
//! The signing keys live in the database (the key set, `authd keys`); what a
//! process reads from its key directory (by default `keys/`) is the server
//! secret `refresh-seal.key`, which keys the refresh-grace seals and seals
//! the private signing keys in the database, and, only while the key set is
//! empty, a key pair of an earlier version to import with its kid. A process
//! creates the secret at its first start, the directory `0700` and the file
//! `0600`.

use std::path::{Path, PathBuf};

use adapters::crypto::keys::{PrivateKey, PublicKey};
use adapters::private_files::{create_private_dir, write_new};
use adapters::system::OsRandom;
use anyhow::Context;
use application::SealKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::Config;

/// The file name of the seal key, next to the signing key unless
/// `REFRESH_SEAL_KEY_PATH` names another.
pub const SEAL_KEY_FILE: &str = "refresh-seal.key";

/// What the key files hold.
#[derive(Debug, Clone)]
pub struct KeyMaterial {
    /// A signing key of an earlier version (`PRIVATE_KEY_PATH`), the first
    /// key of an empty key set; `None` when there is no such file.
    pub import: Option<PrivateKey>,
    /// The server secret (`REFRESH_SEAL_KEY_PATH`).
    pub seal: SealKey,
}

impl KeyMaterial {
    /// A fresh key pair of `bits` bits and a fresh seal key.
    ///
    /// # Errors
    /// Key generation failed.
    pub fn generate(bits: usize) -> anyhow::Result<Self> {
        let private = PrivateKey::generate(bits)?;
        Ok(Self::from_private(private, SealKey::generate(&OsRandom)))
    }

    /// `private` to import, with `seal`.
    pub fn from_private(private: PrivateKey, seal: SealKey) -> Self {
        Self {
            import: Some(private),
            seal,
        }
    }

    /// Reads the seal key, creating it when its file does not exist, and the
    /// key pair at the configured paths when there is one.
    ///
    /// # Errors
    /// Unreadable or invalid key files; a public key without its private key
    /// or that is not its half; a secret key file that group or others may
    /// read, or any key file or key directory that they may write.
    pub fn load_or_create(config: &Config) -> anyhow::Result<Self> {
        let seal = load_or_create_seal(&config.seal_key_path())?;
        Self::with_seal(config, seal)
    }

    /// As [`Self::load_or_create`], but the server secret must exist: what
    /// `authd keys rotate|retire|list` read (security review 2, finding 7).
    /// A key sealed under a secret the CLI made up would open in no server,
    /// and a server whose secret opens no key cannot start.
    ///
    /// # Errors
    /// No secret at `REFRESH_SEAL_KEY_PATH` (the message names the path);
    /// as [`Self::load_or_create`].
    pub fn load_existing(config: &Config) -> anyhow::Result<Self> {
        let path = config.seal_key_path();
        if !path.exists() {
            anyhow::bail!(
                "no server secret at REFRESH_SEAL_KEY_PATH {}: the service creates it at its \
                 first start; run this command with the service's REFRESH_SEAL_KEY_PATH",
                path.display()
            );
        }
        let seal = load_or_create_seal(&path)?;
        Self::with_seal(config, seal)
    }

    fn with_seal(config: &Config, seal: SealKey) -> anyhow::Result<Self> {
        let (priv_path, pub_path) = (&config.private_key_path, &config.public_key_path);
        if !priv_path.exists() {
            if pub_path.exists() {
                anyhow::bail!(
                    "PRIVATE_KEY_PATH {} does not exist but PUBLIC_KEY_PATH {} does; refusing to guess which key it was",
                    priv_path.display(),
                    pub_path.display()
                );
            }
            return Ok(Self { import: None, seal });
        }
        refuse_loose(priv_path, "PRIVATE_KEY_PATH", Secret::Yes)?;
        let pem = std::fs::read_to_string(priv_path)
            .with_context(|| format!("reading PRIVATE_KEY_PATH {}", priv_path.display()))?;
        let private = PrivateKey::from_pem(&pem)
            .with_context(|| format!("parsing PRIVATE_KEY_PATH {}", priv_path.display()))?;
        // The verifying key is the private key's own half; a public key file
        // beside it is only checked, never trusted on its own.
        if pub_path.exists() {
            refuse_loose(pub_path, "PUBLIC_KEY_PATH", Secret::No)?;
            let pem = std::fs::read_to_string(pub_path)
                .with_context(|| format!("reading PUBLIC_KEY_PATH {}", pub_path.display()))?;
            let public = PublicKey::from_pem(&pem)
                .with_context(|| format!("parsing PUBLIC_KEY_PATH {}", pub_path.display()))?;
            if public.kid() != private.kid() {
                anyhow::bail!(
                    "PUBLIC_KEY_PATH {} holds another key (kid {}) than PRIVATE_KEY_PATH {} \
                     (kid {}): refusing to start; replace both files together, or delete the \
                     public key",
                    pub_path.display(),
                    public.kid(),
                    priv_path.display(),
                    private.kid()
                );
            }
        }
        Ok(Self::from_private(private, seal))
    }
}

/// Writes `private` as PKCS#8 (mode 0600) and its public half as SPKI PEM
/// files, creating directories (mode 0700).
///
/// # Errors
/// The files cannot be written.
pub fn write_key_pair(
    private: &PrivateKey,
    priv_path: &Path,
    pub_path: &Path,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    for path in [priv_path, pub_path] {
        create_parent(path)?;
    }
    let pem = private.to_pkcs8_pem()?;
    write_new(priv_path, pem.expose_secret().as_bytes(), 0o600)
        .with_context(|| format!("writing {}", priv_path.display()))?;
    let public = private.public_key().to_spki_pem()?;
    write_new(pub_path, public.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", pub_path.display()))?;
    Ok(())
}

/// Reads the seal key at `path`, or creates it there (mode 0600).
///
/// Several processes may start at once on a fresh deployment: the key is
/// written to a private temporary file and then linked into place, which
/// fails for every process but the first; the others read the winner's key.
///
/// # Errors
/// The file is unreadable or malformed, or cannot be created (a read-only
/// key directory: create it beforehand with `authd keys generate` or
/// `generate-keys.sh`).
pub fn load_or_create_seal(path: &Path) -> anyhow::Result<SealKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            refuse_loose(path, "REFRESH_SEAL_KEY_PATH", Secret::Yes)?;
            return parse_seal(&text, path);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading REFRESH_SEAL_KEY_PATH {}", path.display()));
        }
    }
    let key = SealKey::generate(&OsRandom);
    create_parent(path)?;
    let tmp = temp_sibling(path);
    write_new(&tmp, seal_text(&key).as_bytes(), 0o600).with_context(|| {
        format!(
            "creating the refresh seal key {} (a read-only key directory? create it beforehand \
             with `authd keys generate` or generate-keys.sh)",
            path.display()
        )
    })?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "refresh seal key created");
            Ok(key)
        }
        // Another process created it first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading REFRESH_SEAL_KEY_PATH {}", path.display()))?;
            parse_seal(&text, path)
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// The file's text: the key in base64url and a newline.
pub fn seal_text(key: &SealKey) -> String {
    format!("{}\n", URL_SAFE_NO_PAD.encode(key.expose()))
}

fn parse_seal(text: &str, path: &Path) -> anyhow::Result<SealKey> {
    let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok();
    let bytes: [u8; SealKey::LEN] = bytes.and_then(|b| b.try_into().ok()).with_context(|| {
        format!(
            "REFRESH_SEAL_KEY_PATH {} does not hold a key: expected {} bytes in base64url \
                 without padding",
            path.display(),
            SealKey::LEN
        )
    })?;
    Ok(SealKey::from_bytes(bytes))
}

/// Whether a key file is secret (no access for group or others) or only
/// trusted (not writable by group or others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secret {
    Yes,
    No,
}

/// Refuses, as OpenSSH does, a secret key file that group or others may
/// read, and any key file, or the directory holding it, that group or others
/// may write (they could replace the key).
#[cfg(unix)]
fn refuse_loose(path: &Path, variable: &str, secret: Secret) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| -> anyhow::Result<u32> {
        Ok(std::fs::metadata(p)
            .with_context(|| format!("reading the permissions of {}", p.display()))?
            .permissions()
            .mode()
            & 0o7777)
    };
    let file = mode(path)?;
    if secret == Secret::Yes && file & 0o077 != 0 {
        anyhow::bail!(
            "{variable} {} is accessible by group or others (mode {file:04o}): refusing to \
             start; chmod 600 it",
            path.display()
        );
    }
    if file & 0o022 != 0 {
        anyhow::bail!(
            "{variable} {} is writable by group or others (mode {file:04o}): refusing to start; \
             chmod go-w it",
            path.display()
        );
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir_mode = mode(&dir)?;
    if dir_mode & 0o022 != 0 {
        anyhow::bail!(
            "the directory {} of {variable} is writable by group or others (mode {dir_mode:04o}): \
             anyone could replace the key; refusing to start; chmod go-w it",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_loose(_: &Path, _: &str, _: Secret) -> anyhow::Result<()> {
    Ok(())
}

fn temp_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

/// Creates the directory of `path` (mode 0700) if it is missing.
fn create_parent(path: &Path) -> anyhow::Result<()> {
    match path.parent() {
        Some(dir) => create_private_dir(dir).with_context(|| format!("creating {}", dir.display())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_key_is_created_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("authd-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join(SEAL_KEY_FILE);
        let first = load_or_create_seal(&path).expect("created");
        let again = load_or_create_seal(&path).expect("read");
        assert_eq!(first.expose(), again.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        std::fs::write(&path, "not a key\n").unwrap();
        let err = load_or_create_seal(&path).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not hold a key"),
            "{err:#}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

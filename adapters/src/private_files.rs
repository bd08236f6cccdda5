//! Files that hold secrets or personal data, created with exact modes
//! whatever the umask: the key files (`bin`) and the SQLite database.

use std::io::Write as _;
use std::path::Path;

/// Creates `dir` and its missing parents, mode 0700 (existing ones are left as they are).
///
/// # Errors
/// The directory cannot be created.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a file that must not exist yet (`AlreadyExists` otherwise), with
/// exactly `mode`, and syncs it.
///
/// # Errors
/// The file exists or cannot be written.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // The umask may have taken bits away (never added them): set exactly `mode`.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(bytes)?;
    file.sync_all()
}

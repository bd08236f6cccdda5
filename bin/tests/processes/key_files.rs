//! Keys and the database on disk (security review, finding 7): whatever the
//! umask, what `authd` creates is its owner's only, and it refuses to start,
//! as OpenSSH does, on key files that others could read or replace.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::process::{self, Proc};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `authd <args>` under `umask 000`, with the key paths of `dir/keys`.
fn authd(dir: &Path, args: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "umask 000; exec {} {args}",
            crate::authd().display()
        ))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/data/authd.db", dir.display()),
        )
        .env("PRIVATE_KEY_PATH", dir.join("keys/private.pem"))
        .env("PUBLIC_KEY_PATH", dir.join("keys/public.pem"))
        .env("API_ADDR", "127.0.0.1:0")
        .env("WS_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .current_dir(dir);
    cmd
}

/// Starts `authd serve` and expects it to refuse: it exits unsuccessfully
/// within 20 s with `expected` in its output.
fn refuses(dir: &Path, expected: &str, case: &str) {
    refused(authd(dir, "serve"), dir, expected, case);
}

/// Runs `serve` (an `authd serve` of `dir`) and expects it to refuse as
/// [`refuses`] says; returns its log.
fn refused(serve: Command, dir: &Path, expected: &str, case: &str) -> String {
    let log = dir.join(format!("{}.log", case.replace(' ', "-")));
    let mut proc = Proc::spawn("authd", serve, log).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = proc.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{case}: authd started instead of refusing:\n{}",
            proc.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = proc.log_text();
    assert!(!status.success(), "{case}: exited successfully:\n{log}");
    assert!(log.contains(expected), "{case}: no {expected:?} in:\n{log}");
    log
}

#[test]
fn key_files_and_the_database_are_private_and_loose_keys_are_refused() {
    let dir = process::temp_dir("authd-key-files").unwrap();
    let keys = dir.join("keys");

    // Created under umask 000: the directory and the secrets are the owner's.
    process::run(&mut authd(&dir, "keys generate --bits 2048 --out keys")).unwrap();
    assert_eq!(mode(&keys), 0o700, "key directory");
    assert_eq!(mode(&keys.join("private.pem")), 0o600, "private key");
    assert_eq!(mode(&keys.join("public.pem")), 0o644, "public key");
    assert_eq!(mode(&keys.join("refresh-seal.key")), 0o600, "seal key");
    process::run(&mut authd(&dir, "migrate")).unwrap();
    assert_eq!(mode(&dir.join("data")), 0o700, "database directory");
    assert_eq!(mode(&dir.join("data/authd.db")), 0o600, "database file");

    // Loose permissions stop the start, each with a message that says why.
    let private = keys.join("private.pem");
    chmod(&private, 0o640);
    refuses(
        &dir,
        "is accessible by group or others (mode 0640)",
        "private key readable",
    );
    chmod(&private, 0o600);
    let seal = keys.join("refresh-seal.key");
    chmod(&seal, 0o644);
    refuses(&dir, "REFRESH_SEAL_KEY_PATH", "seal key readable");
    chmod(&seal, 0o600);
    let public = keys.join("public.pem");
    chmod(&public, 0o666);
    refuses(
        &dir,
        "is writable by group or others (mode 0666)",
        "public key writable",
    );
    chmod(&public, 0o644);
    chmod(&keys, 0o777);
    refuses(
        &dir,
        "is writable by group or others (mode 0777)",
        "key directory writable",
    );
    chmod(&keys, 0o700);

    // A public key that is not the private key's half is not trusted.
    let other = dir.join("other");
    process::write_rsa_keys(&other, 2048).unwrap();
    std::fs::copy(other.join("public.pem"), &public).unwrap();
    refuses(&dir, "holds another key", "mismatched public key");
    std::fs::remove_file(&public).unwrap();

    // Without the public file the pair is the private key alone: it starts.
    serve_until_listening(&dir, "ok.log").stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Security review 2, finding 7: `authd keys rotate` with a server-secret
/// path that holds none (a typo, another directory) creates no secret and
/// adds no key: a key sealed under a made-up secret would open in no
/// server, and every later start would fail.
#[test]
fn keys_rotate_never_creates_the_server_secret() {
    let dir = process::temp_dir("authd-keys-no-secret").unwrap();
    process::run(&mut authd(&dir, "migrate")).unwrap();
    let elsewhere = dir.join("elsewhere/refresh-seal.key");
    let out = authd(&dir, "keys rotate")
        .env("REFRESH_SEAL_KEY_PATH", &elsewhere)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no server secret"), "{stderr}");
    assert!(
        !elsewhere.exists(),
        "the CLI created {}",
        elsewhere.display()
    );
    let out = authd(&dir, "keys list")
        .env("REFRESH_SEAL_KEY_PATH", &elsewhere)
        .output()
        .unwrap();
    assert!(!out.status.success(), "keys list without the secret");
}

/// Starts `authd serve` in `dir` and waits until it listens (or fails).
fn serve_until_listening(dir: &Path, log: &str) -> Proc {
    let mut serve = authd(dir, "serve");
    serve.env("RUST_LOG", "info");
    let mut proc = Proc::spawn("authd", serve, dir.join(log)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !proc.log_text().contains("REST API listening") {
        assert!(
            proc.exited().is_none(),
            "authd stopped:\n{}",
            proc.log_tail()
        );
        assert!(
            Instant::now() < deadline,
            "not listening:\n{}",
            proc.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    proc
}

/// Security review 2, finding 7 (the rest): with another deployment's
/// server secret, `authd keys rotate` adds no key (it checks that the secret
/// opens the current key first), and a server exits non-zero at once with a
/// message naming the secret's path, where it used to wait for ever, "not
/// serving yet". The secret's content is never printed.
#[test]
fn a_server_secret_that_opens_no_key_is_refused_by_name() {
    let dir = process::temp_dir("authd-wrong-secret").unwrap();
    // The first key comes from these files (no 4096-bit key made in a debug build).
    process::write_rsa_keys(&dir.join("keys"), 2048).unwrap();
    let mut first = serve_until_listening(&dir, "first.log");
    first.stop();
    let right = dir.join("keys/refresh-seal.key");
    let other = process::temp_dir("authd-other-secret").unwrap();
    let wrong = other.join("refresh-seal.key");
    process::run(
        Command::new(crate::authd())
            .args(["keys", "generate", "--bits", "2048", "--out"])
            .arg(&other),
    )
    .unwrap();
    let wrong_text = std::fs::read_to_string(&wrong).unwrap();

    let list = |secret: &Path| {
        let out = authd(&dir, "keys list")
            .env("REFRESH_SEAL_KEY_PATH", secret)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let before = list(&right);
    let out = authd(&dir, "keys rotate")
        .env("REFRESH_SEAL_KEY_PATH", &wrong)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "rotate with another secret: {stderr}"
    );
    assert!(stderr.contains(&wrong.display().to_string()), "{stderr}");
    assert!(stderr.contains("nothing was added"), "{stderr}");
    assert!(
        !stderr.contains(wrong_text.trim()),
        "the secret was printed"
    );
    assert_eq!(list(&right), before, "a key was added");

    let mut serve = authd(&dir, "serve");
    serve.env("REFRESH_SEAL_KEY_PATH", &wrong);
    let log = refused(serve, &dir, "opens no signing key", "another secret");
    assert!(log.contains(&wrong.display().to_string()), "{log}");
    assert!(!log.contains(wrong_text.trim()), "the secret was logged");
    // With its own secret the server starts as before.
    serve_until_listening(&dir, "again.log").stop();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

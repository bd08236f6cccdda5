//! The `authd` command line on a real terminal: `authd user add` reads the
//! password without echoing it, and touches no key file.
//!
//! A pseudo-terminal comes from util-linux's `script`; the terminal echoes
//! what is typed unless the program turned echo off, so the password must not
//! come back on the terminal's output.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use integration_tests::process;

#[test]
#[cfg_attr(missing = "script", ignore = "needs script (util-linux)")]
fn user_add_does_not_echo_the_password_and_opens_no_keys() {
    process::require_tools(
        "user_add_does_not_echo_the_password_and_opens_no_keys",
        &["script"],
    );
    let dir = process::temp_dir("authd-cli").unwrap();
    let command = format!("{} user add alice", crate::authd().display());
    let mut child = Command::new(process::which("script").expect("script"))
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/authd.db?mode=rwc", dir.display()),
        )
        // No key files: adding a user neither needs nor creates them.
        .env("PRIVATE_KEY_PATH", dir.join("keys/private.pem"))
        .env("PUBLIC_KEY_PATH", dir.join("keys/public.pem"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Everything the terminal shows, as it comes.
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = Vec::new();
    let mut wait_for = |needle: &str, within: Duration| {
        let deadline = Instant::now() + within;
        while !String::from_utf8_lossy(&shown).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => shown.extend(bytes),
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&shown).into_owned()
    };

    // Type only once the prompt is there: echo is a property of the terminal
    // at the moment of typing.
    let screen = wait_for("password for alice:", Duration::from_secs(20));
    assert!(
        screen.contains("password for alice:"),
        "no prompt: {screen:?}"
    );
    let password = "typed-secret-9f2c";
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    stdin.flush().unwrap();
    let screen = wait_for("added user alice", Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let keys_made = dir.join("keys").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(screen.contains("added user alice"), "{screen:?}");
    assert!(!keys_made, "authd user add created key files");
    assert!(
        !screen.contains(password),
        "the password was echoed: {screen:?}"
    );
}

//! Build script of the test packages (`tests/` and `bin/`): which tools the
//! tests need are missing on this machine. Each missing one becomes a
//! `missing = "<tool>"` cfg, and a test that needs it carries
//! `#[cfg_attr(missing = "<tool>", ignore = "needs <tool>")]`, so that
//! `cargo test` reports it as ignored, never as passed.
//!
//! Under `CI` nothing is missing by definition: every test runs, and one
//! whose tool is absent fails. The lookup reruns when `PATH`, `PG_BIN` or
//! `CI` change, or when a program is installed into the directories searched.

use std::path::{Path, PathBuf};

/// The tools: PostgreSQL's server binaries, Python's `websockets` package
/// (an independent WebSocket client), `cryptography` (an independent DPoP
/// signer), `schemathesis` (a schema-driven HTTP fuzzer) and `aiosmtpd`
/// (the SMTP server of `tests/clients/smtp_sink.py`), and programs on `PATH`.
const TOOLS: [&str; 14] = [
    "python-websockets",
    "python-aiosmtpd",
    "python-cryptography",
    "python-schemathesis",
    "postgres",
    "nginx",
    "openssl",
    "envsubst",
    "chromium",
    "chromedriver",
    "docker-compose",
    "script",
    "unshare",
    "ip",
];

/// Where PostgreSQL's server binaries live (`/usr/lib/postgresql/<version>/bin`).
const PG_ROOT: &str = "/usr/lib/postgresql";

const SBIN: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

fn main() {
    let values = TOOLS.map(|t| format!("\"{t}\"")).join(", ");
    println!("cargo::rustc-check-cfg=cfg(missing, values({values}))");
    for var in ["CI", "PATH", "PG_BIN"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let dirs = search_path();
    for dir in dirs
        .iter()
        .map(PathBuf::as_path)
        .chain([Path::new(PG_ROOT)])
    {
        if dir.is_dir() {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
    }
    // Under CI every tool is there by definition. A release build is the
    // binary that ships (the Dockerfile's): it holds no tests, so it probes
    // nothing, and building it needs no python3.
    println!("cargo::rerun-if-env-changed=PROFILE");
    if std::env::var_os("CI").is_some() || std::env::var("PROFILE").is_ok_and(|p| p == "release") {
        return;
    }
    for tool in TOOLS {
        let found = match tool {
            "postgres" => postgres_found(),
            "python-websockets" => python_module("websockets"),
            "python-cryptography" => python_module("cryptography"),
            "python-schemathesis" => python_module("schemathesis"),
            "python-aiosmtpd" => python_module("aiosmtpd"),
            "chromium" => ["chromium", "chromium-browser"]
                .iter()
                .any(|p| on_path(&dirs, p)),
            program => on_path(&dirs, program),
        };
        if !found {
            println!("cargo::rustc-cfg=missing=\"{tool}\"");
            println!("cargo::warning=tests that need {tool} are ignored: it is not installed");
        }
    }
}

/// `PATH` plus the sbin directories nginx lives in (as `process::which`).
fn search_path() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.map(PathBuf::from))
        .collect()
}

fn on_path(dirs: &[PathBuf], program: &str) -> bool {
    dirs.iter().any(|d| d.join(program).is_file())
}

/// Whether `python3` imports `module`.
fn python_module(module: &str) -> bool {
    std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// As `integration_tests::postgres`: `PG_BIN`, else any version under [`PG_ROOT`].
fn postgres_found() -> bool {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Path::new(&dir).join("initdb").is_file();
    }
    std::fs::read_dir(PG_ROOT).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().join("bin/initdb").is_file())
    })
}

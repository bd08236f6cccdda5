//! Process-level tests: the `authd` binary itself, as separate processes
//! (beside PostgreSQL, Nginx, headless Chromium, an OTLP receiver), where
//! the in-process tests of `tests/` cannot reach: the command line, the
//! configuration from the environment, the logs and exported spans, key
//! files, revocations between processes, the mail outbox across a crash,
//! and the deployment. Cargo builds the binary before this test binary, so
//! the binary under test is never stale.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed test"
)]

mod audit_cli;
mod cli;
mod config;
mod e2e;
mod key_files;
mod logs;
mod mail_outbox;
mod revocation;
mod traces;

/// The `authd` binary of this build.
fn authd() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_authd").into()
}

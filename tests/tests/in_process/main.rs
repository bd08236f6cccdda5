//! The in-process integration tests, one binary: the real wiring and
//! adapters inside the test process, against real SQLite and PostgreSQL
//! databases, real sockets and real HTTP and WebSocket clients.
//!
//! - [`api`]: every row of the contract's REST table, on both databases.
//! - [`websocket`]: the WebSocket half of the contract.
//! - [`persistence`]: the stores on both databases, migrations, faults.
//! - [`metrics`]: `/metrics` and OTLP export after real scenarios.
//! - [`docs`]: every repository path README.md and SECURITY.md name exists.
//! - [`mail`]: the mail adapter against a real SMTP server, and the `.eml` files.
//!
//! The `authd` binary as separate processes is tested in `bin/tests/processes/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed test"
)]

mod api;
mod docs;
mod mail;
mod metrics;
mod persistence;
mod websocket;

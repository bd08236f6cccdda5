//! The soak run of issue 36 in CI: 60 s of the production layout (three
//! `authd api` and three `authd ws` of this build behind the project's
//! Nginx, on a throwaway PostgreSQL) under a mixed workload at the CI rate
//! and one round of the six faults, every guarantee checked
//! (`integration_tests::soak`; `tests/load/soak.sh` runs the same on the
//! release binary, longer and at a higher rate).
//!
//! A test binary of its own, so that nothing else runs beside it: its
//! bounds (a revocation within 1 s) are timings on two shared cores.
//! The JSON lines and the summary show with `--nocapture` or on failure;
//! the work directory with every log is kept when it fails (or with
//! `SOAK_KEEP`); `SOAK_*` variables change the workload (`Settings::with_env`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failed test"
)]

use integration_tests::process::require_tools;
use integration_tests::soak::{self, Settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(
        missing = "nginx",
        missing = "openssl",
        missing = "envsubst",
        missing = "postgres"
    ),
    ignore = "needs nginx, openssl, envsubst and PostgreSQL"
)]
async fn the_layout_keeps_every_guarantee_through_a_minute_of_load_and_faults() {
    require_tools("soak", &soak::TOOLS);
    let settings = Settings::ci(env!("CARGO_BIN_EXE_authd").into())
        .with_env()
        .expect("the SOAK_* settings");
    let outcome = soak::run(settings).await.expect("the layout starts");
    println!("{}", outcome.summary);
    assert!(outcome.held(), "{}", outcome.summary);
    // Kept when it failed (above) or when asked to.
    if std::env::var_os("SOAK_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&outcome.dir);
    }
}

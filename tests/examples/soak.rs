//! The soak run of issue 36 against a built `authd`: three `authd api` and
//! three `authd ws` behind the project's Nginx, on a throwaway PostgreSQL,
//! all on loopback, under a mixed workload and scheduled faults.
//!
//! `soak [SECONDS [AUTHD]]` (default 300 s, `target/release/authd`);
//! `SOAK_AUTHD` names the binary too, and the `SOAK_*` variables of
//! `integration_tests::soak::Settings::with_env` change the workload.
//! `SOAK_PRESET=ci` takes the CI test's lower rate. `tests/load/soak.sh`
//! builds both and runs it.
//!
//! Prints one JSON line per interval on stdout, then the summary table,
//! whose last line reads `soak: N invariants held over S s` or names what
//! broke; exits 1 when an invariant broke, 2 when the run could not start.

use std::path::PathBuf;

use integration_tests::soak::{self, Settings};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(300);
    let authd = args
        .get(2)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("SOAK_AUTHD").map(PathBuf::from))
        .unwrap_or_else(|| {
            integration_tests::process::workspace_root().join("target/release/authd")
        });
    let code = match start(authd, seconds) {
        Ok(outcome) => {
            println!("{}", outcome.summary);
            i32::from(!outcome.held())
        }
        Err(e) => {
            eprintln!("soak: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn start(authd: PathBuf, seconds: u64) -> anyhow::Result<soak::Outcome> {
    anyhow::ensure!(authd.is_file(), "no authd binary at {}", authd.display());
    // `SOAK_PRESET=ci`: the CI test's workload, at any length.
    let settings = if std::env::var("SOAK_PRESET").is_ok_and(|p| p == "ci") {
        Settings {
            seconds,
            ..Settings::ci(authd)
        }
    } else {
        Settings::release(authd, seconds)
    }
    .with_env()?;
    let missing: Vec<&str> = soak::TOOLS
        .into_iter()
        .filter(|t| integration_tests::process::which(t).is_none())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "missing programs: {}",
        missing.join(", ")
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(soak::run(settings))
}

//! A hostile client nobody here wrote: schemathesis reads the served OpenAPI
//! document and sends its operations about 800 generated requests (some
//! fifty each, in its coverage, fuzzing and stateful phases), valid and
//! invalid (wrong types, missing members, huge and odd strings, no token, a
//! foreign token). It fails on a 5xx, an answer its operation does not
//! document, a body or header that differs from the document, a secured
//! operation that answers without its token, and the like (its checks
//! `all`, less `positive_data_acceptance`: the contract itself answers some
//! schema-valid bodies with 400, such as a wrong confirming code or both
//! `code` and `recoveryCode`).
//!
//! `POST /api/logout` is left out: it would end the token the run uses
//! before most operations had their turn.

use authd::Config;
use integration_tests::app::{Backend, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    missing = "python-schemathesis",
    ignore = "needs schemathesis (pip install schemathesis)"
)]
async fn a_schema_driven_fuzzer_finds_nothing_on_sqlite() {
    a_schema_driven_fuzzer_finds_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    any(missing = "python-schemathesis", missing = "postgres"),
    ignore = "needs schemathesis (pip install schemathesis) and PostgreSQL"
)]
async fn a_schema_driven_fuzzer_finds_nothing_on_postgres() {
    a_schema_driven_fuzzer_finds_nothing(Backend::Postgres).await;
}

/// Generated requests per operation (and phase): enough to cover each
/// body's members with both right and wrong types in a few seconds.
const EXAMPLES: &str = "40";
/// A fixed seed: a failure reproduces with the same requests.
const SEED: &str = "20261206";

async fn a_schema_driven_fuzzer_finds_nothing(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let alice = app.signed_in("alice").await;
    // Its own working directory: schemathesis keeps a cache of past failures
    // there, which would make one run depend on the last.
    let dir = std::env::temp_dir().join(format!("authd-fuzz-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a working directory");
    let run = tokio::process::Command::new("python3")
        .current_dir(&dir)
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("{}/api/openapi.json", app.base))
        .args([
            "--header",
            &format!("Authorization: Bearer {}", alice.access),
        ])
        .args(["--checks", "all"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .args(["--exclude-path", "/api/logout"])
        .args(["--max-examples", EXAMPLES, "--seed", SEED])
        .args(["--generation-database", "none"])
        .args(["--no-color", "--suppress-health-check", "all"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), run)
        .await
        .expect("the fuzzer finished within 5 minutes")
        .expect("python3 runs");
    std::fs::remove_dir_all(&dir).ok();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found something:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let operations: usize = integration_tests::document::document()["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, serde_json::Map::len))
        .sum();
    assert!(
        report.contains(&format!("Tested: {}", operations - 1)),
        "every operation but logout was tested:\n{report}"
    );
    // The service still serves (the stateful phase may have revoked the
    // run's own session through GET and DELETE /api/sessions, as it should).
    assert_eq!(app.get("/api/health").send().await.status, 200);
    let bob = app.signed_in("bob").await;
    assert_eq!(app.protected(&bob.access).await.status, 200);
}

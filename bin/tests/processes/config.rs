//! The configuration as the binary reads it, from nothing but the variables
//! given here (and a `.env`): clap takes each one from the environment,
//! trimmed, a blank one as unset, a list without its empty items; a value it
//! cannot use stops the start (exit code 2) with a message that names the
//! variable and never repeats the value.

use std::path::Path;
use std::process::{Command, Output};

use integration_tests::process;

/// What a refused value carries, as a password in a URL would.
const SECRET: &str = "hunter2-SECRET";

/// `authd migrate` in `dir` (its `.env`, if any) with only `vars` set.
fn migrate(dir: &Path, vars: &[(&str, &str)]) -> Output {
    Command::new(crate::authd())
        .arg("migrate")
        .env_clear()
        .env("RUST_LOG", "warn")
        .envs(vars.iter().copied())
        .current_dir(dir)
        .output()
        .expect("authd runs")
}

/// Everything `out` printed.
fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Exit code 2, the variable named, the value not repeated.
fn assert_refused(out: &Output, variable: &str) {
    let printed = printed(out);
    assert_eq!(out.status.code(), Some(2), "{variable}: {printed}");
    assert!(
        printed.contains(&format!("invalid value for {variable}: ")),
        "{variable} not named: {printed}"
    );
    assert!(
        !printed.contains(SECRET),
        "{variable}: the value is repeated: {printed}"
    );
}

#[test]
fn a_bad_value_stops_the_start_naming_the_variable_and_never_repeating_the_value() {
    let dir = process::temp_dir("authd-config").unwrap();
    let secret_url = format!("mysql://u:{SECRET}@db");
    let secret_list = format!("127.0.0.1,{SECRET}");
    let secret_origin = format!("https://{SECRET}/");
    let secret_headers = format!("authorization=Basic eA==,{SECRET}");
    let secret_path = format!("/{SECRET}.pem");
    for (variable, value) in [
        ("DATABASE_URL", secret_url.as_str()),
        ("API_ADDR", SECRET),
        ("WS_REUSE_PORT", SECRET),
        ("ACCESS_TOKEN_EXPIRY", SECRET),
        ("SESSION_MAX_AGE", "0"),
        ("JWT_ALG", SECRET),
        ("LOGIN_MAX_FAILURES", SECRET),
        ("PASSWORD_QUEUE_LIMIT", "0"),
        ("API_MAX_CONNECTIONS", SECRET),
        ("WS_MAX_CONNECTIONS_PER_USER", "-1"),
        ("TOKEN_CACHE_SIZE", SECRET),
        ("TRUSTED_PROXIES", secret_list.as_str()),
        ("CORS_ORIGINS", secret_origin.as_str()),
        ("LOG_FORMAT", SECRET),
        ("METRICS_ADDR", SECRET),
        ("AUDIT_RETENTION", "0"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", SECRET),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", SECRET),
        ("OTEL_EXPORTER_OTLP_HEADERS", secret_headers.as_str()),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", secret_path.as_str()),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            secret_path.as_str(),
        ),
    ] {
        assert_refused(&migrate(&dir, &[(variable, value)]), variable);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn values_are_trimmed_a_blank_one_is_unset_and_lists_drop_empty_items() {
    let dir = process::temp_dir("authd-config").unwrap();
    let db = dir.join("padded.db");
    let url = format!("  sqlite://{}?mode=rwc \n", db.display());
    // Each would be refused as it stands, untrimmed or blank.
    let out = migrate(
        &dir,
        &[
            ("DATABASE_URL", &url),
            ("ACCESS_TOKEN_EXPIRY", ""),
            ("API_ADDR", "   "),
            ("COOKIE_SECURE", " false "),
            ("LOGIN_MAX_FAILURES", " 3 "),
            ("JWT_ALG", " ES256 "),
            ("TRUSTED_PROXIES", " 127.0.0.1, ,10.0.0.0/8,"),
            ("CORS_ORIGINS", ","),
            ("LOG_FORMAT", " json "),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", " "),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", ""),
        ],
    );
    assert!(out.status.success(), "{}", printed(&out));
    assert!(db.exists(), "DATABASE_URL was not read");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dot_env_is_read_and_the_environment_wins() {
    let dir = process::temp_dir("authd-config").unwrap();
    let db = dir.join("from-dotenv.db");
    std::fs::write(
        dir.join(".env"),
        format!(
            "DATABASE_URL=sqlite://{}?mode=rwc\nACCESS_TOKEN_EXPIRY={SECRET}\n",
            db.display()
        ),
    )
    .unwrap();
    let out = migrate(&dir, &[("ACCESS_TOKEN_EXPIRY", "15m")]);
    assert!(out.status.success(), "{}", printed(&out));
    assert!(db.exists(), "DATABASE_URL of .env was not read");
    assert_refused(&migrate(&dir, &[]), "ACCESS_TOKEN_EXPIRY");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Tests of [`super`].

use std::collections::HashMap;

use super::*;

fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn durations() {
    assert_eq!(parse_duration("900"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert!(parse_duration("ten").is_err());
    assert!(parse_duration("5w").is_err());
    assert!(parse_duration("-5").is_err());
}

#[test]
fn defaults_match_the_contract() {
    let c = Config::default();
    assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
    assert_eq!(c.api_addr.to_string(), "127.0.0.1:3000");
    assert_eq!(c.ws_addr.to_string(), "127.0.0.1:3001");
    assert_eq!(c.private_key_path, PathBuf::from("keys/private.pem"));
    assert_eq!(c.public_key_path, PathBuf::from("keys/public.pem"));
    assert_eq!(c.access_token_expiry, Duration::from_secs(900));
    assert_eq!(c.refresh_token_expiry, Duration::from_secs(7 * 86_400));
    assert_eq!(c.refresh_reuse_grace, Duration::from_secs(10));
    assert_eq!(c.session_max_age, Duration::from_secs(30 * 86_400));
    assert_eq!(c.ws_expiry_warning, Duration::from_secs(60));
    assert_eq!(
        (c.jwt_issuer.as_str(), c.jwt_audience.as_str()),
        ("auth", "api")
    );
    assert!(c.cookie_secure && c.allow_registration && c.auto_migrate);
    assert_eq!(
        (c.login_max_failures, c.login_failure_window),
        (5, Duration::from_secs(900))
    );
    assert_eq!(c.password_queue_limit, 64);
    assert_eq!(
        (
            c.ws_max_connections_per_user,
            c.ws_max_connections_per_address
        ),
        (100, 1000)
    );
    assert_eq!(c.api_max_connections, None);
    assert_eq!(c.api_request_timeout, Duration::from_secs(10));
    assert!(c.trusted_proxies.is_empty() && c.cors_origins.is_empty());
}

#[test]
fn values_are_read() {
    let c = with(&[
        ("ACCESS_TOKEN_EXPIRY", "60"),
        ("COOKIE_SECURE", "false"),
        ("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8"),
        ("CORS_ORIGINS", "https://a.example,http://localhost:5173"),
        ("DATABASE_URL", "postgres://u@localhost/db"),
    ])
    .unwrap();
    assert_eq!(c.access_token_expiry, Duration::from_secs(60));
    assert!(!c.cookie_secure);
    assert_eq!(c.trusted_proxies.len(), 2);
    assert_eq!(
        c.cors_origins,
        vec!["https://a.example", "http://localhost:5173"]
    );
}

#[test]
fn bad_values_name_the_variable() {
    for (var, value) in [
        ("ACCESS_TOKEN_EXPIRY", "soon"),
        ("COOKIE_SECURE", "maybe"),
        ("API_ADDR", "localhost"),
        ("TRUSTED_PROXIES", "10.0.0.0/99"),
        ("LOGIN_MAX_FAILURES", "0"),
        ("PASSWORD_QUEUE_LIMIT", "0"),
        ("WS_MAX_CONNECTIONS_PER_USER", "-1"),
        ("API_MAX_CONNECTIONS", "none"),
        ("API_REQUEST_TIMEOUT", "0"),
        ("DATABASE_URL", "mysql://x"),
        ("CORS_ORIGINS", "example.com"),
        ("SESSION_MAX_AGE", "0"),
    ] {
        let e = with(&[(var, value)]).unwrap_err();
        assert_eq!(e.variable, var);
        assert!(e.to_string().contains(var));
    }
}
#[test]
fn otlp_export_is_off_unless_an_http_or_https_endpoint_is_given() {
    assert_eq!(with(&[]).unwrap().otlp, None);
    let on = with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-tenant = a, authorization=Basic eA==",
        ),
    ])
    .unwrap()
    .otlp
    .unwrap();
    assert_eq!(on.endpoint, "http://collector:4318");
    assert_eq!(on.service_name, "authd");
    assert_eq!(
        on.headers,
        vec![
            ("x-tenant".to_owned(), "a".to_owned()),
            ("authorization".to_owned(), "Basic eA==".to_owned())
        ]
    );
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
    assert_eq!(
        with(&[endpoint, ("OTEL_SDK_DISABLED", "true")])
            .unwrap()
            .otlp,
        None
    );
    let tls = with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c.example/"),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "/etc/authd/collector-ca.pem",
        ),
    ])
    .unwrap()
    .otlp
    .unwrap();
    assert_eq!(tls.endpoint, "https://c.example");
    assert_eq!(
        tls.certificate.as_deref(),
        Some(std::path::Path::new("/etc/authd/collector-ca.pem"))
    );
    for (vars, variable) in [
        (
            vec![endpoint, ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem")],
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ),
        (
            vec![
                endpoint,
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem"),
            ],
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            vec![endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            vec![endpoint, ("OTEL_EXPORTER_OTLP_HEADERS", "novalue")],
            "OTEL_EXPORTER_OTLP_HEADERS",
        ),
        (vec![("METRICS_ADDR", "localhost:9464")], "METRICS_ADDR"),
        (vec![("AUDIT_RETENTION", "0")], "AUDIT_RETENTION"),
    ] {
        assert_eq!(with(&vars).unwrap_err().variable, variable, "{vars:?}");
    }
    let c = with(&[
        ("METRICS_ADDR", "127.0.0.1:9464"),
        ("AUDIT_RETENTION", "30d"),
    ])
    .unwrap();
    assert_eq!(c.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(c.audit_retention, Duration::from_secs(30 * 86_400));
    assert_eq!(with(&[]).unwrap().metrics_addr, None);
}

/// The README's Configuration table names exactly the declared variables
/// (plus `RUST_LOG`, read by the log filter), each declared default as
/// written there, and `authd --help` lists them all.
#[test]
fn the_readme_table_and_the_help_list_every_variable_with_its_default() {
    use clap::CommandFactory as _;

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let table = &readme[readme
        .find("| variable | default | meaning |")
        .expect("the Configuration table")..];
    let ticked = |item: &str| {
        let item = item.trim();
        (item.len() > 2 && item.starts_with('`') && item.ends_with('`'))
            .then(|| item[1..item.len() - 1].to_owned())
    };
    let mut documented: HashMap<String, Option<String>> = HashMap::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').collect();
        let names: Vec<String> = cells[1].split(',').filter_map(ticked).collect();
        assert!(!names.is_empty(), "a row without a variable: {row}");
        let defaults: Vec<&str> = cells[2].split(", ").collect();
        for (i, name) in names.iter().enumerate() {
            let default = if defaults.len() == names.len() {
                ticked(defaults[i])
            } else {
                ticked(cells[2])
            };
            assert!(
                documented.insert(name.clone(), default).is_none(),
                "{name} twice"
            );
        }
    }
    let help = environment_help();
    let mut declared = vec!["RUST_LOG".to_owned()];
    for arg in Variables::command().get_arguments() {
        let name = arg.get_env().expect("every setting has a variable");
        let name = name.to_string_lossy().into_owned();
        assert!(
            help.contains(&format!("  {name}\n")),
            "{name} not in --help"
        );
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        if let Some(default) = default.first() {
            assert_eq!(
                documented.get(&name),
                Some(&Some(default.clone())),
                "{name}: the README's default differs from the declared {default:?}"
            );
        }
        declared.push(name);
    }
    let mut documented: Vec<String> = documented.into_keys().collect();
    documented.sort();
    declared.sort();
    assert_eq!(documented, declared, "the README table and the declaration");
}

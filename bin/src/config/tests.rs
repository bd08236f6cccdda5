//! Tests of [`super`].

use std::collections::HashMap;

use super::*;

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

/// The variables themselves (clap reads them from the environment, which a
/// test must not change) are tried on the real binary in
/// `bin/tests/processes/config.rs`; here, the parsers they go through.
#[test]
fn values_are_trimmed_and_lists_drop_empty_items() {
    assert_eq!(nonzero_duration(" 60 "), Ok(Duration::from_secs(60)));
    assert_eq!(boolean(" false "), Ok(false));
    assert_eq!(boolean("ON"), Ok(true));
    assert_eq!(
        socket_addr(" 127.0.0.1:9464\n"),
        Ok("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(
        database_url(" postgres://u@localhost/db "),
        Ok("postgres://u@localhost/db".to_owned())
    );
    assert_eq!(path(" keys/k.pem "), Ok(PathBuf::from("keys/k.pem")));
    assert_eq!(text(" auth "), Ok("auth".to_owned()));
    assert_eq!(jwt_alg(" ES256 "), Ok(Algorithm::Es256));
    assert_eq!(positive::<u32>(" 5 "), Ok(5));
    assert_eq!(whole(" 0 "), Ok(0));
    assert_eq!(log_format(" JSON "), Ok(LogFormat::Json));
    let proxies = list(ip_net)("127.0.0.1, 10.0.0.0/8,,").unwrap();
    assert_eq!(
        proxies,
        vec![
            "127.0.0.1".parse::<IpNet>().unwrap(),
            "10.0.0.0/8".parse().unwrap()
        ]
    );
    assert_eq!(
        list(origin)(" https://a.example ,, http://localhost:5173, "),
        Ok(vec![
            "https://a.example".to_owned(),
            "http://localhost:5173".to_owned()
        ])
    );
    assert_eq!(list(origin)(""), Ok(vec![]));
    assert_eq!(
        list(otlp_header)("x-tenant = a, authorization=Basic eA=="),
        Ok(vec![
            ("x-tenant".to_owned(), "a".to_owned()),
            ("authorization".to_owned(), "Basic eA==".to_owned())
        ])
    );
    assert_eq!(otel_true(" TRUE "), Ok(true));
}

/// Every parser refuses what it cannot use without repeating it: a refused
/// value may be a secret (a password in a URL, a header's credentials), and
/// the message goes to a terminal or a log.
#[test]
fn no_error_repeats_the_value_it_refuses() {
    const SECRET: &str = "hunter2-SECRET";
    let refused = |parser: &str, result: Result<(), String>| {
        let reason = result.expect_err(parser);
        assert!(!reason.is_empty(), "{parser} says nothing");
        assert!(!reason.contains(SECRET), "{parser} repeats it: {reason}");
    };
    let url = format!("mysql://u:{SECRET}@db");
    refused("database_url", database_url(&url).map(drop));
    refused("socket_addr", socket_addr(SECRET).map(drop));
    refused("jwt_alg", jwt_alg(SECRET).map(drop));
    refused("parse_duration", parse_duration(SECRET).map(drop));
    refused(
        "parse_duration",
        parse_duration(&format!("5{SECRET}")).map(drop),
    );
    refused("nonzero_duration", nonzero_duration(SECRET).map(drop));
    refused("access_lifetime", access_lifetime(SECRET).map(drop));
    refused("boolean", boolean(SECRET).map(drop));
    refused("positive", positive::<u32>(SECRET).map(drop));
    refused("whole", whole(SECRET).map(drop));
    refused("ip_net", ip_net(SECRET).map(drop));
    refused("origin", origin(SECRET).map(drop));
    refused("origin", origin(&format!("https://{SECRET}/")).map(drop));
    let origins = format!("https://a.example,{SECRET}");
    refused("list", list(origin)(&origins).map(drop));
    refused("log_format", log_format(SECRET).map(drop));
    refused(
        "otlp_endpoint",
        otlp_endpoint(&format!("{SECRET}:4318")).map(drop),
    );
    refused("otlp_protocol", otlp_protocol(SECRET).map(drop));
    refused(
        "otlp_header",
        list(otlp_header)(&format!("a=b,{SECRET}")).map(drop),
    );
    refused(
        "no_client_certificates",
        no_client_certificates(SECRET).map(drop),
    );
    assert_eq!(
        list(origin)(&format!("https://a.example,,{SECRET}")),
        Err(
            "item 3: expected an origin like https://app.example.com (no path, no trailing slash)"
                .into()
        ),
        "a list's error names the item by its place"
    );
}

#[test]
fn otlp_export_is_off_unless_an_http_or_https_endpoint_is_given() {
    let declared = || Variables::declared().otel;
    assert_eq!(declared().otlp(), None);
    assert_eq!(Config::default().otlp, None);
    let on = OtelVariables {
        endpoint: Some("http://collector:4318/".into()),
        headers: vec![("x-tenant".into(), "a".into())],
        ..declared()
    }
    .otlp()
    .unwrap();
    assert_eq!(on.endpoint, "http://collector:4318");
    assert_eq!(on.service_name, "authd");
    assert_eq!(on.headers, vec![("x-tenant".to_owned(), "a".to_owned())]);
    let disabled = OtelVariables {
        endpoint: Some("http://c:4318".into()),
        sdk_disabled: true,
        ..declared()
    };
    assert_eq!(disabled.otlp(), None);
    let tls = OtelVariables {
        endpoint: Some("https://c.example/".into()),
        certificate: Some("/etc/authd/collector-ca.pem".into()),
        ..declared()
    }
    .otlp()
    .unwrap();
    assert_eq!(tls.endpoint, "https://c.example");
    assert_eq!(
        tls.certificate.as_deref(),
        Some(std::path::Path::new("/etc/authd/collector-ca.pem"))
    );
    assert!(otlp_endpoint("c:4318").is_err());
    assert!(otlp_endpoint(" https://c.example ").is_ok());
    assert!(otlp_protocol("grpc").is_err());
    assert!(list(otlp_header)("novalue").is_err());
    assert!(no_client_certificates("/k.pem").is_err());
    assert!(socket_addr("localhost:9464").is_err());
    assert!(nonzero_duration("0").is_err());
    assert_eq!(
        nonzero_duration("30d"),
        Ok(Duration::from_secs(30 * 86_400))
    );
    assert_eq!(Config::default().metrics_addr, None);
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
        if let Some(default) = declared_default(arg) {
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

/// Security review 2, finding 11: a lifetime too short to use a token is
/// refused at start.
#[test]
fn access_token_lifetimes_below_the_minimum_are_refused() {
    for short in ["0", "500ms", "9s"] {
        assert_eq!(
            access_lifetime(short),
            Err("must be at least 10 seconds".to_owned()),
            "{short}"
        );
    }
    assert_eq!(access_lifetime("10s"), Ok(MIN_ACCESS_TOKEN_EXPIRY));
    assert_eq!(access_lifetime("15m"), Ok(Duration::from_secs(900)));
}

/// The contract's Configuration table (v3), as it is written there, for the
/// variables this service has today: each is declared, with the contract's
/// default (issue 32, item 8). Variables of capabilities not built yet
/// (`SMTP_URL`, `MAIL_FROM`,
/// `EMAIL_VERIFY_EXPIRY`, `PASSWORD_RESET_EXPIRY`) join the list with them.
#[test]
fn the_contracts_configuration_table_is_declared_with_its_defaults() {
    use clap::CommandFactory as _;

    const CONTRACT: [(&str, Option<&str>); 31] = [
        ("DATABASE_URL", None),
        ("API_ADDR", Some("127.0.0.1:3000")),
        ("WS_ADDR", Some("127.0.0.1:3001")),
        ("PRIVATE_KEY_PATH", Some("keys/private.pem")),
        ("PUBLIC_KEY_PATH", Some("keys/public.pem")),
        ("ACCESS_TOKEN_EXPIRY", Some("15m")),
        ("REFRESH_TOKEN_EXPIRY", Some("7d")),
        ("REFRESH_REUSE_GRACE", Some("10s")),
        ("SESSION_MAX_AGE", Some("30d")),
        ("WS_EXPIRY_WARNING", Some("60s")),
        ("JWT_ISSUER", Some("auth")),
        ("JWT_AUDIENCE", Some("api")),
        ("COOKIE_SECURE", Some("true")),
        ("ALLOW_REGISTRATION", Some("true")),
        ("LOGIN_MAX_FAILURES", Some("5")),
        ("LOGIN_FAILURE_WINDOW", Some("15m")),
        ("TRUSTED_PROXIES", None),
        ("CORS_ORIGINS", None),
        ("JWT_ALG", Some("RS256")),
        ("KEY_PUBLISH_AHEAD", Some("10m")),
        ("WS_MAX_CONNECTIONS_PER_USER", Some("100")),
        ("PASSWORD_QUEUE_LIMIT", Some("64")),
        ("API_MAX_CONNECTIONS", None),
        ("API_REQUEST_TIMEOUT", Some("10s")),
        ("WS_MAX_CONNECTIONS_PER_ADDRESS", Some("1000")),
        ("API_DOCS", Some("true")),
        ("WEBAUTHN_RP_ID", Some("localhost")),
        ("WEBAUTHN_RP_NAME", Some("authd")),
        (
            "WEBAUTHN_ORIGINS",
            Some("http://localhost:3000,https://localhost"),
        ),
        ("PUBLIC_URL", None),
        ("DPOP_PROOF_MAX_AGE", Some("60s")),
    ];
    let declared: HashMap<String, Option<String>> = Variables::command()
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_env()?.to_string_lossy().into_owned();
            Some((name, declared_default(arg)))
        })
        .collect();
    for (name, default) in CONTRACT {
        let Some(ours) = declared.get(name) else {
            panic!("{name}, in the contract's table, is not declared");
        };
        if let Some(default) = default {
            assert_eq!(
                ours.as_deref().map(str::to_ascii_lowercase),
                Some(default.to_ascii_lowercase()),
                "{name}: the contract's default"
            );
        }
    }
}

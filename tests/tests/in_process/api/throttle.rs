//! The brute-force throttle, and whose address counts.

use std::time::Duration;

use authd::Config;
use integration_tests::app::{Backend, PASSWORD, TestApp, TestResponse, spawn_app};
use serde_json::json;

integration_tests::on_both!(
    std::future::ready;
    simultaneous_guesses_get_at_most_the_limit,
    rate_limited_even_with_the_right_password,
    forwarded_for_only_from_trusted_proxies,
    ipv6_clients_count_by_their_64
);

/// Security review, finding (abuse) 1: 30 parallel wrong guesses for one user
/// got 30 password checks; the contract allows `LOGIN_MAX_FAILURES`.
pub async fn simultaneous_guesses_get_at_most_the_limit(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    app.register("alice", PASSWORD).await;
    let guesses =
        (0..30).map(|i| app.login("alice", if i % 2 == 0 { "wrong one" } else { "wrong two" }));
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers.iter().filter(|r| r.status == 401).count();
    let refused = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!((checked, refused), (5, 25), "password checks vs refusals");
    app.login("alice", PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
}

pub async fn rate_limited_even_with_the_right_password(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            login_max_failures: 3,
            login_failure_window: Duration::from_secs(3),
            ..Config::default()
        },
    )
    .await;
    app.register("alice", PASSWORD).await;
    for _ in 0..3 {
        app.login("alice", "wrong password")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let r = app.login("alice", PASSWORD).await;
    r.assert_problem(429, "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    // Another username from the same address is not affected.
    app.register("bob", PASSWORD).await;
    assert_eq!(app.login("bob", PASSWORD).await.status, 200);
    app.clock
        .advance(Duration::from_secs(retry) + Duration::from_millis(300));
    assert_eq!(
        app.login("alice", PASSWORD).await.status,
        200,
        "after the window"
    );
}

pub async fn forwarded_for_only_from_trusted_proxies(backend: Backend) {
    // Untrusted peer: X-Forwarded-For is ignored, so rotating it does not help.
    let mut config = Config {
        login_max_failures: 2,
        ..Config::default()
    };
    let app = spawn_app(backend, config.clone()).await;
    app.register("alice", PASSWORD).await;
    let login = |xff, password| login_via(&app, xff, password);
    login("10.0.0.1", "wrong password")
        .await
        .assert_problem(401, "invalid_credentials");
    login("10.0.0.2", "wrong password")
        .await
        .assert_problem(401, "invalid_credentials");
    login("10.0.0.3", PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
    drop(app);

    // Trusted proxy: the last hop is the client.
    config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let app = spawn_app(backend, config).await;
    app.register("alice", PASSWORD).await;
    let login = |xff, password| login_via(&app, xff, password);
    login("10.0.0.1", "wrong password")
        .await
        .assert_problem(401, "invalid_credentials");
    login("6.6.6.6, 10.0.0.1", "wrong password")
        .await
        .assert_problem(401, "invalid_credentials");
    login("10.0.0.1", PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
    let r = login("10.0.0.1, 10.0.0.2", PASSWORD).await;
    assert_eq!(r.status, 200, "another client behind the proxy: {}", r.text);
    let sessions = app
        .get("/api/sessions")
        .bearer(&r.access_token())
        .send()
        .await
        .json();
    assert_eq!(sessions[0]["ip"], "10.0.0.2");
}

/// `POST /api/login` as alice, forwarded for `xff`.
async fn login_via(app: &TestApp, xff: &str, password: &str) -> TestResponse {
    app.post("/api/login")
        .header("x-forwarded-for", xff)
        .json(&json!({"username": "alice", "password": password}))
        .send()
        .await
}

/// Contract v3 (security review 2, finding 1): an IPv6 client counts by its
/// /64, since one host can take any address of it; another /64 is another
/// client.
pub async fn ipv6_clients_count_by_their_64(backend: Backend) {
    let config = Config {
        login_max_failures: 2,
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Config::default()
    };
    let app = spawn_app(backend, config).await;
    app.register("alice", PASSWORD).await;
    let login = |xff, password| login_via(&app, xff, password);
    login("2001:db8:0:1::1", "wrong password")
        .await
        .assert_problem(401, "invalid_credentials");
    login("2001:db8:0:1:ffff:ffff:ffff:2", "wrong password")
        .await
        .assert_problem(401, "invalid_credentials");
    login("2001:db8:0:1::3", PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
    let r = login("2001:db8:0:2::1", PASSWORD).await;
    assert_eq!(r.status, 200, "another /64: {}", r.text);
}

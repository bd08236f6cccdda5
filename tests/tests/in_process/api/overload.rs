//! Password hashing under a flood: a bounded queue answers `503 overloaded`
//! at once, and a request whose client has gone is not hashed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use authd::Config;
use integration_tests::app::{ANY_LOOPBACK_PORT, Backend, PASSWORD, spawn_app_with_seams};
use serde_json::json;
use tokio::io::AsyncWriteExt as _;

/// The value of an unlabelled series in Prometheus text.
async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

async fn until_metric(addr: SocketAddr, name: &str, done: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = metric(addr, name).await;
        if done(value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{name} stayed at {value}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Security review, finding (abuse) 2: the queue had no bound. With two
/// places, a burst of logins and registrations is answered at once with
/// `503 overloaded` and `Retry-After` for what does not fit, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_answers_503_overloaded() {
    let app = spawn_app_with_seams(
        Backend::Sqlite,
        Config {
            password_queue_limit: 2,
            metrics_addr: Some(ANY_LOOPBACK_PORT),
            ..Config::default()
        },
        |seams| {
            // The burst must outlast the queue: hashing at its real cost.
            seams.argon2 = None;
        },
    )
    .await;
    let logins = (0..30).map(|i| {
        app.post("/api/login")
            .json(&json!({"username": format!("ghost{i}"), "password": "not the password"}))
            .send_unchecked()
    });
    let registrations = (0..10).map(|i| {
        app.post("/api/register")
            .json(&json!({"username": format!("new{i}"), "password": PASSWORD}))
            .send_unchecked()
    });
    let (logins, registrations) = tokio::join!(
        futures_util::future::join_all(logins),
        futures_util::future::join_all(registrations)
    );
    let mut shed = 0;
    for (r, fitted) in logins
        .iter()
        .map(|r| (r, 401))
        .chain(registrations.iter().map(|r| (r, 201)))
    {
        if r.status == 503 {
            r.assert_problem(503, "overloaded");
            assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text);
            shed += 1;
        } else {
            assert_eq!(r.status, fitted, "{}", r.text);
        }
    }
    assert!(shed > 0, "nothing was shed");
    assert!(shed < 40, "everything was shed");
    let addr = app.metrics_addr.unwrap();
    assert_eq!(metric(addr, "authd_password_checks_shed_total").await, shed);
    // A shed registration created nothing: the name is still free.
    let retried = registrations
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == 503)
        .map(|(i, _)| format!("new{i}"));
    for name in retried {
        assert_eq!(app.register(&name, PASSWORD).await.status, 201, "{name}");
    }
}

/// Security review, finding (abuse) 2: 400 logins abandoned by their
/// clients were all hashed, and a real login waited behind them. Here the
/// clients of 100 queued logins close their connections: their checks are
/// dropped unrun, and a real login gets through at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_whose_clients_have_gone_are_not_hashed() {
    let app = spawn_app_with_seams(
        Backend::Sqlite,
        Config {
            password_queue_limit: 200,
            metrics_addr: Some(ANY_LOOPBACK_PORT),
            ..Config::default()
        },
        |seams| {
            seams.argon2 = None;
        },
    )
    .await;
    app.register("alice", PASSWORD).await;
    let addr = app.metrics_addr.unwrap();
    let mut sockets = Vec::new();
    for i in 0..100 {
        // Each for its own name: the login throttle does not get in the way.
        let body = json!({"username": format!("ghost{i}"), "password": "not the password"});
        let body = body.to_string();
        let request = format!(
            "POST /api/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut s = tokio::net::TcpStream::connect(app.api_addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        sockets.push(s);
    }
    // Most are queued behind the two hashing threads; then every client goes.
    until_metric(addr, "authd_password_queue_waiting", |n| n >= 50).await;
    drop(sockets);
    until_metric(addr, "authd_password_queue_waiting", |n| n == 0).await;
    let skipped = metric(addr, "authd_password_checks_skipped_total").await;
    assert!(
        skipped >= 40,
        "only {skipped} of 100 abandoned checks were skipped"
    );
    let started = Instant::now();
    assert_eq!(app.login("alice", PASSWORD).await.status, 200);
    eprintln!(
        "{skipped} abandoned checks skipped; a real login then took {:?}",
        started.elapsed()
    );
}

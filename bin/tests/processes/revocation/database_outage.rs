//! Fault: PostgreSQL stops under a running `authd api`. Every request that
//! needs the database is answered at once with the generic problem (`500
//! internal_error`), well before `API_REQUEST_TIMEOUT` would cut the client
//! off without an answer; requests that need no database (a token check)
//! go on; and once PostgreSQL is back, so is the service, without a restart.

use integration_tests::client::{ApiClient, PASSWORD, TestRequest, TestResponse};

use super::*;

/// The pool's acquire timeout (3 s) plus what a loaded machine adds; the
/// request timeout (10 s) is what used to answer instead.
const PROMPT: Duration = Duration::from_secs(6);

async fn timed(label: &str, request: TestRequest) -> TestResponse {
    let started = Instant::now();
    let r = request.send_unchecked().await;
    let took = started.elapsed();
    assert!(
        took < PROMPT,
        "{label} took {took:?} to answer {}",
        r.status
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn on_postgres_a_stopped_database_gets_prompt_answers_and_a_restart_heals() {
    let _serial = SERIAL.lock().await;
    let server = PostgresServer::start().await;
    let url = server.fresh_database_url().await;
    let keys = Keys::new();
    let api = spawn("api", "api", &url, &keys, &[]).expect("api");
    let client = ApiClient::new(format!("http://{}", api.addr));
    let olga = client.signed_in("olga").await;

    server.stop().await;
    let login = json!({"username": "olga", "password": PASSWORD});
    let r = timed("login", client.post("/api/login").json(&login)).await;
    r.assert_problem(500, "internal_error");
    let r = timed(
        "refresh",
        client.post("/api/refresh").refresh_cookie(&olga.refresh),
    )
    .await;
    r.assert_problem(500, "internal_error");
    let r = timed("sessions", client.get("/api/sessions").bearer(&olga.access)).await;
    r.assert_problem(500, "internal_error");
    let r = timed("health", client.get("/api/health")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    // A token check needs no database.
    let r = timed(
        "protected",
        client.get("/api/protected").bearer(&olga.access),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client
            .post("/api/login")
            .json(&login)
            .send_unchecked()
            .await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no login after the restart: {} {}",
            r.status,
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = client
        .post("/api/refresh")
        .refresh_cookie(&olga.refresh)
        .send()
        .await;
    assert_eq!(
        r.status, 200,
        "the session from before the outage: {}",
        r.text
    );
}

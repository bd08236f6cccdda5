//! Two-factor login across processes: an enrolment begun at one API is
//! confirmed at another, and a TOTP code accepted by one API process is a
//! replay for every other (the last used step is stored with the secret,
//! and its update is a compare-and-set), on one SQLite file and on
//! PostgreSQL. An operator's `authd user reset-mfa` turns it off for every
//! process.

use integration_tests::client::PASSWORD;
use integration_tests::totp::code_at;

use super::*;

async fn post(api: &Node, path: &str, access: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = http().post(format!("http://{}{path}", api.addr)).json(body);
    if let Some(access) = access {
        request = request.bearer_auth(access);
    }
    let r = request.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `mfaToken` of a right password at `api`.
async fn password_step(api: &Node, username: &str) -> String {
    let (status, body) = post(
        api,
        "/api/login",
        None,
        &json!({"username": username, "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("mfa_required")),
        "{body}"
    );
    body["mfaToken"].as_str().expect("mfaToken").to_owned()
}

fn unix_now() -> i64 {
    integration_tests::clock::unix_now()
}

/// Signs `username` up at `begin_at` and turns two-factor login on, begun
/// there and confirmed at `confirm_at`; returns the base32 secret, the time
/// of the confirming code (its step is used) and the recovery codes.
async fn enrolled(
    begin_at: &Node,
    confirm_at: &Node,
    username: &str,
) -> (String, i64, Vec<String>) {
    let user = sign_in(begin_at, username).await;
    let (status, body) = post(
        begin_at,
        "/api/mfa/totp",
        Some(&user.access),
        &json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let secret = body["secret"].as_str().expect("secret").to_owned();
    let now = unix_now();
    let (status, body) = post(
        confirm_at,
        "/api/mfa/totp/confirm",
        Some(&user.access),
        &json!({"code": code_at(&secret, now)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let codes = body["recoveryCodes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().expect("a string").to_owned())
        .collect();
    (secret, now, codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_a_code_accepted_by_one_process_is_a_replay_for_the_other() {
    let _serial = SERIAL.lock().await;
    let keys = Keys::new();
    let url = format!("sqlite://{}?mode=rwc", keys.dir.join("authd.db").display());
    one_code_once_across_processes(&url, &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn on_postgres_a_code_accepted_by_one_process_is_a_replay_for_the_other() {
    let _serial = SERIAL.lock().await;
    let server = PostgresServer::start().await;
    let url = server.fresh_database_url().await;
    one_code_once_across_processes(&url, &Keys::new()).await;
}

async fn one_code_once_across_processes(url: &str, keys: &Keys) {
    let api_a = spawn("api-a", "api", url, keys, &[]).expect("api-a");
    let api_b = spawn("api-b", "api", url, keys, &[]).expect("api-b");

    // Confirmed at the other process: it opens the secret A sealed.
    let (secret, now, _) = enrolled(&api_a, &api_b, "lena").await;

    // The next step's code (one step of drift is allowed): accepted once.
    let code = code_at(&secret, now + 30);
    let at_a = password_step(&api_a, "lena").await;
    let at_b = password_step(&api_b, "lena").await;
    let (status, body) = post(
        &api_b,
        "/api/login/mfa",
        None,
        &json!({"mfaToken": at_a, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "a token from A, used at B: {body}");
    let (status, body) = post(
        &api_a,
        "/api/login/mfa",
        None,
        &json!({"mfaToken": at_b, "code": code}),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (401, &json!("invalid_mfa_code")),
        "the replay at A: {body}"
    );

    // The operator's way out for a lost phone and lost recovery codes.
    let out = authd("user reset-mfa lena", url, keys, &[])
        .env("RUST_LOG", "warn")
        .output()
        .expect("authd user reset-mfa");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("two-factor login turned off for user lena"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for api in [&api_a, &api_b] {
        let (status, body) = post(
            api,
            "/api/login",
            None,
            &json!({"username": "lena", "password": PASSWORD}),
        )
        .await;
        assert_eq!(status, 200, "the password alone again: {body}");
    }
    let out = authd("user reset-mfa lena", url, keys, &[])
        .env("RUST_LOG", "warn")
        .output()
        .expect("authd user reset-mfa");
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("has no two-factor login"),
        "{out:?}"
    );
    let out = authd("user reset-mfa nobody", url, keys, &[])
        .env("RUST_LOG", "warn")
        .output()
        .expect("authd user reset-mfa");
    assert!(!out.status.success(), "an unknown user is an error");
}

/// Fault: PostgreSQL restarts (every pooled connection is cut) between the
/// steps of two logins. What two-factor login decided before the restart
/// holds after it, at the other process too: an `mfaToken` handed out before
/// it still works, a code accepted before it is still a replay, a recovery
/// code used before it is still spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn on_postgres_two_factor_decisions_outlive_a_database_restart() {
    let _serial = SERIAL.lock().await;
    let server = PostgresServer::start().await;
    let url = server.fresh_database_url().await;
    let keys = Keys::new();
    let api_a = spawn("api-a", "api", &url, &keys, &[]).expect("api-a");
    let api_b = spawn("api-b", "api", &url, &keys, &[]).expect("api-b");

    let (secret, now, codes) = enrolled(&api_a, &api_a, "mira").await;
    let (recovery, unused) = (codes[0].clone(), codes[1].clone());

    // Before the restart, at A: a code and a recovery code log in once each.
    let code = code_at(&secret, now + 30);
    for proof in [json!({"code": code}), json!({"recoveryCode": recovery})] {
        let mut body = proof.clone();
        body["mfaToken"] = json!(password_step(&api_a, "mira").await);
        let (status, answer) = post(&api_a, "/api/login/mfa", None, &body).await;
        assert_eq!(status, 200, "{proof}: {answer}");
    }
    let waiting = password_step(&api_a, "mira").await;

    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(&api_b).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "api-b never reached the database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // After it, at B, with the token A handed out before it: both proofs
    // are spent, and the token still counts and still works.
    for proof in [json!({"code": code}), json!({"recoveryCode": recovery})] {
        let mut body = proof.clone();
        body["mfaToken"] = json!(waiting);
        let (status, answer) = post(&api_b, "/api/login/mfa", None, &body).await;
        assert_eq!(
            (status, &answer["code"]),
            (401, &json!("invalid_mfa_code")),
            "{proof} again after the restart: {answer}"
        );
    }
    let last = json!({"mfaToken": waiting, "recoveryCode": unused});
    let (status, answer) = post(&api_b, "/api/login/mfa", None, &last).await;
    assert_eq!(status, 200, "the token from before the restart: {answer}");
}

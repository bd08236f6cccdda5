//! Account deletion reaches every process: the session rows go with the
//! account, so the other processes learn of the revocation from the
//! remembered revocations (`revoked_sessions`), on one SQLite file (no
//! NOTIFY there). Through the API (`DELETE /api/account`) and through
//! `authd user delete`, which cannot tell the processes itself.

use super::*;

/// The contract's bound for revocations, plus what a loaded CI machine adds.
const HEARD: Duration = Duration::from_secs(3);

async fn delete_account(api: &Node, access: &str) -> u16 {
    http()
        .delete(format!("http://{}/api/account", api.addr))
        .bearer_auth(access)
        .json(&json!({"password": integration_tests::client::PASSWORD}))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_a_deleted_accounts_tokens_and_sockets_end_in_every_process() {
    let _serial = SERIAL.lock().await;
    let keys = Keys::new();
    let url = format!("sqlite://{}?mode=rwc", keys.dir.join("authd.db").display());
    deletion_reaches_every_process(&url, &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn on_postgres_a_deleted_accounts_tokens_and_sockets_end_in_every_process() {
    let _serial = SERIAL.lock().await;
    let server = PostgresServer::start().await;
    let url = server.fresh_database_url().await;
    deletion_reaches_every_process(&url, &Keys::new()).await;
}

/// Two API processes and a WebSocket process on `url`.
async fn deletion_reaches_every_process(url: &str, keys: &Keys) {
    let (url, keys) = (url.to_owned(), keys);
    let api_a = spawn("api-a", "api", &url, keys, &[]).expect("api-a");
    let api_b = spawn("api-b", "api", &url, keys, &[]).expect("api-b");
    let ws = spawn("ws", "ws", &url, keys, &[]).expect("ws");

    // Through the API of one process: the other API and the WebSocket
    // process refuse the account's tokens and close its sockets.
    let erin = sign_in(&api_a, "erin").await;
    let mut socket = open_socket(&ws, &erin.access).await;
    assert_eq!(protected_status(&api_b, &erin.access).await, 200);
    assert_eq!(delete_account(&api_a, &erin.access).await, 204);
    let deleted_at = Instant::now();
    let heard = refused(&api_b, &erin.access, HEARD).await;
    let (code, closed_at) = closed(&mut socket, HEARD).await;
    assert_eq!(code, Some(4003));
    eprintln!(
        "api-b refused the deleted account's token {:?} after, ws closed its socket {:?} after",
        heard - deleted_at,
        closed_at - deleted_at
    );

    // Through the command line: no process is told, every one hears.
    let frank = sign_in(&api_b, "frank").await;
    let mut socket = open_socket(&ws, &frank.access).await;
    let out = authd("user delete frank", &url, keys, &[])
        .env("RUST_LOG", "warn")
        .output()
        .expect("authd user delete");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("deleted user frank") && stdout.contains("1 sessions ended"),
        "{stdout}"
    );
    for api in [&api_a, &api_b] {
        refused(api, &frank.access, HEARD).await;
    }
    assert_eq!(closed(&mut socket, HEARD).await.0, Some(4003));
    // The name is free; deleting it again says there is no such user.
    let again = authd("user delete frank", &url, keys, &[])
        .env("RUST_LOG", "warn")
        .output()
        .expect("authd user delete");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no user is named"));
    let back = sign_in(&api_a, "frank").await;
    assert_eq!(protected_status(&api_b, &back.access).await, 200);
}

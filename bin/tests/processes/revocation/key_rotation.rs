//! Signing-key rotation and retirement while two REST and two WebSocket
//! processes run on one database (contract: "Signing keys"): on PostgreSQL
//! to a new RS256 key, on one SQLite file to an ES256 key (a change of
//! algorithm). Here for the cluster helpers; retiring a key is revoking
//! every token it signed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;

/// What the processes are started with: a short publish delay, so the test
/// sees a rotated key start signing.
const AHEAD: Duration = Duration::from_secs(6);

/// The contract's bound on following a rotation or a retirement, plus what
/// a loaded CI machine may add to it.
const FOLLOW: Duration = Duration::from_secs(12);

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().expect("a JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url")).expect("JSON")
}

fn kid_of(token: &str) -> String {
    header_of(token)["kid"].as_str().expect("a kid").to_owned()
}

fn alg_of(token: &str) -> String {
    header_of(token)["alg"].as_str().expect("an alg").to_owned()
}

async fn published(api: &Node) -> (Vec<String>, Option<String>) {
    let r = http()
        .get(format!("http://{}/api/.well-known/jwks.json", api.addr))
        .send()
        .await
        .expect("jwks");
    let cache = r
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = r.json().await.expect("jwks JSON");
    let kids = body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    (kids, cache)
}

/// Runs `authd keys <args>` against the cluster's database; its output.
fn keys_cli(args: &str, url: &str, keys: &Keys, env: &[(&str, &str)]) -> String {
    let out = authd(&format!("keys {args}"), url, keys, env)
        .env("RUST_LOG", "warn")
        .output()
        .expect("authd keys");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "authd keys {args} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Polls `check` until it holds, at most `within`; returns how long it took.
async fn within<F, Fut>(what: &str, within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(missing = "postgres", ignore = "needs PostgreSQL (postgresql-15)")]
async fn a_rotation_and_a_retirement_reach_every_process_without_a_restart() {
    let _serial = SERIAL.lock().await;
    let server = PostgresServer::start().await;
    let url = server.fresh_database_url().await;
    rotation_and_retirement(&url, &Keys::new(), "RS256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_one_sqlite_file_a_rotation_to_es256_and_a_retirement_reach_every_process() {
    let _serial = SERIAL.lock().await;
    let keys = Keys::new();
    let url = format!("sqlite://{}?mode=rwc", keys.dir.join("authd.db").display());
    rotation_and_retirement(&url, &keys, "ES256").await;
}

/// Four processes on `url` from the key files' RS256 key; `authd keys
/// rotate` with `JWT_ALG=rotate_to`, then `authd keys retire` of the first key.
async fn rotation_and_retirement(url: &str, keys: &Keys, rotate_to: &str) {
    let env = [("KEY_PUBLISH_AHEAD", "6s"), ("JWT_ALG", rotate_to)];
    // A WebSocket process only verifies: started first, on an empty set,
    // it creates no key (and opens no private key), and waits for the
    // API's first key before it serves.
    let (proc, port) = spawn_unchecked("ws-a", "ws", url, keys, &env).expect("ws-a");
    let mut ws_a = Node {
        name: "ws-a".into(),
        proc,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let listed = keys_cli("list", url, keys, &env);
    assert_eq!(listed.lines().count(), 1, "only the header: {listed}");
    assert!(
        std::net::TcpStream::connect(ws_a.addr).is_err(),
        "ws-a serves before there is a key to verify with"
    );
    let api_a = spawn("api-a", "api", url, keys, &env).expect("api-a");
    process::wait_listening(&mut ws_a.proc, port, Duration::from_secs(60)).expect("ws-a serves");
    let api_b = spawn("api-b", "api", url, keys, &env).expect("api-b");
    let ws_b = spawn("ws-b", "ws", url, keys, &env).expect("ws-b");

    // The upgrade: the key files' key is the first key, with its kid.
    let file_kid = {
        let pem = std::fs::read_to_string(&keys.private).expect("private key");
        adapters::crypto::keys::PrivateKey::from_pem(&pem)
            .expect("key")
            .kid()
            .to_owned()
    };
    let old = sign_in(&api_a, "rotating").await;
    assert_eq!(kid_of(&old.access), file_kid);
    for api in [&api_a, &api_b] {
        let (kids, cache) = published(api).await;
        assert_eq!(kids, std::slice::from_ref(&file_kid), "{}", api.name);
        assert_eq!(cache.as_deref(), Some("public, max-age=300"));
    }
    let listed = keys_cli("list", url, keys, &env);
    assert!(
        listed.contains(&file_kid) && listed.contains("current"),
        "{listed}"
    );

    // Rotate: published everywhere within the bound, signing only after the delay.
    let added = keys_cli("rotate", url, keys, &env);
    let rotated_at = Instant::now();
    let new_kid = added
        .split_whitespace()
        .nth(1)
        .expect("added <kid>")
        .to_owned();
    assert_ne!(new_kid, file_kid);
    assert!(added.contains(rotate_to), "{added}");
    for api in [&api_a, &api_b] {
        let took = within("the new key in the JWKS", FOLLOW, || async {
            published(api).await.0.contains(&new_kid)
        })
        .await;
        eprintln!("{}: published the new key after {took:?}", api.name);
    }
    // Until the delay has passed, tokens are signed by the old key only.
    while rotated_at.elapsed() < AHEAD - Duration::from_secs(1) {
        let login = sign_in(
            &api_b,
            &format!("early{}", rotated_at.elapsed().as_millis()),
        )
        .await;
        assert_eq!(
            kid_of(&login.access),
            file_kid,
            "signed with the new key {:?} after the rotation, before it was published for {AHEAD:?}",
            rotated_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for api in [&api_a, &api_b] {
        within("tokens carry the new kid", AHEAD + FOLLOW, || async {
            let login = sign_in(api, &format!("late{}", rotated_at.elapsed().as_millis())).await;
            kid_of(&login.access) == new_kid
        })
        .await;
    }
    // The old key's tokens still verify everywhere, and open sockets.
    for api in [&api_a, &api_b] {
        assert_eq!(
            protected_status(api, &old.access).await,
            200,
            "{}",
            api.name
        );
    }
    let mut old_a = open_socket(&ws_a, &old.access).await;
    let mut old_b = open_socket(&ws_b, &old.access).await;
    let fresh = sign_in(&api_a, "fresh").await;
    assert_eq!(kid_of(&fresh.access), new_kid);
    assert_eq!(alg_of(&fresh.access), rotate_to);
    assert_eq!(alg_of(&old.access), "RS256");
    let mut fresh_a = open_socket(&ws_a, &fresh.access).await;

    // Retire the old key: its tokens are refused and its sockets closed
    // everywhere within the bound; the new key's are not touched.
    let listed = keys_cli("list", url, keys, &env);
    assert!(listed.contains("retiring"), "{listed}");
    keys_cli(&format!("retire {file_kid}"), url, keys, &env);
    let retired_at = Instant::now();
    for api in [&api_a, &api_b] {
        refused(api, &old.access, FOLLOW).await;
        let (kids, _) = published(api).await;
        assert_eq!(kids, std::slice::from_ref(&new_kid), "{}", api.name);
    }
    // Closed as at the token's expiry (4001): the session lives on, and a
    // refresh gives a token of the current key to reconnect with.
    let (code_a, _) = closed(&mut old_a, FOLLOW).await;
    let (code_b, at_b) = closed(&mut old_b, FOLLOW).await;
    assert_eq!((code_a, code_b), (Some(4001), Some(4001)));
    eprintln!(
        "sockets of the retired key closed {:?} after the retirement",
        at_b - retired_at
    );
    assert_eq!(protected_status(&api_b, &fresh.access).await, 200);
    fresh_a
        .send_json(&json!({"type": "ping"}))
        .await
        .expect("still open");
    let pong = fresh_a
        .recv_json(Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(pong["type"], "pong", "{pong}");
    drop((ws_a, ws_b));
}

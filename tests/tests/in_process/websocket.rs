//! The WebSocket half of the contract, with real WebSocket clients against a
//! running `adapters::ws::serve` on a loopback port.
//!
//! The service runs on the real adapters: RS256 tokens from the crypto
//! adapter, users and sessions in a fresh SQLite database per test
//! (`integration_tests::storage`), the in-process revocation bus. Separate
//! processes are tested in `bin/tests/processes/revocation.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::crypto::jwt::{JwtSigner, JwtVerifier};
use adapters::crypto::keys::PrivateKey;
use adapters::ws::{WsConfig, serve};
use application::ports::AccessTokenSigner;
use application::use_cases::LogoutScope;
use application::{AuthConfig, AuthService, ClientInfo};
use async_tungstenite::tungstenite::Message;
use base64::Engine as _;
use domain::{AccessClaims, SessionId, UserId};
use integration_tests::keys;
use integration_tests::ws_client::{Connect, Incoming, Refused, WsClient};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SECOND: Duration = Duration::from_secs(1);
const PASSWORD: &str = "correct horse battery";

fn key() -> PrivateKey {
    keys::fixed_key(keys::SERVICE)
}

/// A running WebSocket service on its own port.
struct TestWs {
    addr: SocketAddr,
    auth: Arc<AuthService>,
    signer: Arc<JwtSigner>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A logged-in user.
#[derive(Debug, Clone)]
struct Login {
    access: String,
    refresh: String,
    user_id: String,
    username: String,
    sid: String,
    expires_at: i64,
}

async fn spawn_ws(access_ttl: Duration, config: WsConfig) -> TestWs {
    let key = tokio::task::spawn_blocking(key).await.unwrap();
    let signer = Arc::new(JwtSigner::new(key.clone()));
    let verifier = Arc::new(JwtVerifier::new(
        vec![key.public_key()],
        "auth".into(),
        "api".into(),
    ));
    let ports = integration_tests::storage::sqlite_ports(signer.clone(), verifier).await;
    let auth = Arc::new(AuthService::new(
        ports,
        AuthConfig {
            access_ttl,
            ..AuthConfig::default()
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, auth.clone(), config, async {
        let _ = stopped.await;
    }));
    TestWs {
        addr,
        auth,
        signer,
        stop: Some(stop),
        task,
    }
}

async fn default_ws() -> TestWs {
    spawn_ws(Duration::from_secs(900), WsConfig::default()).await
}

fn unix_millis() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

impl TestWs {
    async fn user(&self, name: &str) -> Login {
        self.auth
            .register(name, PASSWORD.to_owned().into())
            .await
            .unwrap();
        self.login(name).await
    }

    async fn login(&self, name: &str) -> Login {
        let out = self
            .auth
            .login(name, PASSWORD.to_owned().into(), &ClientInfo::default())
            .await
            .unwrap();
        Login {
            access: out.access.token.clone(),
            refresh: out.refresh.secret.expose().to_owned(),
            user_id: out.user.id.to_string(),
            username: out.user.username.as_str().to_owned(),
            sid: out.session.id.to_string(),
            expires_at: out.access.expires_at,
        }
    }

    /// Refreshes `login`'s refresh token: the successor login (same session).
    async fn refresh(&self, login: &Login) -> Login {
        let out = self
            .auth
            .refresh(Some(&login.refresh), &ClientInfo::default())
            .await
            .unwrap();
        Login {
            access: out.access.token.clone(),
            refresh: out.refresh.secret.expose().to_owned(),
            expires_at: out.access.expires_at,
            ..login.clone()
        }
    }

    async fn open(&self, connect: Connect<'_>) -> Result<WsClient, Refused> {
        connect.open(self.addr).await.unwrap()
    }

    /// Connects with `?token=` and returns the client and its `connected` payload.
    async fn connect(&self, token: &str) -> (WsClient, Value) {
        let path = format!("/ws?token={token}");
        let mut client = self
            .open(Connect::with_token(&path))
            .await
            .expect("handshake accepted");
        let hello = client.recv_json(2 * SECOND).await.unwrap();
        assert_eq!(hello["type"], "connected", "{hello}");
        (client, hello["payload"].clone())
    }

    async fn refused(&self, connect: Connect<'_>) -> Refused {
        match self.open(connect).await {
            Ok(_) => panic!("handshake should have been refused"),
            Err(refused) => refused,
        }
    }

    /// Signs arbitrary claims with the service's key.
    async fn sign(&self, claims: &AccessClaims) -> String {
        self.signer.sign(claims).await.unwrap()
    }

    /// Stops the service and waits for `serve` to return.
    async fn shutdown(mut self) {
        drop(self.stop.take());
        let result = tokio::time::timeout(10 * SECOND, &mut self.task)
            .await
            .expect("serve returned");
        result.unwrap().unwrap();
    }
}

/// Next message of a given type, skipping `token_expiring` only.
async fn next_of(client: &mut WsClient, kind: &str, within: Duration) -> Value {
    loop {
        let msg = client.recv_json(within).await.unwrap();
        if msg["type"] == kind {
            return msg["payload"].clone();
        }
        assert_eq!(
            msg["type"], "token_expiring",
            "unexpected message while waiting for {kind}: {msg}"
        );
    }
}

/// Sends `{"type":"ping"}` and expects the pong.
async fn assert_alive(client: &mut WsClient) {
    client.send_json(&json!({"type":"ping"})).await.unwrap();
    let pong = next_of(client, "pong", 2 * SECOND).await;
    assert!(pong["ts"].as_i64().unwrap() > 1_600_000_000_000, "{pong}");
}

/// Expects `error` with `code`, then the close `close_code`, within `within`.
async fn assert_error_then_close(
    client: &mut WsClient,
    code: &str,
    close_code: u16,
    within: Duration,
) {
    let error = next_of(client, "error", within).await;
    assert_eq!(error["code"], code, "{error}");
    assert_eq!(client.expect_close(within).await.unwrap(), Some(close_code));
}

fn claims_for(login: &Login, iat: i64, exp: i64) -> AccessClaims {
    AccessClaims {
        iss: "auth".into(),
        aud: "api".into(),
        sub: UserId::from_uuid(login.user_id.parse().unwrap()),
        sid: SessionId::from_uuid(login.sid.parse().unwrap()),
        jti: uuid::Uuid::new_v4(),
        iat,
        nbf: iat,
        exp,
        username: login.username.clone(),
    }
}

#[tokio::test]
async fn handshake_refuses_bad_tokens_with_401_before_the_upgrade() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = unix_millis() / 1000;

    let expired = ws.sign(&claims_for(&alice, now - 120, now - 60)).await;
    let expired_just_now = ws.sign(&claims_for(&alice, now - 60, now - 1)).await;
    let mut tampered = alice.access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let payload = alice.access.split('.').nth(1).unwrap().to_owned();
    let kid = json!({"alg":"RS256","typ":"at+jwt","kid": ws.signer.kid()});
    let none = format!(
        "{}.{payload}.",
        b64(&json!({"alg":"none","typ":"at+jwt","kid": ws.signer.kid()}))
    );
    let other_key = tokio::task::spawn_blocking(|| keys::fixed_key(keys::STRANGER))
        .await
        .unwrap();
    let other_signer = JwtSigner::new(other_key);
    let foreign = other_signer
        .sign(&claims_for(&alice, now, now + 600))
        .await
        .unwrap();
    // The right kid but a signature from another key.
    let forged = {
        let mut parts = foreign.split('.');
        let (_, body, sig) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        format!("{}.{body}.{sig}", b64(&kid))
    };

    for (what, token) in [
        ("garbage", "not-a-token".to_owned()),
        ("expired", expired),
        ("expired a second ago (no leeway)", expired_just_now),
        ("tampered signature", tampered),
        ("alg none", none),
        ("unknown key", foreign),
        ("wrong signature", forged),
    ] {
        let path = format!("/ws?token={token}");
        let refused = ws.refused(Connect::with_token(&path)).await;
        assert_eq!(refused.status, 401, "{what}");
        // The same problem vocabulary as the REST edge's answers.
        let body: Value = serde_json::from_str(&refused.body).unwrap();
        assert_eq!(
            (
                &body["type"],
                &body["title"],
                &body["status"],
                &body["code"]
            ),
            (
                &json!("urn:authd:problem:invalid_token"),
                &json!("Unauthorized"),
                &json!(401),
                &json!("invalid_token")
            ),
            "{what}: {body}"
        );
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: {body}"
        );
    }

    let refused = ws.refused(Connect::with_token("/ws")).await;
    assert_eq!(refused.status, 401, "missing token");
    let refused = ws
        .refused(Connect::with_token("/ws").header("Authorization", "Bearer nope"))
        .await;
    assert_eq!(refused.status, 401, "bad bearer");

    // A revoked session's unexpired token is refused too.
    let bob = ws.user("bob").await;
    ws.auth
        .logout(
            None,
            Some(&bob.access),
            LogoutScope::AllSessions,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let path = format!("/ws?token={}", bob.access);
    assert_eq!(
        ws.refused(Connect::with_token(&path)).await.status,
        401,
        "revoked session"
    );

    // Other paths are 404, even with a good token.
    let path = format!("/other?token={}", alice.access);
    assert_eq!(ws.refused(Connect::with_token(&path)).await.status, 404);

    // The header works as well as the query.
    let mut client = ws
        .open(
            Connect::with_token("/ws").header("Authorization", format!("Bearer {}", alice.access)),
        )
        .await
        .expect("bearer header accepted");
    assert_eq!(
        client.recv_json(2 * SECOND).await.unwrap()["type"],
        "connected"
    );
    ws.shutdown().await;
}

#[tokio::test]
async fn browser_origins_other_than_the_host_are_refused_with_403() {
    let ws = spawn_ws(
        Duration::from_secs(900),
        WsConfig {
            allowed_origins: vec!["https://app.example.com".into()],
            ..WsConfig::default()
        },
    )
    .await;
    let alice = ws.user("alice").await;
    let path = format!("/ws?token={}", alice.access);

    let refused = ws
        .refused(Connect::with_token(&path).header("Origin", "https://evil.example"))
        .await;
    assert_eq!(refused.status, 403);
    let refused = ws
        .refused(Connect::with_token(&path).header("Origin", "null"))
        .await;
    assert_eq!(refused.status, 403);

    let own = format!("http://{}", ws.addr);
    for origin in [own.as_str(), "https://app.example.com"] {
        let mut client = ws
            .open(Connect::with_token(&path).header("Origin", origin))
            .await
            .expect(origin);
        assert_eq!(
            client.recv_json(2 * SECOND).await.unwrap()["type"],
            "connected",
            "{origin}"
        );
    }
    ws.shutdown().await;
}

#[tokio::test]
async fn the_handshake_answers_the_request_id() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let path = format!("/ws?token={}", alice.access);
    let client = ws
        .open(Connect::with_token(&path).header("X-Request-Id", "ws-req.42:a_b"))
        .await
        .unwrap();
    assert_eq!(
        client.request_id(),
        Some("ws-req.42:a_b"),
        "a sane id is kept"
    );
    for insane in ["has space", &"x".repeat(129)] {
        let client = ws
            .open(Connect::with_token(&path).header("X-Request-Id", insane))
            .await
            .unwrap();
        let id = client.request_id().expect("an id is always answered");
        assert_ne!(id, insane);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "a fresh UUID: {id}");
    }
    ws.shutdown().await;
}

#[tokio::test]
async fn connected_ping_echo_and_bad_messages() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let (mut client, hello) = ws.connect(&alice.access).await;
    assert_eq!(
        hello,
        json!({"userId": alice.user_id, "username": "alice", "sessionId": alice.sid, "expiresAt": alice.expires_at})
    );

    let before = unix_millis();
    client.send_json(&json!({"type":"ping"})).await.unwrap();
    let pong = client.recv_json(2 * SECOND).await.unwrap();
    assert_eq!(pong["type"], "pong");
    let ts = pong["payload"]["ts"].as_i64().unwrap();
    assert!(ts >= before && ts <= unix_millis(), "{pong}");

    for payload in [json!({"a": [1, 2, {"b": null}]}), json!("text"), json!(42)] {
        client
            .send_json(&json!({"type":"echo","payload": payload}))
            .await
            .unwrap();
        assert_eq!(
            client.recv_json(2 * SECOND).await.unwrap(),
            json!({"type":"echo","payload": payload})
        );
    }

    for junk in [
        Message::text("not json"),
        Message::text("[1,2]"),
        Message::text(r#"{"type":"dance"}"#),
        Message::text(r#"{"payload":1}"#),
        Message::text(r#"{"type":"reauth"}"#),
        Message::binary(vec![1_u8, 2, 3]),
    ] {
        client.send(junk.clone()).await.unwrap();
        let error = client.recv_json(2 * SECOND).await.unwrap();
        assert_eq!(error["type"], "error", "{junk:?}");
        assert_eq!(error["payload"]["code"], "bad_message", "{junk:?}");
        assert!(error["payload"]["message"].is_string());
    }
    // Still open.
    assert_alive(&mut client).await;
    ws.shutdown().await;
}

#[tokio::test]
async fn reauth_swaps_the_token_of_the_same_user_only() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let mallory = ws.user("mallory").await;
    let (mut client, _) = ws.connect(&alice.access).await;

    let other = ws.refresh(&alice).await;
    client
        .send_json(&json!({"type":"reauth","access": other.access}))
        .await
        .unwrap();
    let ok = client.recv_json(2 * SECOND).await.unwrap();
    assert_eq!(
        ok,
        json!({"type":"reauth_success","payload":{"expiresAt": other.expires_at}})
    );

    // A token of another session of the same user is fine too.
    let second = ws.login("alice").await;
    client
        .send_json(&json!({"type":"reauth","access": second.access}))
        .await
        .unwrap();
    assert_eq!(
        client.recv_json(2 * SECOND).await.unwrap()["type"],
        "reauth_success"
    );

    for (what, token) in [
        ("another user's token", mallory.access.clone()),
        ("invalid token", "x.y.z".to_owned()),
    ] {
        client
            .send_json(&json!({"type":"reauth","access": token}))
            .await
            .unwrap();
        let error = client.recv_json(2 * SECOND).await.unwrap();
        assert_eq!(error["type"], "error", "{what}");
        assert_eq!(error["payload"]["code"], "reauth_failed", "{what}");
    }
    assert_alive(&mut client).await;

    // After moving to the second session, revoking it closes the socket.
    ws.auth
        .logout(
            None,
            Some(&second.access),
            LogoutScope::ThisSession,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    assert_error_then_close(&mut client, "session_revoked", 4003, SECOND).await;
    ws.shutdown().await;
}

#[tokio::test]
async fn token_expiring_then_expiry_closes_4001_and_failed_reauth_keeps_the_old_expiry() {
    let ws = spawn_ws(
        Duration::from_secs(3),
        WsConfig {
            expiry_warning: SECOND,
            ..WsConfig::default()
        },
    )
    .await;
    let alice = ws.user("alice").await;
    let mallory = ws.user("mallory").await;
    let (mut client, hello) = ws.connect(&alice.access).await;
    let exp_ms = alice.expires_at * 1000;
    assert_eq!(hello["expiresAt"], alice.expires_at);

    // A refused reauth does not extend anything.
    client
        .send_json(&json!({"type":"reauth","access": mallory.access}))
        .await
        .unwrap();
    let error = client.recv_json(2 * SECOND).await.unwrap();
    assert_eq!(error["payload"]["code"], "reauth_failed");

    let warning = client.recv_json(4 * SECOND).await.unwrap();
    let warned_at = unix_millis();
    assert_eq!(warning["type"], "token_expiring", "{warning}");
    assert_eq!(warning["payload"]["expiresAt"], alice.expires_at);
    assert!(
        matches!(warning["payload"]["expiresIn"].as_i64(), Some(0..=1)),
        "{warning}"
    );
    assert!(
        warned_at >= exp_ms - 1000 && warned_at < exp_ms,
        "warned {} ms before exp",
        exp_ms - warned_at
    );

    let error = client.recv_json(3 * SECOND).await.unwrap();
    let expired_at = unix_millis();
    assert_eq!(error["type"], "error", "only one token_expiring: {error}");
    assert_eq!(error["payload"]["code"], "token_expired");
    assert!(
        expired_at >= exp_ms && expired_at < exp_ms + 1000,
        "closed {} ms after exp",
        expired_at - exp_ms
    );
    assert_eq!(client.expect_close(SECOND).await.unwrap(), Some(4001));
    ws.shutdown().await;
}

#[tokio::test]
async fn a_reauthed_connection_survives_its_first_token() {
    let ws = spawn_ws(
        Duration::from_secs(3),
        WsConfig {
            expiry_warning: SECOND,
            ..WsConfig::default()
        },
    )
    .await;
    let alice = ws.user("alice").await;
    let (mut client, _) = ws.connect(&alice.access).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let renewed = ws.refresh(&alice).await;
    assert!(renewed.expires_at > alice.expires_at);
    client
        .send_json(&json!({"type":"reauth","access": renewed.access}))
        .await
        .unwrap();
    let ok = next_of(&mut client, "reauth_success", 2 * SECOND).await;
    assert_eq!(ok["expiresAt"], renewed.expires_at);

    // Past the first token's exp: still open, no token_expired. The new
    // token's warning may come any time from here on.
    let wait = u64::try_from(alice.expires_at * 1000 + 500 - unix_millis()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    client.send_json(&json!({"type":"ping"})).await.unwrap();
    let mut warnings = Vec::new();
    loop {
        let msg = client.recv_json(2 * SECOND).await.unwrap();
        match msg["type"].as_str() {
            Some("pong") => break,
            Some("token_expiring") => warnings.push(msg["payload"]["expiresAt"].as_i64().unwrap()),
            _ => panic!("unexpected {msg}"),
        }
    }

    // The new token gets its own warning, then its own expiry.
    loop {
        let msg = client.recv_json(4 * SECOND).await.unwrap();
        if msg["type"] == "token_expiring" {
            warnings.push(msg["payload"]["expiresAt"].as_i64().unwrap());
            continue;
        }
        assert_eq!(msg["payload"]["code"], "token_expired", "{msg}");
        break;
    }
    assert_eq!(
        warnings,
        vec![renewed.expires_at],
        "one warning, for the new token"
    );
    assert_eq!(client.expect_close(SECOND).await.unwrap(), Some(4001));
    assert!(unix_millis() >= renewed.expires_at * 1000);
    ws.shutdown().await;
}

#[tokio::test]
async fn logout_closes_every_socket_of_the_user_with_4003_within_a_second() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let alice_phone = ws.login("alice").await;
    let bob = ws.user("bob").await;
    let (mut a1, _) = ws.connect(&alice.access).await;
    let (mut a2, _) = ws.connect(&alice.access).await;
    let (mut a3, _) = ws.connect(&alice_phone.access).await;
    let (mut b, _) = ws.connect(&bob.access).await;

    let started = Instant::now();
    let revoked = ws
        .auth
        .logout(
            Some(&alice.refresh),
            None,
            LogoutScope::AllSessions,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    assert_eq!(revoked.len(), 2);
    for client in [&mut a1, &mut a2, &mut a3] {
        assert_error_then_close(client, "session_revoked", 4003, SECOND).await;
    }
    assert!(started.elapsed() < SECOND, "took {:?}", started.elapsed());
    assert_alive(&mut b).await;
    ws.shutdown().await;
}

#[tokio::test]
async fn reuse_detection_closes_the_family_with_4003_within_a_second() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let second = ws.refresh(&alice).await;
    let third = ws.refresh(&second).await;
    let (mut client, _) = ws.connect(&third.access).await;
    let (mut other_session, _) = ws.connect(&ws.login("alice").await.access).await;

    // The grandparent again: reuse, the whole family goes.
    let started = Instant::now();
    assert!(
        ws.auth
            .refresh(Some(&alice.refresh), &ClientInfo::default())
            .await
            .is_err()
    );
    assert_error_then_close(&mut client, "session_revoked", 4003, SECOND).await;
    assert!(started.elapsed() < SECOND, "took {:?}", started.elapsed());
    assert_alive(&mut other_session).await;
    ws.shutdown().await;
}

#[tokio::test]
async fn messages_over_64_kib_close_1009() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let (mut client, _) = ws.connect(&alice.access).await;

    let fits = "x".repeat(60 * 1024);
    client
        .send_json(&json!({"type":"echo","payload": fits}))
        .await
        .unwrap();
    assert_eq!(
        client.recv_json(2 * SECOND).await.unwrap()["payload"],
        json!(fits)
    );

    let too_big = "x".repeat(65 * 1024);
    client
        .send_json(&json!({"type":"echo","payload": too_big}))
        .await
        .unwrap();
    assert_eq!(client.expect_close(2 * SECOND).await.unwrap(), Some(1009));

    // Fragments count after reassembly: two 40 KiB frames of one message.
    let (mut client, _) = ws.connect(&alice.access).await;
    use async_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    let part = vec![b'x'; 40 * 1024];
    let first = Frame::message(part.clone(), OpCode::Data(Data::Text), false);
    let last = Frame::message(part, OpCode::Data(Data::Continue), true);
    client.send(Message::Frame(first)).await.unwrap();
    client.send(Message::Frame(last)).await.unwrap();
    assert_eq!(client.expect_close(2 * SECOND).await.unwrap(), Some(1009));
    ws.shutdown().await;
}

#[tokio::test]
async fn server_pings_keep_live_peers_and_drop_silent_ones() {
    let ws = spawn_ws(
        Duration::from_secs(900),
        WsConfig {
            ping_interval: Duration::from_millis(200),
            peer_timeout: Duration::from_millis(700),
            ..WsConfig::default()
        },
    )
    .await;
    let alice = ws.user("alice").await;
    let (mut listening, _) = ws.connect(&alice.access).await;
    let (mut silent, _) = ws.connect(&alice.access).await;

    // The listening client only reads: tungstenite answers the server's pings.
    let quiet = listening.recv(2 * SECOND).await;
    assert!(
        quiet.is_err(),
        "no application message expected, got {quiet:?}"
    );
    assert_alive(&mut listening).await;

    // The silent one never read, so never answered: it was dropped.
    match silent.recv(SECOND).await {
        Ok(Incoming::Closed(_)) => {}
        Err(e) => assert!(!e.to_string().contains("in time"), "still open: {e:#}"),
        Ok(other) => panic!("unexpected {other:?}"),
    }
    ws.shutdown().await;
}

/// Security review, finding (abuse) 5: unfinished fragments and unsolicited
/// pongs kept sockets alive past the dead-peer timeout. A peer that sends all
/// the time but never reads (so never answers a ping) is dropped after
/// `peer_timeout` all the same.
#[tokio::test]
async fn a_peer_that_talks_but_never_answers_pings_is_dropped() {
    let ws = spawn_ws(
        Duration::from_secs(900),
        WsConfig {
            ping_interval: Duration::from_millis(200),
            peer_timeout: Duration::from_millis(700),
            ..WsConfig::default()
        },
    )
    .await;
    let alice = ws.user("alice").await;
    let (mut talker, _) = ws.connect(&alice.access).await;
    let started = Instant::now();
    let mut dropped_after = None;
    while started.elapsed() < 5 * SECOND {
        // Our own pongs (no ping asked for them, a plausible number) and
        // application messages: neither answers a ping.
        let frames = [
            Message::Pong(b"\0\0\0\0\0\0\0\x01".to_vec().into()),
            Message::Text(r#"{"type":"ping"}"#.into()),
        ];
        let mut failed = false;
        for frame in frames {
            failed |= talker.send(frame).await.is_err();
        }
        if failed {
            dropped_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dropped_after = dropped_after.expect("the talker was still connected after 5 s");
    assert!(
        dropped_after < 3 * SECOND,
        "dropped after {dropped_after:?}"
    );
    ws.shutdown().await;
}

/// Security review, finding (abuse) 5: 3,000 sockets opened from one token
/// in 0.3 s. At `WS_MAX_CONNECTIONS_PER_USER`, one more is refused `429
/// too_many_connections` before the upgrade; closing one frees its slot, and
/// other users are not affected.
#[tokio::test]
async fn sockets_per_user_are_capped_before_the_upgrade() {
    let ws = spawn_ws(
        Duration::from_secs(900),
        WsConfig {
            max_connections_per_user: 3,
            ..WsConfig::default()
        },
    )
    .await;
    let alice = ws.user("alice").await;
    let second = ws.login("alice").await;
    let mut held = Vec::new();
    for token in [&alice.access, &alice.access, &second.access] {
        held.push(ws.connect(token).await.0);
    }
    let path = format!("/ws?token={}", second.access);
    let refused = ws.refused(Connect::with_token(&path)).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    let body: Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["code"], "too_many_connections", "{body}");
    assert_eq!(
        body["type"], "urn:authd:problem:too_many_connections",
        "{body}"
    );
    assert!(body["detail"].as_str().is_some(), "{body}");
    let bob = ws.user("bob").await;
    let (_bob_socket, _) = ws.connect(&bob.access).await;
    held.pop().unwrap().close().await;
    let deadline = Instant::now() + 5 * SECOND;
    while ws.open(Connect::with_token(&path)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the closed socket's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ws.shutdown().await;
}

/// A connection that has not completed its handshake within the deadline
/// (10 s by default) is dropped, however it trickles.
#[tokio::test]
async fn unfinished_handshakes_are_dropped_at_the_deadline() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let ws = spawn_ws(
        Duration::from_secs(900),
        WsConfig {
            handshake_timeout: Duration::from_millis(500),
            ..WsConfig::default()
        },
    )
    .await;
    let mut silent = tokio::net::TcpStream::connect(ws.addr).await.unwrap();
    let mut trickling = tokio::net::TcpStream::connect(ws.addr).await.unwrap();
    trickling.write_all(b"GET /ws HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        while trickling.write_all(b"x-a: b\r\n").await.is_ok() {
            if started.elapsed() > 5 * SECOND {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(started.elapsed())
    });
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(5 * SECOND, silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "still open: {read:?}");
    assert!(started.elapsed() < 2 * SECOND);
    let trickled = trickle
        .await
        .unwrap()
        .expect("the trickling handshake was still open after 5 s");
    assert!(trickled < 2 * SECOND, "{trickled:?}");
    ws.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let (mut a, _) = ws.connect(&alice.access).await;
    let (mut b, _) = ws.connect(&alice.access).await;
    let TestWs { stop, task, .. } = ws;
    drop(stop);
    assert_eq!(a.expect_close(2 * SECOND).await.unwrap(), Some(1001));
    assert_eq!(b.expect_close(2 * SECOND).await.unwrap(), Some(1001));
    tokio::time::timeout(10 * SECOND, task)
        .await
        .expect("serve returned")
        .unwrap()
        .unwrap();
}

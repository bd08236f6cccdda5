//! The WebSocket half of the contract, with real WebSocket clients against a
//! running `adapters::ws::serve` on a loopback port.
//!
//! The service runs on the real adapters: RS256 tokens from the crypto
//! adapter, users and sessions in a fresh SQLite database per test
//! (`integration_tests::storage`), the in-process revocation bus. Separate
//! processes are tested in `bin/tests/processes/revocation.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::crypto::jwt::{JwtSigner, JwtVerifier};
use adapters::crypto::keys::PrivateKey;
use adapters::ws::{WsConfig, serve};
use application::ports::AccessTokenSigner;
use application::use_cases::LogoutScope;
use application::{AuthConfig, ClientInfo};
use async_tungstenite::tungstenite::Message;
use authd::wiring::UseCases;
use base64::Engine as _;
use domain::{AccessClaims, SessionId, UserId};
use integration_tests::keys;
use integration_tests::ws_client::{Connect, Incoming, Refused, WsClient};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod compression;
mod first_message;
mod handshake;
mod limits;
mod parking;
mod session;

const SECOND: Duration = Duration::from_secs(1);
const PASSWORD: &str = "correct horse battery";

fn key() -> PrivateKey {
    keys::fixed_key(keys::SERVICE)
}

/// A running WebSocket service on its own port.
struct TestWs {
    addr: SocketAddr,
    auth: UseCases,
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

/// Every connection here parks after 20 ms idle (1 s in production), so
/// every test of the file also runs through parking and waking.
const PARK_AFTER: Duration = Duration::from_millis(20);

async fn spawn_ws(access_ttl: Duration, config: WsConfig) -> TestWs {
    let config = WsConfig {
        park_after: PARK_AFTER,
        ..config
    };
    let key = tokio::task::spawn_blocking(key).await.unwrap();
    let signer = Arc::new(JwtSigner::new(key.clone()));
    let verifier = Arc::new(JwtVerifier::new(
        vec![key.public_key()],
        "auth".into(),
        "api".into(),
    ));
    let ports = integration_tests::storage::sqlite_ports(signer.clone(), verifier).await;
    let auth = authd::wiring::compose(
        ports,
        &AuthConfig {
            access_ttl,
            ..AuthConfig::default()
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, auth.access.clone(), config, async {
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
            .registration
            .register(name, PASSWORD.to_owned().into())
            .await
            .unwrap();
        self.login(name).await
    }

    async fn login(&self, name: &str) -> Login {
        let out = self
            .auth
            .logins
            .login(name, PASSWORD.to_owned().into(), &ClientInfo::default())
            .await
            .unwrap()
            .done()
            .expect("one factor");
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
            .sessions
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
        amr: domain::AuthMethods::Password,
        cnf: None,
    }
}

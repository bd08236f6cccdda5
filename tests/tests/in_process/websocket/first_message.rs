//! Contract v3: a socket opened without a token authenticates with its
//! first message, `{"type":"auth","access":…}`, within the handshake
//! timeout; anything else first, a refused token or silence closes it with
//! `auth_failed` and `4001`, a user at the cap with `too_many_connections`
//! and `4029`, and nothing is answered before the `auth`.

use super::*;

/// Opens `GET /ws` without a token.
async fn open_bare(ws: &TestWs) -> WsClient {
    ws.open(Connect::with_token("/ws"))
        .await
        .expect("upgraded without a token")
}

/// Ends every session of `login`'s user.
async fn log_out(ws: &TestWs, login: &Login) {
    ws.auth
        .sessions
        .logout(
            Some(&login.refresh),
            None,
            LogoutScope::AllSessions,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
}

/// The `error` and the close a refused first message gets.
async fn refused(client: &mut WsClient, code: &str, close: u16) {
    let error = client
        .recv_json(2 * SECOND)
        .await
        .expect("an error message");
    assert_eq!(
        (&error["type"], &error["payload"]["code"]),
        (&json!("error"), &json!(code)),
        "{error}"
    );
    assert_eq!(client.expect_close(2 * SECOND).await.unwrap(), Some(close));
}

#[tokio::test]
async fn the_first_message_authenticates_a_socket_opened_without_a_token() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let mut client = open_bare(&ws).await;
    // Nothing is said before the auth.
    let quiet = client.recv(Duration::from_millis(300)).await;
    assert!(quiet.is_err(), "the server spoke first: {quiet:?}");
    client
        .send_json(&json!({"type": "auth", "access": alice.access}))
        .await
        .unwrap();
    let hello = client.recv_json(2 * SECOND).await.unwrap();
    assert_eq!(hello["type"], "connected", "{hello}");
    assert_eq!(hello["payload"]["sessionId"], json!(alice.sid));
    assert_eq!(hello["payload"]["userId"], json!(alice.user_id));
    // Then it is a socket like any other: answered, and `auth` again is a bad message.
    client.send_json(&json!({"type": "ping"})).await.unwrap();
    assert_eq!(client.recv_json(2 * SECOND).await.unwrap()["type"], "pong");
    client
        .send_json(&json!({"type": "auth", "access": alice.access}))
        .await
        .unwrap();
    let bad = client.recv_json(2 * SECOND).await.unwrap();
    assert_eq!(bad["payload"]["code"], "bad_message", "{bad}");
    // And its session's revocation closes it with 4003.
    log_out(&ws, &alice).await;
    let revoked = client.recv_json(2 * SECOND).await.unwrap();
    assert_eq!(revoked["payload"]["code"], "session_revoked", "{revoked}");
    assert_eq!(client.expect_close(2 * SECOND).await.unwrap(), Some(4003));
}

#[tokio::test]
async fn anything_else_first_or_a_refused_token_closes_4001() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let now = unix_millis() / 1000;
    let expired = ws.sign(&claims_for(&alice, now - 120, now - 1)).await;
    for (what, first) in [
        ("a ping before auth", json!({"type": "ping"})),
        ("an echo", json!({"type": "echo", "payload": "hi"})),
        (
            "a reauth",
            json!({"type": "reauth", "access": alice.access}),
        ),
        ("auth without a token", json!({"type": "auth"})),
        (
            "garbage token",
            json!({"type": "auth", "access": "not-a-token"}),
        ),
        ("expired token", json!({"type": "auth", "access": expired})),
    ] {
        let mut client = open_bare(&ws).await;
        client.send_json(&first).await.unwrap();
        let error = client.recv_json(2 * SECOND).await.expect(what);
        assert_eq!(error["payload"]["code"], "auth_failed", "{what}: {error}");
        assert_eq!(
            client.expect_close(2 * SECOND).await.unwrap(),
            Some(4001),
            "{what}"
        );
    }
    let mut client = open_bare(&ws).await;
    client
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    refused(&mut client, "auth_failed", 4001).await;
    // A revoked session's token is refused too.
    log_out(&ws, &alice).await;
    let mut client = open_bare(&ws).await;
    client
        .send_json(&json!({"type": "auth", "access": alice.access}))
        .await
        .unwrap();
    refused(&mut client, "auth_failed", 4001).await;
}

#[tokio::test]
async fn silence_until_the_deadline_closes_4001() {
    let ws = spawn_ws(
        Duration::from_secs(900),
        WsConfig {
            handshake_timeout: Duration::from_millis(600),
            ..WsConfig::default()
        },
    )
    .await;
    let started = Instant::now();
    let mut client = open_bare(&ws).await;
    refused(&mut client, "auth_failed", 4001).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < 2 * SECOND,
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn a_user_at_the_cap_gets_too_many_connections_4029() {
    let ws = spawn_ws(
        Duration::from_secs(900),
        WsConfig {
            max_connections_per_user: 1,
            ..WsConfig::default()
        },
    )
    .await;
    let alice = ws.user("alice").await;
    let (_held, _) = ws.connect(&alice.access).await;
    let mut client = open_bare(&ws).await;
    client
        .send_json(&json!({"type": "auth", "access": alice.access}))
        .await
        .unwrap();
    refused(&mut client, "too_many_connections", 4029).await;
}

#[tokio::test]
async fn shutdown_closes_a_waiting_socket_with_1001() {
    let ws = default_ws().await;
    let mut client = open_bare(&ws).await;
    // Let it park.
    tokio::time::sleep(Duration::from_millis(100)).await;
    ws.shutdown().await;
    assert_eq!(client.expect_close(2 * SECOND).await.unwrap(), Some(1001));
}

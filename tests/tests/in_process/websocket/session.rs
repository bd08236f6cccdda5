//! An open socket: messages, reauth, expiry, revocation.

use super::*;

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
        .sessions
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
        .sessions
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
            .sessions
            .refresh(Some(&alice.refresh), &ClientInfo::default())
            .await
            .is_err()
    );
    assert_error_then_close(&mut client, "session_revoked", 4003, SECOND).await;
    assert!(started.elapsed() < SECOND, "took {:?}", started.elapsed());
    assert_alive(&mut other_session).await;
    ws.shutdown().await;
}

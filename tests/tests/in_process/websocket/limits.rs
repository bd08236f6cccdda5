//! Limits and lifecycle: message size, pings, caps, deadlines, shutdown.

use super::*;

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

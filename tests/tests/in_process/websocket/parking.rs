//! Parking (issue #15): an idle connection drops tungstenite's state and
//! waits on the bare socket; whatever comes next (a message, a ping, a
//! revocation) wakes it on a fresh tungstenite, and it never parks inside a
//! frame or a fragmented message. Read through `authd_ws_parked`.

use super::*;
use adapters::telemetry::Metrics;
use integration_tests::ws_raw::{self, CONTINUATION, PING, PONG, RawWs, TEXT};

/// What Chromium offers.
const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// A service whose connections are counted, and its instruments.
async fn counted_ws() -> (TestWs, Metrics) {
    let metrics = Metrics::new(None).unwrap();
    let config = WsConfig {
        metrics: metrics.clone(),
        ..WsConfig::default()
    };
    (spawn_ws(Duration::from_secs(900), config).await, metrics)
}

fn parked_now(metrics: &Metrics) -> f64 {
    let text = metrics.render();
    text.lines()
        .find_map(|line| line.strip_prefix("authd_ws_parked "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no authd_ws_parked in {text}"))
}

/// Waits (at most 2 s) until `n` connections are parked.
async fn wait_parked(metrics: &Metrics, n: f64) {
    let deadline = Instant::now() + 2 * SECOND;
    while parked_now(metrics) != n {
        assert!(
            Instant::now() < deadline,
            "parked: {} instead of {n}",
            parked_now(metrics)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn open(ws: &TestWs, login: &Login, offer: Option<&str>) -> RawWs {
    let path = format!("/ws?token={}", login.access);
    let mut raw = RawWs::connect(ws.addr, &path, offer).await.unwrap();
    let (hello, _) = raw.recv_text(2 * SECOND).await.unwrap();
    assert!(hello.contains(r#""type":"connected""#), "{hello}");
    raw
}

fn echo(payload: &Value) -> String {
    json!({"type": "echo", "payload": payload}).to_string()
}

/// The next text message, inflated if it came compressed.
async fn recv_json(raw: &mut RawWs) -> Value {
    let (text, _) = raw.recv_text(2 * SECOND).await.unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn idle_sockets_park_and_every_event_wakes_them() {
    let (ws, metrics) = counted_ws().await;
    let alice = ws.user("alice").await;
    let mut plain = open(&ws, &alice, None).await;
    let mut deflating = open(&ws, &alice, Some(BROWSER_OFFER)).await;
    assert!(deflating.extensions.is_some());
    wait_parked(&metrics, 2.0).await;

    // A message wakes a parked socket, which parks again once answered.
    for raw in [&mut plain, &mut deflating] {
        raw.send_frame(true, false, TEXT, echo(&json!("hi")).as_bytes())
            .await
            .unwrap();
        let answer = recv_json(raw).await;
        assert_eq!(answer["payload"], "hi", "{answer}");
    }
    wait_parked(&metrics, 2.0).await;

    // Compression goes on after waking, both ways.
    let big: Value = json!((0..400).map(|i| format!("item {i}")).collect::<Vec<_>>());
    deflating.send_compressed(&echo(&big)).await.unwrap();
    let frame = deflating.recv_frame(2 * SECOND).await.unwrap();
    assert!(frame.rsv1, "a large answer goes compressed");
    let answer: Value = serde_json::from_slice(&ws_raw::inflate(&frame.payload).unwrap()).unwrap();
    assert_eq!(answer["payload"], big);
    wait_parked(&metrics, 2.0).await;

    // A ping from the client is answered by the fresh tungstenite.
    plain
        .send_frame(true, false, PING, b"are you there")
        .await
        .unwrap();
    let pong = plain.recv_frame(2 * SECOND).await.unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (PONG, &b"are you there"[..])
    );
    wait_parked(&metrics, 2.0).await;

    // A revocation reaches parked sockets at once.
    let started = Instant::now();
    ws.auth
        .sessions
        .logout(
            Some(&alice.refresh),
            None,
            LogoutScope::ThisSession,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    for raw in [&mut plain, &mut deflating] {
        let error = recv_json(raw).await;
        assert_eq!(error["payload"]["code"], "session_revoked", "{error}");
        assert_eq!(raw.expect_close(SECOND).await.unwrap(), 4003);
    }
    assert!(started.elapsed() < SECOND, "took {:?}", started.elapsed());
    wait_parked(&metrics, 0.0).await;
    ws.shutdown().await;
}

/// Waits a good many `PARK_AFTER`s, then checks nothing parked.
async fn pause_unparked(metrics: &Metrics) {
    tokio::time::sleep(PARK_AFTER * 8).await;
    assert_eq!(
        parked_now(metrics),
        0.0,
        "parked inside a frame or a message"
    );
}

#[tokio::test]
async fn a_socket_never_parks_inside_a_frame_or_a_message() {
    let (ws, metrics) = counted_ws().await;
    let alice = ws.user("alice").await;
    for offer in [None, Some(BROWSER_OFFER)] {
        let mut raw = open(&ws, &alice, offer).await;
        wait_parked(&metrics, 1.0).await;

        // A frame cut inside its header, then inside its payload.
        let text = echo(&json!("cut"));
        let bytes = ws_raw::frame(true, false, TEXT, text.as_bytes());
        for part in [&bytes[..3], &bytes[3..10]] {
            raw.send_bytes(part).await.unwrap();
            pause_unparked(&metrics).await;
        }
        raw.send_bytes(&bytes[10..]).await.unwrap();
        assert_eq!(recv_json(&mut raw).await["payload"], "cut");
        wait_parked(&metrics, 1.0).await;

        // A fragmented message, with a ping between its fragments.
        let text = echo(&json!("in three fragments"));
        let (a, rest) = text.as_bytes().split_at(10);
        let (b, c) = rest.split_at(10);
        raw.send_frame(false, false, TEXT, a).await.unwrap();
        pause_unparked(&metrics).await;
        raw.send_frame(true, false, PING, b"p").await.unwrap();
        assert_eq!(raw.recv_frame(2 * SECOND).await.unwrap().opcode, PONG);
        pause_unparked(&metrics).await;
        raw.send_frame(false, false, CONTINUATION, b).await.unwrap();
        pause_unparked(&metrics).await;
        raw.send_frame(true, false, CONTINUATION, c).await.unwrap();
        assert_eq!(recv_json(&mut raw).await["payload"], "in three fragments");
        wait_parked(&metrics, 1.0).await;

        if offer.is_some() {
            // A compressed message in two fragments.
            let text = echo(&json!("compressed, in two"));
            let compressed = ws_raw::compress(text.as_bytes());
            let (a, b) = compressed.split_at(compressed.len() / 2);
            raw.send_frame(false, true, TEXT, a).await.unwrap();
            pause_unparked(&metrics).await;
            raw.send_frame(true, false, CONTINUATION, b).await.unwrap();
            assert_eq!(recv_json(&mut raw).await["payload"], "compressed, in two");
            wait_parked(&metrics, 1.0).await;
        }
        drop(raw);
        wait_parked(&metrics, 0.0).await;
    }
    ws.shutdown().await;
}

//! permessage-deflate (RFC 7692, the contract's "Compression (v2)"): what is
//! negotiated, compressed messages both ways, the limit after inflation, and
//! every malformed case, with a client that writes the frames byte by byte
//! and compresses with flate2.

use super::*;
use integration_tests::ws_raw::{self, CONTINUATION, PING, PONG, RawWs, TEXT};

const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
/// What Chromium offers.
const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Opens a socket for `login` offering `offer`; the `connected` message read.
async fn open(ws: &TestWs, login: &Login, offer: Option<&str>) -> RawWs {
    let path = format!("/ws?token={}", login.access);
    let mut raw = RawWs::connect(ws.addr, &path, offer).await.unwrap();
    let (hello, compressed) = raw.recv_text(2 * SECOND).await.unwrap();
    assert!(hello.contains(r#""type":"connected""#), "{hello}");
    assert!(!compressed, "a short message goes uncompressed");
    raw
}

/// A frame to send: FIN, RSV1, opcode, payload.
type RawFrame<'a> = (bool, bool, u8, &'a [u8]);

/// Opens a socket offering `offer`, sends `frames` and returns the code of
/// the server's close frame.
async fn close_code(
    ws: &TestWs,
    login: &Login,
    offer: Option<&str>,
    frames: &[RawFrame<'_>],
) -> u16 {
    let mut raw = open(ws, login, offer).await;
    for &(fin, rsv1, opcode, payload) in frames {
        raw.send_frame(fin, rsv1, opcode, payload).await.unwrap();
    }
    raw.expect_close(2 * SECOND).await.unwrap()
}

fn echo_of(payload: &Value) -> String {
    json!({"type": "echo", "payload": payload}).to_string()
}

/// A 16 KiB JSON document like an application's.
fn document() -> Value {
    let items: Vec<Value> = (0..290)
        .map(
            |i| json!({"id": i, "name": format!("item {i}"), "tags": ["a", "b"], "ok": i % 3 == 0}),
        )
        .collect();
    json!({ "items": items })
}

#[tokio::test]
async fn compression_is_negotiated_only_when_offered_acceptably() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    for (offer, answer) in [
        (None, None),
        (Some(BROWSER_OFFER), Some(ANSWER)),
        (
            Some("permessage-deflate; client_max_window_bits=15"),
            Some(ANSWER),
        ),
        (Some("permessage-deflate"), Some(ANSWER)),
        // Parameters we cannot honour or do not know: declined, not refused.
        (Some("permessage-deflate; server_max_window_bits=10"), None),
        (Some("permessage-deflate; x-unknown"), None),
        (Some("x-webkit-deflate-frame"), None),
        // The first acceptable of several offers.
        (
            Some(
                "permessage-deflate; server_max_window_bits=9, permessage-deflate; client_max_window_bits",
            ),
            Some(ANSWER),
        ),
    ] {
        let raw = open(&ws, &alice, offer).await;
        assert_eq!(raw.extensions.as_deref(), answer, "offer {offer:?}");
    }
    ws.shutdown().await;
}

#[tokio::test]
async fn compressed_messages_round_trip_and_large_answers_go_compressed() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let mut raw = open(&ws, &alice, Some(BROWSER_OFFER)).await;

    let doc = document();
    let text = echo_of(&doc);
    assert!(text.len() > 12 * 1024, "{}", text.len());
    raw.send_compressed(&text).await.unwrap();
    let (answer, compressed) = raw.recv_text(2 * SECOND).await.unwrap();
    assert!(compressed, "a 16 KiB answer goes compressed");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["payload"], doc);
    assert!(
        raw.wire_bytes_in * 4 < text.len(),
        "{} bytes on the wire",
        raw.wire_bytes_in
    );

    // Uncompressed messages stay allowed (RSV1 clear), and so do compressed
    // short ones; short answers go uncompressed.
    raw.send_frame(true, false, TEXT, br#"{"type":"ping"}"#)
        .await
        .unwrap();
    let (pong, compressed) = raw.recv_text(2 * SECOND).await.unwrap();
    assert!(pong.contains(r#""type":"pong""#) && !compressed, "{pong}");
    raw.send_compressed(r#"{"type":"ping"}"#).await.unwrap();
    let (pong, _) = raw.recv_text(2 * SECOND).await.unwrap();
    assert!(pong.contains(r#""type":"pong""#), "{pong}");

    // Without the extension, the same large answer goes plain.
    let mut plain = open(&ws, &alice, None).await;
    plain
        .send_frame(true, false, TEXT, text.as_bytes())
        .await
        .unwrap();
    let (answer, compressed) = plain.recv_text(2 * SECOND).await.unwrap();
    assert!(!compressed);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["payload"],
        doc
    );
    ws.shutdown().await;
}

#[tokio::test]
async fn fragmented_compressed_messages_with_control_frames_between() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let mut raw = open(&ws, &alice, Some(BROWSER_OFFER)).await;
    let doc = document();
    let compressed = ws_raw::compress(echo_of(&doc).as_bytes());
    let third = compressed.len() / 3;
    raw.send_frame(false, true, TEXT, &compressed[..third])
        .await
        .unwrap();
    raw.send_frame(true, false, PING, b"between").await.unwrap();
    raw.send_frame(false, false, CONTINUATION, &compressed[third..2 * third])
        .await
        .unwrap();
    // An empty fragment is still a fragment.
    raw.send_frame(false, false, CONTINUATION, b"")
        .await
        .unwrap();
    raw.send_frame(true, false, CONTINUATION, &compressed[2 * third..])
        .await
        .unwrap();
    let pong = raw.recv_frame(2 * SECOND).await.unwrap();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (PONG, &b"between"[..])
    );
    let (answer, _) = raw.recv_text(2 * SECOND).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["payload"],
        doc
    );
    ws.shutdown().await;
}

#[tokio::test]
async fn the_limit_applies_after_inflation_and_a_bomb_closes_1009() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;

    // 60 KiB inflated: fine; 65 KiB: 1009, though both are small on the wire.
    let mut raw = open(&ws, &alice, Some(BROWSER_OFFER)).await;
    let fits = echo_of(&json!("x".repeat(60 * 1024)));
    raw.send_compressed(&fits).await.unwrap();
    let (answer, _) = raw.recv_text(2 * SECOND).await.unwrap();
    assert_eq!(answer.len(), fits.len());
    let too_big = echo_of(&json!("x".repeat(65 * 1024)));
    let payload = ws_raw::compress(too_big.as_bytes());
    assert!(payload.len() < 1024, "{}", payload.len());
    raw.send_frame(true, true, TEXT, &payload).await.unwrap();
    assert_eq!(raw.expect_close(2 * SECOND).await.unwrap(), 1009);

    // 1 MiB of zeros in about 1 KiB.
    let zeros = vec![0_u8; 1024 * 1024];
    let bomb = ws_raw::compress_with(&zeros, flate2::Compression::best());
    assert!(bomb.len() < 1100, "{}", bomb.len());
    let offer = Some(BROWSER_OFFER);
    assert_eq!(
        close_code(&ws, &alice, offer, &[(true, true, TEXT, &bomb)]).await,
        1009
    );

    // The same split into fragments.
    let (a, b) = bomb.split_at(bomb.len() / 2);
    let fragments = [(false, true, TEXT, a), (true, false, CONTINUATION, b)];
    assert_eq!(close_code(&ws, &alice, offer, &fragments).await, 1009);

    // The service is unharmed.
    let mut raw = open(&ws, &alice, Some(BROWSER_OFFER)).await;
    raw.send_compressed(r#"{"type":"ping"}"#).await.unwrap();
    assert!(raw.recv_text(2 * SECOND).await.unwrap().0.contains("pong"));
    ws.shutdown().await;
}

#[tokio::test]
async fn malformed_compressed_frames_fail_the_connection() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let ping = ws_raw::compress(br#"{"type":"ping"}"#);

    let not_utf8: &[u8] = &[0xc3, 0x28, 0xa0, 0xa1];
    let compressed_not_utf8 = ws_raw::compress(not_utf8);
    let deflate = Some(BROWSER_OFFER);
    let cases: [(&str, Option<&str>, Vec<RawFrame>, u16); 8] = [
        // RFC 7692 §6.1.
        (
            "RSV1 on a control frame",
            deflate,
            vec![(true, true, PING, b"x")],
            1002,
        ),
        (
            "RSV1 on a continuation of a compressed message",
            deflate,
            vec![
                (false, true, TEXT, &ping[..4]),
                (true, true, CONTINUATION, &ping[4..]),
            ],
            1002,
        ),
        (
            "RSV1 on a continuation of a plain message",
            deflate,
            vec![
                (false, false, TEXT, br#"{"type":"#),
                (true, true, CONTINUATION, br#""ping"}"#),
            ],
            1002,
        ),
        (
            "a new message inside a compressed one",
            deflate,
            vec![(false, true, TEXT, &ping[..4]), (true, true, TEXT, &ping)],
            1002,
        ),
        // A reserved block type.
        (
            "invalid DEFLATE data",
            deflate,
            vec![(true, true, TEXT, &[0xff, 0xff, 0xff])],
            1007,
        ),
        (
            "inflates to text that is not UTF-8",
            deflate,
            vec![(true, true, TEXT, &compressed_not_utf8)],
            1007,
        ),
        // RFC 6455 §8.1.
        (
            "text that is not UTF-8, uncompressed",
            None,
            vec![(true, false, TEXT, not_utf8)],
            1007,
        ),
        (
            "RSV1 without the extension",
            None,
            vec![(true, true, TEXT, &ping)],
            1002,
        ),
    ];
    for (case, offer, frames, code) in &cases {
        assert_eq!(
            close_code(&ws, &alice, *offer, frames).await,
            *code,
            "{case}"
        );
    }

    // After all that, the service answers.
    let mut raw = open(&ws, &alice, Some(BROWSER_OFFER)).await;
    raw.send_frame(true, true, TEXT, &ping).await.unwrap();
    assert!(raw.recv_text(2 * SECOND).await.unwrap().0.contains("pong"));
    ws.shutdown().await;
}

/// An independent client nobody here wrote, compression on: Python's
/// `websockets` (`tests/clients/ws_deflate.py`).
#[tokio::test]
#[cfg_attr(
    missing = "python-websockets",
    ignore = "needs Python websockets (pip install websockets)"
)]
async fn python_websockets_negotiates_and_round_trips_compressed() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let script = integration_tests::process::workspace_root().join("tests/clients/ws_deflate.py");
    let url = format!("ws://{}/ws?token={}", ws.addr, alice.access);
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(30 * SECOND, run)
        .await
        .expect("the client finished")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(summary["header"], ANSWER, "{summary}");
    assert_eq!(
        summary["extensions"],
        json!(["PerMessageDeflate"]),
        "{summary}"
    );
    assert_eq!(summary["hello"], "connected");
    assert_eq!(summary["echo_equal"], true, "{summary}");
    assert_eq!(summary["pong"], "pong");
    // Compressed both ways: the 16 KiB echo crossed in far fewer bytes.
    let size = summary["echo_size"].as_u64().unwrap();
    assert!(size > 16_000, "{summary}");
    for way in ["echo_wire_in", "echo_wire_out"] {
        let bytes = summary[way].as_u64().unwrap();
        assert!(bytes * 4 < size, "{way}: {summary}");
    }
    ws.shutdown().await;
}

/// Security review 2, finding 9: RFC 6455 §5.2 fails the connection for a
/// reserved bit that no extension defines, RSV2 and RSV3 on a compressed
/// frame too (they were passed over before).
#[tokio::test]
async fn rsv2_or_rsv3_on_a_compressed_frame_fails_the_connection() {
    let ws = default_ws().await;
    let alice = ws.user("alice").await;
    let ping = ws_raw::compress(br#"{"type":"ping"}"#);
    for (bit, name) in [(0x20_u8, "RSV2"), (0x10, "RSV3")] {
        let mut raw = open(&ws, &alice, Some(BROWSER_OFFER)).await;
        let mut bytes = ws_raw::frame(true, true, TEXT, &ping);
        bytes[0] |= bit;
        raw.send_bytes(&bytes).await.unwrap();
        assert_eq!(raw.expect_close(2 * SECOND).await.unwrap(), 1002, "{name}");
    }
    ws.shutdown().await;
}

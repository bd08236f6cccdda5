//! The handshake: tokens, origins, the request id.

use super::*;

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

    // Contract v3: no token at all is no refusal: the socket is upgraded
    // and must authenticate with its first message (see first_message.rs).
    let refused = ws
        .refused(Connect::with_token("/ws").header("Authorization", "Bearer nope"))
        .await;
    assert_eq!(refused.status, 401, "bad bearer");

    // A revoked session's unexpired token is refused too.
    let bob = ws.user("bob").await;
    ws.auth
        .sessions
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

//! Each `JWT_ALG` end to end through one app's REST and WebSocket services,
//! on both databases: the service makes its first key in the algorithm,
//! publishes it with that key type's JWK members (checked by an independent
//! library that verifies our tokens with nothing but the JWKS), signs login
//! and refresh tokens with it, and both services accept those tokens and
//! refuse the same token under another algorithm's name.

use std::time::Duration;

use authd::Config;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::Algorithm;
use integration_tests::app::{Backend, TestApp, spawn_app};
use integration_tests::ws_client::{Connect, WsClient};
use serde_json::{Value, json};

const SECOND: Duration = Duration::from_secs(1);

integration_tests::on_both!(
    std::future::ready;
    rs256_end_to_end,
    ps256_end_to_end,
    es256_end_to_end,
    eddsa_end_to_end
);

pub async fn rs256_end_to_end(backend: Backend) {
    end_to_end(backend, Algorithm::Rs256).await;
}

pub async fn ps256_end_to_end(backend: Backend) {
    end_to_end(backend, Algorithm::Ps256).await;
}

pub async fn es256_end_to_end(backend: Backend) {
    end_to_end(backend, Algorithm::Es256).await;
}

pub async fn eddsa_end_to_end(backend: Backend) {
    end_to_end(backend, Algorithm::EdDsa).await;
}

fn part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// `token` with its header's `alg` replaced, its payload and signature kept.
fn renamed(token: &str, alg: &str) -> String {
    let mut header = part(token, 0);
    header["alg"] = json!(alg);
    let rest = token.split_once('.').expect("three parts").1;
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

async fn socket(app: &TestApp, access: &str) -> Result<WsClient, u16> {
    let path = format!("/ws?token={access}");
    match Connect::with_token(&path).open(app.ws_addr).await.unwrap() {
        Ok(mut client) => {
            let hello = client.recv_json(5 * SECOND).await.unwrap();
            assert_eq!(hello["type"], "connected", "{hello}");
            Ok(client)
        }
        Err(refused) => Err(refused.status),
    }
}

/// What the independent library makes of the JWKS and a token.
fn library_verifies(jwk: &Value, token: &str, alg: Algorithm) -> bool {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).expect("a JWK");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("a key from the JWK");
    let library_alg = match alg {
        Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::Ps256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
    };
    let mut validation = jsonwebtoken::Validation::new(library_alg);
    validation.set_issuer(&["auth"]);
    validation.set_audience(&["api"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
}

async fn end_to_end(backend: Backend, alg: Algorithm) {
    let app = spawn_app(
        backend,
        Config {
            jwt_alg: alg,
            ..Config::default()
        },
    )
    .await;

    let r = app.get("/api/.well-known/jwks.json").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    let keys = r.json()["keys"].clone();
    let [jwk] = keys.as_array().expect("keys").as_slice() else {
        panic!("one key: {keys}");
    };
    let mut members: Vec<&str> = jwk
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    let (kty, expected): (&str, &[&str]) = match alg {
        Algorithm::Rs256 | Algorithm::Ps256 => ("RSA", &["alg", "e", "kid", "kty", "n", "use"]),
        Algorithm::Es256 => ("EC", &["alg", "crv", "kid", "kty", "use", "x", "y"]),
        Algorithm::EdDsa => ("OKP", &["alg", "crv", "kid", "kty", "use", "x"]),
    };
    assert_eq!(members, expected, "{jwk}");
    assert_eq!(
        (&jwk["kty"], &jwk["alg"], &jwk["use"]),
        (&json!(kty), &json!(alg.as_str()), &json!("sig"))
    );
    match alg {
        Algorithm::Es256 => assert_eq!(jwk["crv"], "P-256"),
        Algorithm::EdDsa => assert_eq!(jwk["crv"], "Ed25519"),
        Algorithm::Rs256 | Algorithm::Ps256 => assert_eq!(jwk["e"], "AQAB"),
    }

    // Login and refresh tokens: signed in the algorithm, by the published key.
    let alice = app.signed_in("alice").await;
    assert_eq!(
        part(&alice.access, 0),
        json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": jwk["kid"]})
    );
    assert!(
        library_verifies(jwk, &alice.access, alg),
        "{alg}: the library refused our token"
    );
    assert_eq!(app.protected(&alice.access).await.status, 200);
    let r = app.refresh(&alice.refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let refreshed = r.access_token();
    assert_eq!(part(&refreshed, 0)["alg"], alg.as_str());
    // A password login: `amr` says so, and a refresh keeps it.
    assert_eq!(part(&alice.access, 1)["amr"], json!(["pwd"]));
    assert_eq!(part(&refreshed, 1)["amr"], json!(["pwd"]));
    assert!(library_verifies(jwk, &refreshed, alg));
    assert_eq!(app.protected(&refreshed).await.status, 200);

    // The WebSocket service: admits the token, takes the refreshed one in a reauth.
    let mut client = socket(&app, &alice.access).await.expect("admitted");
    client
        .send_json(&json!({"type": "reauth", "access": refreshed}))
        .await
        .unwrap();
    assert_eq!(
        client.recv_json(5 * SECOND).await.unwrap()["type"],
        "reauth_success"
    );

    // The same token under every other algorithm's name: refused by both services.
    for other in Algorithm::ALL.into_iter().filter(|a| *a != alg) {
        let forged = renamed(&alice.access, other.as_str());
        app.protected(&forged)
            .await
            .assert_problem(401, "invalid_token");
        assert_eq!(
            socket(&app, &forged).await.err(),
            Some(401),
            "{alg} as {other}"
        );
        client
            .send_json(&json!({"type": "reauth", "access": forged}))
            .await
            .unwrap();
        let answer = client.recv_json(5 * SECOND).await.unwrap();
        assert_eq!(
            (&answer["type"], &answer["payload"]["code"]),
            (&json!("error"), &json!("reauth_failed")),
            "{alg} as {other}: {answer}"
        );
    }
    // Still open, on the refreshed token.
    client.send_json(&json!({"type": "ping"})).await.unwrap();
    assert_eq!(client.recv_json(5 * SECOND).await.unwrap()["type"], "pong");
    client.close().await;
}

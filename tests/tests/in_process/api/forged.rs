//! Every kind of forged or broken access token the contract lists gets 401.

use authd::Config;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::app::{Backend, TestApp, spawn_app, test_signing_key};
use integration_tests::clock::unix_now;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

integration_tests::on_both!(std::future::ready; forged_tokens_are_refused);

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn claims(user_id: &str, sid: &str) -> Value {
    let now = unix_now();
    json!({
        "iss": "auth", "aud": "api", "sub": user_id, "sid": sid, "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now, "nbf": now, "exp": now + 600, "username": "alice",
    })
}

fn rs256(claims: &Value, kid: &str) -> String {
    let pem = test_signing_key().to_pkcs8_pem().unwrap();
    let key = EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let r = app.protected(token).await;
    assert_eq!(r.status, 401, "{what}: {}", r.text);
    r.assert_problem(401, "invalid_token");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\""),
        "{what}"
    );
}

pub async fn forged_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let s = app.signed_in("alice").await;
    let sid = app
        .get("/api/sessions")
        .bearer(&s.access)
        .send()
        .await
        .json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kid = test_signing_key().kid().to_owned();
    let good = claims(&s.user_id, &sid);

    // The crafting itself is right: a well-formed token of ours passes.
    assert_eq!(
        app.protected(&rs256(&good, &kid)).await.status,
        200,
        "control token"
    );

    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
        b64(&good)
    );
    assert_refused(&app, &none, "alg none").await;

    let public_pem = test_signing_key().public_key().to_spki_pem().unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.typ = Some("at+jwt".into());
    hs.kid = Some(kid.clone());
    let hs256 =
        jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(public_pem.as_bytes())).unwrap();
    assert_refused(&app, &hs256, "HS256 with the public key").await;

    assert_refused(&app, &rs256(&good, "unknown-kid"), "unknown kid").await;
    let other = tokio::task::spawn_blocking(|| {
        integration_tests::keys::fixed_key(integration_tests::keys::STRANGER)
    })
    .await
    .unwrap();
    let other_pem = other.to_pkcs8_pem().unwrap();
    let other_key = EncodingKey::from_rsa_pem(other_pem.expose_secret().as_bytes()).unwrap();
    let mut other_header = Header::new(Algorithm::RS256);
    other_header.typ = Some("at+jwt".into());
    other_header.kid = Some(kid.clone());
    let wrong_key = jsonwebtoken::encode(&other_header, &good, &other_key).unwrap();
    assert_refused(&app, &wrong_key, "signed by another key under our kid").await;

    for missing in ["sub", "sid", "exp", "iss", "aud", "jti"] {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(missing);
        assert_refused(&app, &rs256(&c, &kid), &format!("missing {missing}")).await;
    }
    let mut c = good.clone();
    c["exp"] = json!(unix_now() - 120);
    assert_refused(&app, &rs256(&c, &kid), "expired").await;
    let mut c = good.clone();
    c["nbf"] = json!(unix_now() + 600);
    assert_refused(&app, &rs256(&c, &kid), "not yet valid").await;
    let mut c = good.clone();
    c["iss"] = json!("someone-else");
    assert_refused(&app, &rs256(&c, &kid), "wrong issuer").await;
    let mut c = good.clone();
    c["aud"] = json!("another-api");
    assert_refused(&app, &rs256(&c, &kid), "wrong audience").await;
    let mut c = good.clone();
    c["sub"] = json!("not-a-uuid");
    assert_refused(&app, &rs256(&c, &kid), "malformed sub").await;

    // Tampered payload under a valid signature.
    let parts: Vec<&str> = s.access.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["username"] = json!("mallory");
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    assert_refused(&app, &tampered, "tampered payload").await;

    for broken in ["abc", "abc.def", "a.b.c.d", "!!!.???.***"] {
        assert_refused(
            &app,
            broken,
            &format!("not three base64url parts: {broken:?}"),
        )
        .await;
    }
    let mut big = good.clone();
    big["pad"] = json!("x".repeat(9 * 1024));
    assert_refused(&app, &rs256(&big, &kid), "oversized").await;
}

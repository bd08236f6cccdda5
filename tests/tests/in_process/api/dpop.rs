//! Sender-constrained sessions (contract v3, "DPoP") at the REST edge, on
//! both databases, with proofs written by the tests' own ES256 code
//! (`integration_tests::dpop`): a bound login, the bound token only as
//! `DPoP` with a matching proof, refreshes only by the same key (nothing
//! rotated otherwise), `jti` replays (at another process too), refused
//! proofs at login, and unbound sessions left as they were.

use authd::Config;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::app::{Backend, TestApp, spawn_app, spawn_sibling};
use integration_tests::client::{PASSWORD, TestResponse};
use integration_tests::clock::unix_now;
use integration_tests::dpop::{DpopKey, fresh_jti, token_hash};
use serde_json::{Value, json};

integration_tests::on_both!(
    std::future::ready;
    a_login_with_a_proof_binds_the_session_and_its_tokens,
    a_bound_token_works_only_as_dpop_with_a_matching_proof,
    a_copied_bound_token_logs_nobody_out,
    a_bound_family_refreshes_only_with_its_key,
    refused_login_proofs_are_400_never_an_unbound_login,
    sockets_take_bound_tokens_only_with_their_proofs,
    unbound_sessions_ignore_proofs_at_refresh_and_stay_bearer
);

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn url(app: &TestApp, path: &str) -> String {
    format!("http://{}{path}", app.api_addr)
}

async fn bound_login(app: &TestApp, name: &str, key: &DpopKey) -> TestResponse {
    let r = app.register(name, PASSWORD).await;
    assert_eq!(r.status, 201, "{}", r.text);
    app.post("/api/login")
        .header("dpop", &key.proof("POST", &url(app, "/api/login"), None))
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
}

async fn protected(app: &TestApp, scheme: &str, token: &str, proof: Option<&str>) -> TestResponse {
    let mut req = app
        .get("/api/protected")
        .header("authorization", &format!("{scheme} {token}"));
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    req.send().await
}

async fn refresh(app: &TestApp, cookie: &str, proof: Option<&str>) -> TestResponse {
    let mut req = app.post("/api/refresh").refresh_cookie(cookie);
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    req.send().await
}

pub async fn a_login_with_a_proof_binds_the_session_and_its_tokens(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let key = DpopKey::new();
    let r = bound_login(&app, "alice", &key).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["tokenType"], "DPoP");
    let access = r.access_token();
    assert_eq!(claims(&access)["cnf"], json!({"jkt": key.thumbprint()}));
    let proof = key.proof("GET", &url(&app, "/api/sessions"), Some(&access));
    let sessions = app
        .get("/api/sessions")
        .header("authorization", &format!("DPoP {access}"))
        .header("dpop", &proof)
        .send()
        .await;
    assert_eq!(sessions.status, 200, "{}", sessions.text);
    assert_eq!(sessions.json()[0]["dpop"], true);
    // An unbound login says Bearer and carries no cnf.
    let plain = app.signed_in("bob").await;
    assert_eq!(claims(&plain.access).get("cnf"), None);
}

pub async fn a_bound_token_works_only_as_dpop_with_a_matching_proof(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let key = DpopKey::new();
    let access = bound_login(&app, "alice", &key).await.access_token();
    let target = url(&app, "/api/protected");
    let good = key.proof("GET", &target, Some(&access));
    assert_eq!(
        protected(&app, "DPoP", &access, Some(&good)).await.status,
        200
    );

    let refused = |r: TestResponse, challenge: &str| {
        r.assert_problem(401, "invalid_token");
        assert_eq!(r.header("www-authenticate"), Some(challenge), "{}", r.text);
    };
    let token_challenge = r#"DPoP error="invalid_token""#;
    let proof_challenge = r#"DPoP error="invalid_dpop_proof""#;
    // The same token as Bearer, with a proof or without.
    let fresh = key.proof("GET", &target, Some(&access));
    refused(
        protected(&app, "Bearer", &access, Some(&fresh)).await,
        token_challenge,
    );
    refused(
        protected(&app, "Bearer", &access, None).await,
        token_challenge,
    );
    // As DPoP without a proof, with a replayed one, another token's ath,
    // another method, another URL, another key.
    refused(
        protected(&app, "DPoP", &access, None).await,
        token_challenge,
    );
    refused(
        protected(&app, "DPoP", &access, Some(&good)).await,
        proof_challenge,
    );
    let other_ath = key.proof("GET", &target, Some("another token"));
    refused(
        protected(&app, "DPoP", &access, Some(&other_ath)).await,
        proof_challenge,
    );
    let post = key.proof("POST", &target, Some(&access));
    refused(
        protected(&app, "DPoP", &access, Some(&post)).await,
        proof_challenge,
    );
    let elsewhere = key.proof("GET", &url(&app, "/api/sessions"), Some(&access));
    refused(
        protected(&app, "DPoP", &access, Some(&elsewhere)).await,
        proof_challenge,
    );
    let thief = DpopKey::new().proof("GET", &target, Some(&access));
    refused(
        protected(&app, "DPoP", &access, Some(&thief)).await,
        proof_challenge,
    );
    // An unbound token is not taken as DPoP.
    let bob = app.signed_in("bob").await;
    let bobs = key.proof("GET", &target, Some(&bob.access));
    assert_eq!(
        protected(&app, "DPoP", &bob.access, Some(&bobs))
            .await
            .status,
        401
    );
    assert_eq!(
        protected(&app, "Bearer", &bob.access, None).await.status,
        200
    );
}

/// `POST /api/logout` with a bound token as its only credential: as
/// `Bearer`, or as `DPoP` without its key's proof, it identifies nobody (the
/// answer is the same 204, and the session lives on); with the proof it
/// logs out.
pub async fn a_copied_bound_token_logs_nobody_out(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let key = DpopKey::new();
    let access = bound_login(&app, "alice", &key).await.access_token();
    let target = url(&app, "/api/protected");
    let logout = |scheme: &str, proof: Option<String>| {
        let mut req = app
            .post("/api/logout")
            .header("authorization", &format!("{scheme} {access}"));
        if let Some(proof) = proof {
            req = req.header("dpop", &proof);
        }
        req.send()
    };
    let logout_url = url(&app, "/api/logout");
    let thief = DpopKey::new().proof("POST", &logout_url, Some(&access));
    for r in [
        logout("Bearer", None).await,
        logout("DPoP", None).await,
        logout("DPoP", Some(thief)).await,
    ] {
        assert_eq!(r.status, 204, "{}", r.text);
        let proof = key.proof("GET", &target, Some(&access));
        assert_eq!(
            protected(&app, "DPoP", &access, Some(&proof)).await.status,
            200,
            "the session lives on"
        );
    }
    let own = key.proof("POST", &logout_url, Some(&access));
    assert_eq!(logout("DPoP", Some(own)).await.status, 204);
    let proof = key.proof("GET", &target, Some(&access));
    assert_eq!(
        protected(&app, "DPoP", &access, Some(&proof)).await.status,
        401,
        "logged out with its key's proof"
    );
}

pub async fn a_bound_family_refreshes_only_with_its_key(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let other = spawn_sibling(&app).await;
    let key = DpopKey::new();
    let r = bound_login(&app, "alice", &key).await;
    let cookie = r.refresh_cookie().expect("cookie");
    let target = url(&app, "/api/refresh");
    let without = refresh(&app, &cookie, None).await;
    without.assert_problem(401, "invalid_dpop_proof");
    assert_eq!(
        without.header("www-authenticate"),
        Some(r#"DPoP error="invalid_dpop_proof""#)
    );
    let thief = DpopKey::new().proof("POST", &target, None);
    refresh(&app, &cookie, Some(&thief))
        .await
        .assert_problem(401, "invalid_dpop_proof");
    // Nothing was rotated: the cookie refreshes with the key.
    let proof = key.proof("POST", &target, None);
    let r = refresh(&app, &cookie, Some(&proof)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["tokenType"], "DPoP");
    assert_eq!(claims(&r.access_token())["cnf"]["jkt"], key.thumbprint());
    let next = r.refresh_cookie().expect("rotated");
    // The same proof again, at the other process: a replay.
    let at_other = format!("http://{}/api/refresh", other.api_addr);
    let replayed = key.sign(
        &key.header(),
        &json!({"jti": "once", "htm": "POST", "htu": at_other, "iat": unix_now()}),
    );
    assert_eq!(refresh(&other, &next, Some(&replayed)).await.status, 200);
    let again = key.sign(
        &key.header(),
        &json!({"jti": "once", "htm": "POST", "htu": target, "iat": unix_now()}),
    );
    let after = r.refresh_cookie().unwrap();
    refresh(&app, &after, Some(&again))
        .await
        .assert_problem(401, "invalid_dpop_proof");
}

pub async fn refused_login_proofs_are_400_never_an_unbound_login(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let r = app.register("alice", PASSWORD).await;
    assert_eq!(r.status, 201);
    let key = DpopKey::new();
    let login = url(&app, "/api/login");
    let claims_now = |htm: &str, htu: &str, iat: i64| json!({"jti": fresh_jti(), "htm": htm, "htu": htu, "iat": iat});
    let now = unix_now();
    let refused = [
        (
            "htm",
            key.sign(&key.header(), &claims_now("GET", &login, now)),
        ),
        (
            "htu",
            key.sign(
                &key.header(),
                &claims_now("POST", &url(&app, "/api/refresh"), now),
            ),
        ),
        (
            "stale",
            key.sign(&key.header(), &claims_now("POST", &login, now - 120)),
        ),
        (
            "future",
            key.sign(&key.header(), &claims_now("POST", &login, now + 120)),
        ),
        (
            "typ",
            key.sign(
                &json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk()}),
                &claims_now("POST", &login, now),
            ),
        ),
        (
            "another key's jwk",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": DpopKey::new().jwk()}),
                &claims_now("POST", &login, now),
            ),
        ),
        ("garbage", "not.a.proof".to_owned()),
    ];
    for (what, proof) in &refused {
        let r = app
            .post("/api/login")
            .header("dpop", proof)
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await;
        r.assert_problem(400, "invalid_dpop_proof");
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"DPoP error="invalid_dpop_proof""#),
            "{what}"
        );
        assert_eq!(r.refresh_cookie(), None, "{what}: no session");
    }
    // A proof is used once at login, across processes.
    let other = spawn_sibling(&app).await;
    let shared = claims_now("POST", &login, now);
    let first = key.sign(&key.header(), &shared);
    let r = app
        .post("/api/login")
        .header("dpop", &first)
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut again = shared.clone();
    again["htu"] = json!(url(&other, "/api/login"));
    let replay = key.sign(&key.header(), &again);
    other
        .post("/api/login")
        .header("dpop", &replay)
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .assert_problem(400, "invalid_dpop_proof");
}

pub async fn unbound_sessions_ignore_proofs_at_refresh_and_stay_bearer(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let alice = app.signed_in("alice").await;
    let r = refresh(&app, &alice.refresh, Some("not.a.proof")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["tokenType"], "Bearer");
    let key = DpopKey::new();
    let next = r.refresh_cookie().unwrap();
    let proof = key.proof("POST", &url(&app, "/api/refresh"), None);
    let r = refresh(&app, &next, Some(&proof)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["tokenType"], "Bearer");
    assert_eq!(claims(&r.access_token()).get("cnf"), None);
    let _ = token_hash("unused");
}

/// Sockets (contract v3): a bound token opens one only with a proof (the
/// handshake's `DPoP` header, or the first message's `dpop`: `htm` `GET`,
/// `htu` the socket URL, `ath` the token), and a bound socket's `reauth`
/// carries one too; without, or by another key, it is refused.
pub async fn sockets_take_bound_tokens_only_with_their_proofs(backend: Backend) {
    use integration_tests::ws_client::{Connect, WsClient};
    use std::time::Duration;
    let app = spawn_app(backend, Config::default()).await;
    let key = DpopKey::new();
    let r = bound_login(&app, "alice", &key).await;
    let bound = r.access_token();
    let ws_url = format!("http://{}/ws", app.ws_addr);

    // The handshake: no proof, another key, a proof for another URL: refused.
    let path = format!("/ws?token={bound}");
    let thief = DpopKey::new().proof("GET", &ws_url, Some(&bound));
    let elsewhere = key.proof("GET", &url(&app, "/api/protected"), Some(&bound));
    for (what, proof) in [
        ("no proof", None),
        ("another key", Some(thief)),
        ("another URL", Some(elsewhere)),
    ] {
        let mut connect = Connect::with_token(&path);
        if let Some(p) = proof {
            connect = connect.header("dpop", p);
        }
        let refused = connect.open(app.ws_addr).await.expect("connecting");
        assert!(refused.is_err(), "{what}: a bound token opened a socket");
    }
    // With its proof it opens.
    let proof = key.proof("GET", &ws_url, Some(&bound));
    let mut socket = Connect::with_token("/ws")
        .header("authorization", format!("Bearer {bound}"))
        .header("dpop", proof)
        .open(app.ws_addr)
        .await
        .expect("connecting")
        .expect("admitted with its proof");
    let hello = socket.recv_json(Duration::from_secs(5)).await.unwrap();
    assert_eq!(hello["type"], "connected", "{hello}");

    // reauth with a newer token of the family: with a proof by the key it
    // works; without one, or by another key, it is refused.
    let cookie = r.refresh_cookie().unwrap();
    let refreshed = refresh(
        &app,
        &cookie,
        Some(&key.proof("POST", &url(&app, "/api/refresh"), None)),
    )
    .await;
    let newer = refreshed.access_token();
    for (what, proof) in [
        ("none", None),
        (
            "another key",
            Some(DpopKey::new().proof("GET", &ws_url, Some(&newer))),
        ),
        (
            "another token's ath",
            Some(key.proof("GET", &ws_url, Some(&bound))),
        ),
    ] {
        let mut message = json!({"type": "reauth", "access": newer});
        if let Some(p) = proof {
            message["dpop"] = json!(p);
        }
        socket.send_json(&message).await.unwrap();
        let answer = socket.recv_json(Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            answer["payload"]["code"], "reauth_failed",
            "{what}: {answer}"
        );
    }
    let message =
        json!({"type": "reauth", "access": newer, "dpop": key.proof("GET", &ws_url, Some(&newer))});
    socket.send_json(&message).await.unwrap();
    let answer = socket.recv_json(Duration::from_secs(5)).await.unwrap();
    assert_eq!(answer["type"], "reauth_success", "{answer}");

    // The first message: without a proof 4001, with one connected.
    let mut first = Connect::with_token("/ws")
        .open(app.ws_addr)
        .await
        .unwrap()
        .unwrap();
    first
        .send_json(&json!({"type": "auth", "access": newer}))
        .await
        .unwrap();
    let error = first.recv_json(Duration::from_secs(5)).await.unwrap();
    assert_eq!(error["payload"]["code"], "auth_failed", "{error}");
    assert_eq!(
        first.expect_close(Duration::from_secs(5)).await.unwrap(),
        Some(4001)
    );
    let mut first = Connect::with_token("/ws")
        .open(app.ws_addr)
        .await
        .unwrap()
        .unwrap();
    let proof = key.proof("GET", &ws_url, Some(&newer));
    first
        .send_json(&json!({"type": "auth", "access": newer, "dpop": proof}))
        .await
        .unwrap();
    let hello = first.recv_json(Duration::from_secs(5)).await.unwrap();
    assert_eq!(hello["type"], "connected", "{hello}");
    // An unbound token still connects without a proof.
    let bob = app.signed_in("bob").await;
    let _ = WsClient::connected(app.ws_addr, &bob.access).await;
}

/// An independent client nobody here wrote the proofs of: Python's
/// `cryptography` and `websockets` (`tests/clients/ws_dpop.py`): a bound
/// login, a socket opened with a first-message proof, a refresh and a reauth
/// with proofs, and a reauth by another key refused.
mod an_independent_python_client_binds_its_session_and_socket {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[cfg_attr(
        any(missing = "python-websockets", missing = "python-cryptography"),
        ignore = "needs Python websockets and cryptography (pip install websockets cryptography)"
    )]
    async fn sqlite() {
        super::python_client(integration_tests::app::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[cfg_attr(
        any(
            missing = "python-websockets",
            missing = "python-cryptography",
            missing = "postgres"
        ),
        ignore = "needs Python websockets and cryptography, and PostgreSQL"
    )]
    async fn postgres() {
        super::python_client(integration_tests::app::Backend::Postgres).await;
    }
}

async fn python_client(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let script = integration_tests::process::workspace_root().join("tests/clients/ws_dpop.py");
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(format!("http://{}", app.api_addr))
        .arg(format!("ws://{}/ws", app.ws_addr))
        .arg("alice")
        .arg(PASSWORD)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the client finished")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(seen["login"], 200, "{seen}");
    assert_eq!(seen["token_type"], "DPoP", "{seen}");
    assert_eq!(seen["hello"], "connected", "{seen}");
    assert_eq!(seen["refresh"], 200, "{seen}");
    assert_eq!(seen["reauth_other_key"], "reauth_failed", "{seen}");
    assert_eq!(seen["reauth"], "reauth_success", "{seen}");
}

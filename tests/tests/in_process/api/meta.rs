//! Health, JWKS, the OpenAPI document, Swagger UI, and the sabotage test.

use authd::Config;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::app::{Backend, spawn_app};
use serde_json::{Value, json};

integration_tests::on_both!(
    std::future::ready;
    health_is_ok,
    jwks_publishes_the_signing_key,
    documents_are_served,
    database_gone_is_degraded
);

pub async fn health_is_ok(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let r = app.get("/api/health").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"status": "ok", "database": "ok", "revocations": "ok"})
    );
}

pub async fn jwks_publishes_the_signing_key(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let r = app.get("/api/.well-known/jwks.json").send().await;
    assert_eq!(r.status, 200);
    let keys = r.json()["keys"].clone();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");
    assert!(key["n"].as_str().unwrap().len() > 300);
    let s = app.signed_in("alice").await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(s.access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "at+jwt", "kid": key["kid"]})
    );
}

pub async fn documents_are_served(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let r = app.get("/api/openapi.json").send().await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/register",
        "/api/login",
        "/api/refresh",
        "/api/logout",
        "/api/sessions",
        "/api/sessions/{id}",
        "/api/protected",
        "/api/health",
        "/api/.well-known/jwks.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} in the document");
    }
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(&adapters::http::openapi_json()).unwrap()
    );
    let r = app.get("/api/docs").send().await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text.contains("swagger"), "Swagger UI");
}

/// Sabotage: the database goes away under a running app.
pub async fn database_gone_is_degraded(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let s = app.signed_in("alice").await;
    app.running
        .database
        .connection()
        .clone()
        .close()
        .await
        .unwrap();
    let r = app.get("/api/health").send().await;
    assert_eq!(r.status, 503, "{}", r.text);
    // The revocation feed counts as down only after a few seconds.
    assert_eq!(
        r.json(),
        json!({"status": "degraded", "database": "down", "revocations": "ok"})
    );
    // Storage-backed operations answer `503 database_unavailable` with
    // `Retry-After` (contract v3; a 500 before), revealing nothing else.
    let r = app
        .post("/api/login")
        .json(&json!({"username": "alice", "password": "whatever1"}))
        .send()
        .await;
    r.assert_problem(503, "database_unavailable");
    assert!(r.header("retry-after").is_some(), "{}", r.text);
    assert!(
        !r.text.to_lowercase().contains("pool") && !r.text.to_lowercase().contains("sql"),
        "{}",
        r.text
    );
    // Token checks need no database; the server is still up.
    assert_eq!(app.protected(&s.access).await.status, 200);
    assert_eq!(app.get("/api/health").send().await.status, 503);
}

/// The committed document matches the code.
#[test]
fn committed_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let generated = adapters::http::openapi_json();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is out of date; regenerate it with:\n    cargo run -p authd -- openapi > openapi/openapi.json"
    );
}

/// Security review, finding 6: Swagger UI runs only its own scripts (each
/// inline script's hash is in the policy, nothing else may run), and
/// `API_DOCS=false` turns it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_runs_only_its_own_scripts() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let app = spawn_app(Backend::Sqlite, Config::default()).await;
    let r = app.get("/api/docs").send().await;
    assert_eq!(r.status, 200);
    let policy = r
        .header("content-security-policy")
        .expect("a policy")
        .to_owned();
    let script_src = policy
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .expect("script-src");
    assert!(!script_src.contains("unsafe"), "{policy}");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    // As the HTML parser reads them: a script element ends at the first `</script>`.
    let (mut scripts, mut rest) = (0, r.text.as_str());
    while let Some(start) = rest.find("<script") {
        let open = start + rest[start..].find('>').unwrap() + 1;
        let end = open + rest[open..].find("</script>").unwrap();
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(&rest[open..end]));
        assert!(
            script_src.contains(&format!("'sha256-{hash}'")),
            "an unhashed script"
        );
        scripts += 1;
        rest = &rest[end..];
    }
    assert_eq!(script_src.matches("'sha256-").count(), scripts);
    assert!(scripts >= 2, "the bundle and the start-up script");
    // The same policy on a second visit (it is computed once).
    let again = app.get("/api/docs").send().await;
    assert_eq!(
        again.header("content-security-policy"),
        Some(policy.as_str())
    );

    let off = spawn_app(
        Backend::Sqlite,
        Config {
            api_docs: false,
            ..Config::default()
        },
    )
    .await;
    off.get("/api/docs")
        .send()
        .await
        .assert_problem(404, "not_found");
    assert_eq!(off.get("/api/openapi.json").send().await.status, 200);
}

/// The document states the username and password rules (security review,
/// finding 5: a schema-driven fuzzer read `{"username": ""}` as valid), and
/// they are the rules the service applies.
#[test]
fn the_document_states_the_credential_rules() {
    let doc: serde_json::Value = serde_json::from_str(&adapters::http::openapi_json()).unwrap();
    let props = &doc["components"]["schemas"]["Credentials"]["properties"];
    let username = &props["username"];
    assert_eq!(username["minLength"], 3);
    assert_eq!(username["maxLength"], 64);
    assert_eq!(username["pattern"], domain::Username::PATTERN);
    assert_eq!(props["password"]["minLength"], 8);
    assert_eq!(props["password"]["maxLength"], 1024);
    for name in [
        "ab",
        "abc",
        &"a".repeat(64),
        &"a".repeat(65),
        "a b",
        "ok_name.-1",
    ] {
        let by_rule = (3..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        assert_eq!(domain::Username::parse(name).is_ok(), by_rule, "{name}");
    }
}

/// `DEMO_DIR`: the project's `web/` served by the API, the demo page at `/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_dir_serves_the_demo_page_at_the_root() {
    let web = integration_tests::process::workspace_root().join("web");
    let app = spawn_app(
        Backend::Sqlite,
        Config {
            demo_dir: Some(web.clone()),
            ..Config::default()
        },
    )
    .await;
    let page = std::fs::read_to_string(web.join("client-demo.html")).unwrap();
    let root = app.get("/").send().await;
    assert_eq!(root.status, 200);
    assert_eq!(
        root.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(root.text, page, "no index.html: / is client-demo.html");
    let js = app.get("/auth-client.js").send().await;
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    // The client as written, DPoP included (served unchanged).
    let source = std::fs::read_to_string(web.join("auth-client.js")).unwrap();
    assert_eq!(js.text, source, "/auth-client.js is not web/auth-client.js");
    assert!(js.text.contains("dpop+jwt"), "a client without DPoP proofs");
    for hidden in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/.git",
        "/nope.html",
    ] {
        assert_eq!(app.get(hidden).send().await.status, 404, "{hidden}");
    }
    // The API is still the API.
    assert_eq!(app.get("/api/health").send().await.status, 200);
}

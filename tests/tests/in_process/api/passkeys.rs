//! Passkeys (contract v3, "Passkeys") on both databases, driven by a
//! software authenticator (`integration_tests::authenticator`): both
//! ceremonies with ES256 and EdDSA, a ceremony begun at one process and
//! finished at another, single use, every check a ceremony must pass, a
//! cloned authenticator, `excludeCredentials` and `passkey_exists`, deletion
//! (of the passkey, of the account), the login throttle, and a login while
//! the database is gone.

use adapters::persistence::{AuditFilter, SeaAuditLog};
use application::ports::SecurityEventKind;
use authd::Config;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::app::{Backend, TestApp, spawn_app, spawn_sibling};
use integration_tests::authenticator::{Algorithm, SoftAuthenticator, Tweaks};
use integration_tests::client::{PASSWORD, SignedIn, TestResponse};
use serde_json::{Value, json};

integration_tests::on_both!(
    std::future::ready;
    register_and_log_in_with_es256_and_eddsa,
    a_ceremony_begun_at_one_process_finishes_at_another,
    registration_and_login_ids_are_used_once_and_by_their_user,
    ceremonies_that_do_not_verify_are_refused,
    a_cloned_authenticator_is_refused_and_audited,
    known_credentials_are_excluded_and_refused_twice,
    a_deleted_passkey_or_account_logs_in_no_more,
    registration_needs_the_password,
    failed_passkey_logins_count_towards_the_throttle,
    a_passkey_login_without_the_database_is_503
);

const ORIGIN: &str = "http://localhost:3000";

async fn app(backend: Backend) -> TestApp {
    spawn_app(backend, Config::default()).await
}

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

async fn registration_options(app: &TestApp, user: &SignedIn) -> (String, Value) {
    let r = app
        .post("/api/passkeys/registration/options")
        .bearer(&user.access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    (
        body["registrationId"]
            .as_str()
            .expect("registrationId")
            .to_owned(),
        body["publicKey"].clone(),
    )
}

async fn finish_registration(
    app: &TestApp,
    user: &SignedIn,
    id: &str,
    credential: &Value,
) -> TestResponse {
    app.post("/api/passkeys/registration")
        .bearer(&user.access)
        .json(&json!({ "registrationId": id, "credential": credential }))
        .send()
        .await
}

/// Registers a passkey of `authenticator` for `user`; returns its `Passkey`.
async fn register(app: &TestApp, user: &SignedIn, authenticator: &mut SoftAuthenticator) -> Value {
    let (id, options) = registration_options(app, user).await;
    let credential = authenticator.create(&options, ORIGIN);
    let r = finish_registration(app, user, &id, &credential).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

async fn login_options(app: &TestApp) -> (String, Value) {
    let r = app
        .post("/api/login/passkey/options")
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    (
        body["loginId"].as_str().expect("loginId").to_owned(),
        body["publicKey"].clone(),
    )
}

async fn finish_login(app: &TestApp, id: &str, credential: &Value) -> TestResponse {
    app.post("/api/login/passkey")
        .json(&json!({ "loginId": id, "credential": credential }))
        .send()
        .await
}

async fn passkey_login(
    app: &TestApp,
    authenticator: &mut SoftAuthenticator,
    tweaks: &Tweaks,
) -> TestResponse {
    let (id, options) = login_options(app).await;
    let credential = authenticator.get_with(&options, ORIGIN, tweaks);
    finish_login(app, &id, &credential).await
}

async fn audit_kinds(app: &TestApp) -> Vec<SecurityEventKind> {
    SeaAuditLog::new(app.running.database.clone())
        .recent(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .expect("reading audit_events")
        .into_iter()
        .map(|r| r.event.kind)
        .collect()
}

pub async fn register_and_log_in_with_es256_and_eddsa(backend: Backend) {
    let app = app(backend).await;
    for (name, alg, synced, amr) in [
        ("es256", Algorithm::Es256, false, ["hwk", "mfa"]),
        ("eddsa", Algorithm::EdDsa, false, ["hwk", "mfa"]),
        ("synced", Algorithm::Es256, true, ["swk", "mfa"]),
    ] {
        let user = app.signed_in(name).await;
        let (_, options) = registration_options(&app, &user).await;
        // The contract's options: an opaque handle, the three algorithms,
        // a discoverable credential with user verification, no attestation.
        let handle = URL_SAFE_NO_PAD
            .decode(options["user"]["id"].as_str().unwrap())
            .unwrap();
        assert!(handle.len() >= 16);
        assert_ne!(handle, name.as_bytes());
        assert_ne!(handle, user.user_id.as_bytes().to_vec());
        assert_eq!(options["user"]["name"], name);
        assert_eq!(options["rp"], json!({"id": "localhost", "name": "authd"}));
        let algs: Vec<i64> = options["pubKeyCredParams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["alg"].as_i64().unwrap())
            .collect();
        for alg in [-7, -8, -257] {
            assert!(algs.contains(&alg), "{algs:?}");
        }
        assert_eq!(options["timeout"], 300_000);
        assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(
            options["authenticatorSelection"]["userVerification"],
            "required"
        );
        assert_eq!(options["attestation"], "none");
        let challenge = URL_SAFE_NO_PAD
            .decode(options["challenge"].as_str().unwrap())
            .unwrap();
        assert!(challenge.len() >= 16);

        let mut authenticator = if synced {
            SoftAuthenticator::synced(alg)
        } else {
            SoftAuthenticator::new(alg)
        };
        let passkey = register(&app, &user, &mut authenticator).await;
        assert_eq!(passkey["name"], "Passkey");
        assert_eq!(passkey["lastUsedAt"], Value::Null);
        assert_eq!(passkey["backedUp"], synced);

        let (_, login) = login_options(&app).await;
        assert_eq!(login["rpId"], "localhost");
        assert_eq!(login["userVerification"], "required");
        assert_eq!(login["allowCredentials"], json!([]));
        assert_eq!(login["timeout"], 300_000);

        let r = passkey_login(&app, &mut authenticator, &Tweaks::default()).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert!(r.refresh_cookie().is_some());
        let access = r.access_token();
        assert_eq!(claims(&access)["amr"], json!(amr), "{name}");
        assert_eq!(claims(&access)["sub"], user.user_id.as_str());
        let sessions = app.get("/api/sessions").bearer(&access).send().await.json();
        let mine = sessions
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["current"] == true)
            .expect("the passkey session");
        assert_eq!(mine["mfa"], true);
        let account = app.get("/api/account").bearer(&access).send().await.json();
        assert_eq!(account["mfa"]["passkeys"], 1);
        let list = app.get("/api/passkeys").bearer(&access).send().await.json();
        assert!(list[0]["lastUsedAt"].is_i64(), "{list}");
        // The session refreshes with the same methods.
        let cookie = r.refresh_cookie().unwrap();
        let refreshed = app.refresh(&cookie).await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.text);
        assert_eq!(claims(&refreshed.access_token())["amr"], json!(amr));
    }
    let kinds = audit_kinds(&app).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == SecurityEventKind::PasskeyAdded)
            .count(),
        3
    );
}

pub async fn a_ceremony_begun_at_one_process_finishes_at_another(backend: Backend) {
    let app = app(backend).await;
    let other = spawn_sibling(&app).await;
    let user = app.signed_in("alice").await;
    let mut authenticator = SoftAuthenticator::new(Algorithm::Es256);
    let (id, options) = registration_options(&app, &user).await;
    let credential = authenticator.create(&options, ORIGIN);
    let r = finish_registration(&other, &user, &id, &credential).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (id, options) = login_options(&other).await;
    let credential = authenticator.get(&options, ORIGIN);
    let r = finish_login(&app, &id, &credential).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // ... and once only: the other process cannot finish it again.
    let r = finish_login(&other, &id, &credential).await;
    r.assert_problem(401, "invalid_passkey");
}

pub async fn registration_and_login_ids_are_used_once_and_by_their_user(backend: Backend) {
    let app = app(backend).await;
    let alice = app.signed_in("alice").await;
    let bob = app.signed_in("bob").await;
    let mut authenticator = SoftAuthenticator::new(Algorithm::Es256);
    let (id, options) = registration_options(&app, &alice).await;
    let credential = authenticator.create(&options, ORIGIN);
    // Bob cannot finish Alice's ceremony (nor take it from her).
    finish_registration(&app, &bob, &id, &credential)
        .await
        .assert_problem(404, "not_found");
    let r = finish_registration(&app, &alice, &id, &credential).await;
    assert_eq!(r.status, 201, "{}", r.text);
    finish_registration(&app, &alice, &id, &credential)
        .await
        .assert_problem(404, "not_found");
    finish_registration(&app, &alice, &"A".repeat(43), &credential)
        .await
        .assert_problem(404, "not_found");

    let (id, options) = login_options(&app).await;
    let credential = authenticator.get(&options, ORIGIN);
    assert_eq!(finish_login(&app, &id, &credential).await.status, 200);
    finish_login(&app, &id, &credential)
        .await
        .assert_problem(401, "invalid_passkey");

    // Five minutes later a ceremony is gone.
    let (id, options) = login_options(&app).await;
    let credential = authenticator.get(&options, ORIGIN);
    app.clock.advance(std::time::Duration::from_secs(301));
    finish_login(&app, &id, &credential)
        .await
        .assert_problem(401, "invalid_passkey");
}

pub async fn ceremonies_that_do_not_verify_are_refused(backend: Backend) {
    let app = app(backend).await;
    let user = app.signed_in("alice").await;
    let refusals = [
        (
            "wrong rpId",
            Tweaks {
                rp_id: Some("evil.example".into()),
                ..Tweaks::default()
            },
        ),
        (
            "UP clear",
            Tweaks {
                user_present: false,
                ..Tweaks::default()
            },
        ),
        (
            "UV clear",
            Tweaks {
                user_verified: false,
                ..Tweaks::default()
            },
        ),
        (
            "type",
            Tweaks {
                client_data_type: Some("webauthn.get".into()),
                ..Tweaks::default()
            },
        ),
        (
            "credential type",
            Tweaks {
                credential_type: Some("password".into()),
                ..Tweaks::default()
            },
        ),
        (
            "another challenge",
            Tweaks {
                challenge: Some(URL_SAFE_NO_PAD.encode([7u8; 32])),
                ..Tweaks::default()
            },
        ),
    ];
    for (what, tweaks) in &refusals {
        let mut authenticator = SoftAuthenticator::new(Algorithm::Es256);
        let (id, options) = registration_options(&app, &user).await;
        let credential = authenticator.create_with(&options, ORIGIN, tweaks);
        finish_registration(&app, &user, &id, &credential)
            .await
            .assert_problem(400, "invalid_passkey");
        let _ = what;
    }
    let mut authenticator = SoftAuthenticator::new(Algorithm::Es256);
    let (id, options) = registration_options(&app, &user).await;
    let credential = authenticator.create(&options, "https://evil.example");
    finish_registration(&app, &user, &id, &credential)
        .await
        .assert_problem(400, "invalid_passkey");
    assert_eq!(
        app.get("/api/passkeys")
            .bearer(&user.access)
            .send()
            .await
            .json(),
        json!([])
    );

    let mut authenticator = SoftAuthenticator::new(Algorithm::EdDsa);
    register(&app, &user, &mut authenticator).await;
    let login_refusals = [
        (
            "wrong rpId",
            Tweaks {
                rp_id: Some("evil.example".into()),
                ..Tweaks::default()
            },
        ),
        (
            "UP clear",
            Tweaks {
                user_present: false,
                ..Tweaks::default()
            },
        ),
        (
            "UV clear",
            Tweaks {
                user_verified: false,
                ..Tweaks::default()
            },
        ),
        (
            "type",
            Tweaks {
                client_data_type: Some("webauthn.create".into()),
                ..Tweaks::default()
            },
        ),
        (
            "another challenge",
            Tweaks {
                challenge: Some(URL_SAFE_NO_PAD.encode([7u8; 32])),
                ..Tweaks::default()
            },
        ),
        (
            "another user's handle",
            Tweaks {
                user_handle: Some(vec![9u8; 32]),
                ..Tweaks::default()
            },
        ),
    ];
    for (what, tweaks) in &login_refusals {
        let r = passkey_login(&app, &mut authenticator, tweaks).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        r.assert_problem(401, "invalid_passkey");
        // Each failure of a known credential takes a throttle slot.
        app.clock.advance(std::time::Duration::from_secs(15 * 60));
    }
    let (id, options) = login_options(&app).await;
    let credential = authenticator.get(&options, "https://evil.example");
    finish_login(&app, &id, &credential)
        .await
        .assert_problem(401, "invalid_passkey");
    let r = passkey_login(&app, &mut authenticator, &Tweaks::default()).await;
    assert_eq!(r.status, 200, "the genuine one still logs in: {}", r.text);
}

pub async fn a_cloned_authenticator_is_refused_and_audited(backend: Backend) {
    let app = app(backend).await;
    let user = app.signed_in("alice").await;
    let mut original = SoftAuthenticator::new(Algorithm::Es256);
    register(&app, &user, &mut original).await;
    let mut clone = original.clone();
    assert_eq!(
        passkey_login(&app, &mut clone, &Tweaks::default())
            .await
            .status,
        200
    );
    // The original signs with the counter the clone used already.
    passkey_login(&app, &mut original, &Tweaks::default())
        .await
        .assert_problem(401, "invalid_passkey");
    assert!(
        audit_kinds(&app)
            .await
            .contains(&SecurityEventKind::PasskeyCloneSuspected)
    );
    // A counter that went back is refused too; one that grew logs in.
    let back = Tweaks {
        counter: Some(0),
        ..Tweaks::default()
    };
    passkey_login(&app, &mut clone, &back)
        .await
        .assert_problem(401, "invalid_passkey");
    let ahead = Tweaks {
        counter: Some(10),
        ..Tweaks::default()
    };
    assert_eq!(passkey_login(&app, &mut clone, &ahead).await.status, 200);
}

pub async fn known_credentials_are_excluded_and_refused_twice(backend: Backend) {
    let app = app(backend).await;
    let user = app.signed_in("alice").await;
    let mut authenticator = SoftAuthenticator::new(Algorithm::Es256);
    register(&app, &user, &mut authenticator).await;
    let known = URL_SAFE_NO_PAD.encode(&authenticator.credentials()[0].id);
    let (id, options) = registration_options(&app, &user).await;
    assert_eq!(options["excludeCredentials"][0]["id"], known.as_str());
    assert_eq!(options["excludeCredentials"][0]["type"], "public-key");
    // The same credential id again (an authenticator that ignores the
    // exclusion): 409, for this user and for another.
    let again = Tweaks {
        credential_id: Some(authenticator.credentials()[0].id.clone()),
        ..Tweaks::default()
    };
    let credential = SoftAuthenticator::new(Algorithm::Es256).create_with(&options, ORIGIN, &again);
    finish_registration(&app, &user, &id, &credential)
        .await
        .assert_problem(409, "passkey_exists");
    let bob = app.signed_in("bob").await;
    let (id, options) = registration_options(&app, &bob).await;
    assert_eq!(options["excludeCredentials"], json!([]));
    let credential = SoftAuthenticator::new(Algorithm::Es256).create_with(&options, ORIGIN, &again);
    finish_registration(&app, &bob, &id, &credential)
        .await
        .assert_problem(409, "passkey_exists");
}

pub async fn a_deleted_passkey_or_account_logs_in_no_more(backend: Backend) {
    let app = app(backend).await;
    let user = app.signed_in("alice").await;
    let bob = app.signed_in("bob").await;
    let mut authenticator = SoftAuthenticator::new(Algorithm::Es256);
    let passkey = register(&app, &user, &mut authenticator).await;
    let id = passkey["id"].as_str().unwrap();
    let path = format!("/api/passkeys/{id}");
    app.delete(&path)
        .bearer(&bob.access)
        .send()
        .await
        .assert_problem(404, "not_found");
    let r = app.delete(&path).bearer(&user.access).send().await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.delete(&path)
        .bearer(&user.access)
        .send()
        .await
        .assert_problem(404, "not_found");
    passkey_login(&app, &mut authenticator, &Tweaks::default())
        .await
        .assert_problem(401, "invalid_passkey");
    assert!(
        audit_kinds(&app)
            .await
            .contains(&SecurityEventKind::PasskeyRemoved)
    );

    // The account's deletion takes its passkeys.
    let mut second = SoftAuthenticator::new(Algorithm::EdDsa);
    register(&app, &user, &mut second).await;
    let r = app
        .delete("/api/account")
        .bearer(&user.access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    passkey_login(&app, &mut second, &Tweaks::default())
        .await
        .assert_problem(401, "invalid_passkey");
    let db = app.running.database.connection();
    use sea_orm::{ConnectionTrait as _, Statement};
    let rows = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM passkeys",
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = rows.try_get("", "n").unwrap();
    assert_eq!(n, 0);
}

pub async fn registration_needs_the_password(backend: Backend) {
    let app = app(backend).await;
    let user = app.signed_in("alice").await;
    let r = app
        .post("/api/passkeys/registration/options")
        .bearer(&user.access)
        .json(&json!({ "password": "not the password at all" }))
        .send()
        .await;
    r.assert_problem(401, "invalid_credentials");
    app.post("/api/passkeys/registration/options")
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .assert_problem(401, "invalid_token");
    for _ in 0..5 {
        app.post("/api/passkeys/registration/options")
            .bearer(&user.access)
            .json(&json!({ "password": "not the password at all" }))
            .send()
            .await;
    }
    let r = app
        .post("/api/passkeys/registration/options")
        .bearer(&user.access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await;
    r.assert_problem(429, "rate_limited");
}

pub async fn failed_passkey_logins_count_towards_the_throttle(backend: Backend) {
    let app = app(backend).await;
    let user = app.signed_in("alice").await;
    let mut authenticator = SoftAuthenticator::new(Algorithm::Es256);
    register(&app, &user, &mut authenticator).await;
    let bad = Tweaks {
        user_verified: false,
        ..Tweaks::default()
    };
    for _ in 0..5 {
        passkey_login(&app, &mut authenticator, &bad)
            .await
            .assert_problem(401, "invalid_passkey");
    }
    let r = passkey_login(&app, &mut authenticator, &Tweaks::default()).await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    // The password login of that user from this address is held too.
    app.login("alice", PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
}

/// The soak (`tests/load/soak.sh`) found a passkey login answered `500`
/// while its process could not reach the database: the transaction that
/// takes the ceremony could not start, and that error was not told apart
/// from a failed statement. It is `503 database_unavailable`, like every
/// other storage-backed operation.
pub async fn a_passkey_login_without_the_database_is_503(backend: Backend) {
    let app = app(backend).await;
    let user = app.signed_in("alice").await;
    let mut authenticator = SoftAuthenticator::new(Algorithm::Es256);
    register(&app, &user, &mut authenticator).await;
    let (id, options) = login_options(&app).await;
    let credential = authenticator.get(&options, ORIGIN);
    app.running
        .database
        .connection()
        .clone()
        .close()
        .await
        .expect("closing the pool");
    let r = finish_login(&app, &id, &credential).await;
    r.assert_problem(503, "database_unavailable");
    assert!(r.header("retry-after").is_some(), "{}", r.text);
}

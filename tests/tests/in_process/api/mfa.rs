//! Two-factor login (contract v2, "Two-factor login") on both databases:
//! enrolment and its confirmation, `403 mfa_required`, `POST /api/login/mfa`
//! with codes and recovery codes, replays, the `mfaToken`'s limits, the
//! login throttle, turning it off, and what the database holds.

use adapters::persistence::{AuditFilter, SeaAuditLog};
use application::ports::{Clock as _, SecurityEventKind};
use authd::Config;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use integration_tests::app::{Backend, TestApp, spawn_app};
use integration_tests::client::{PASSWORD, SignedIn, TestResponse};
use integration_tests::totp::{code_at, decode_base32};
use serde_json::{Value, json};

integration_tests::on_both!(
    std::future::ready;
    enrolment_then_a_login_in_two_steps,
    the_database_holds_no_readable_secret_or_recovery_code,
    five_wrong_codes_use_the_token_up_and_count_towards_the_throttle,
    right_passwords_between_wrong_codes_do_not_reset_the_throttle,
    recovery_codes_work_once_and_bodies_are_checked,
    one_code_logs_in_once_however_many_requests_race,
    the_token_is_bound_to_the_client,
    turning_it_off_needs_the_password_and_a_code_and_keeps_sessions,
    enrolment_needs_the_password_and_counts_wrong_ones,
    a_password_change_ends_pending_mfa_tokens,
    five_wrong_confirming_codes_void_the_enrolment,
    account_changes_from_a_session_before_enrolment_need_a_code,
    deleting_the_account_deletes_its_second_factor,
    the_status_says_what_is_on_and_how_many_codes_are_left,
    the_account_says_who_the_caller_is_and_its_second_factors,
    second_factors_are_capped_per_account_across_addresses
);

/// The step's length, to move the clock to the next code.
const STEP: std::time::Duration = std::time::Duration::from_secs(30);

fn now(app: &TestApp) -> i64 {
    app.clock.now().unix_seconds()
}

fn code_now(app: &TestApp, secret: &str) -> String {
    code_at(secret, now(app))
}

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

async fn begin(app: &TestApp, access: &str) -> TestResponse {
    app.post("/api/mfa/totp")
        .bearer(access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
}

async fn confirm(app: &TestApp, access: &str, code: &str) -> TestResponse {
    app.post("/api/mfa/totp/confirm")
        .bearer(access)
        .json(&json!({ "code": code }))
        .send()
        .await
}

async fn second(app: &TestApp, body: &Value) -> TestResponse {
    app.post("/api/login/mfa").json(body).send().await
}

/// Signs `name` up with two-factor login on; returns the session, the
/// base32 secret and the recovery codes.
async fn enrolled(app: &TestApp, name: &str) -> (SignedIn, String, Vec<String>) {
    let user = app.signed_in(name).await;
    let r = begin(app, &user.access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = r.json()["secret"].as_str().expect("secret").to_owned();
    let r = confirm(app, &user.access, &code_now(app, &secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let codes = r.json()["recoveryCodes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("a string").to_owned())
        .collect();
    (user, secret, codes)
}

/// A login with the right password: the `mfaToken` of its `403 mfa_required`.
async fn password_step(app: &TestApp, name: &str) -> String {
    let r = app.login(name, PASSWORD).await;
    r.assert_problem(403, "mfa_required");
    assert_eq!(r.set_cookie(), None, "no cookie before the second factor");
    assert_eq!(r.json()["methods"], json!(["totp"]), "{}", r.text);
    r.json()["mfaToken"].as_str().expect("mfaToken").to_owned()
}

pub async fn enrolment_then_a_login_in_two_steps(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let alice = app.signed_in("alice").await;
    app.post("/api/mfa/totp")
        .send()
        .await
        .assert_problem(401, "invalid_token");
    confirm(&app, &alice.access, "123456")
        .await
        .assert_problem(404, "not_found");

    let r = begin(&app, &alice.access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["expiresIn"], 600);
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert_eq!(decode_base32(&secret).len(), 20, "160 bits");
    let uri = body["otpauthUri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")),
        "{uri}"
    );
    let wrong = code_at(&secret, now(&app) + 300);
    confirm(&app, &alice.access, &wrong)
        .await
        .assert_problem(400, "invalid_mfa_code");
    // Pending: the password alone still logs in.
    assert_eq!(app.login("alice", PASSWORD).await.status, 200);
    let confirming = code_now(&app, &secret);
    let r = confirm(&app, &alice.access, &confirming).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["recoveryCodes"].as_array().map(Vec::len), Some(10));
    begin(&app, &alice.access)
        .await
        .assert_problem(409, "mfa_already_enabled");
    confirm(&app, &alice.access, &confirming)
        .await
        .assert_problem(404, "not_found");

    let token = password_step(&app, "alice").await;
    // The confirming code's step is spent.
    second(&app, &json!({"mfaToken": token, "code": confirming}))
        .await
        .assert_problem(401, "invalid_mfa_code");
    app.clock.advance(STEP);
    let code = code_now(&app, &secret);
    let r = second(&app, &json!({"mfaToken": token, "code": code})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let access = r.access_token();
    let refresh = r.refresh_cookie().expect("the refresh cookie");
    assert_eq!(claims(&access)["amr"], json!(["pwd", "otp"]));
    assert_eq!(app.protected(&access).await.status, 200);
    // The token is spent, and so is the code.
    second(&app, &json!({"mfaToken": token, "code": code}))
        .await
        .assert_problem(401, "mfa_token_invalid");
    let again = password_step(&app, "alice").await;
    second(&app, &json!({"mfaToken": again, "code": code}))
        .await
        .assert_problem(401, "invalid_mfa_code");

    // The family keeps its two factors through a refresh; the list says which.
    let r = app.refresh(&refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(claims(&r.access_token())["amr"], json!(["pwd", "otp"]));
    let r = app.get("/api/sessions").bearer(&access).send().await;
    let rows = r.json();
    let rows = rows.as_array().expect("rows");
    let mfa: Vec<bool> = rows.iter().map(|s| s["mfa"].as_bool().unwrap()).collect();
    assert_eq!(
        (
            mfa.iter().filter(|m| **m).count(),
            mfa.iter().filter(|m| !**m).count()
        ),
        (1, 2),
        "{rows:?}"
    );
    // Turning it on ended no session.
    assert_eq!(app.protected(&alice.access).await.status, 200);
}

/// Every byte string stored in `table.column`.
async fn stored_bytes(app: &TestApp, table: &str, column: &str) -> Vec<Vec<u8>> {
    use sea_orm::ConnectionTrait as _;
    let db = app.running.database.connection();
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT {column} FROM {table}"),
        ))
        .await
        .expect("select");
    rows.iter()
        .map(|r| r.try_get_by_index::<Vec<u8>>(0).expect("bytes"))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub async fn the_database_holds_no_readable_secret_or_recovery_code(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let (_, secret, codes) = enrolled(&app, "dora").await;
    let raw = decode_base32(&secret);
    let sealed = stored_bytes(&app, "totp_secrets", "sealed_secret").await;
    let hashes = stored_bytes(&app, "recovery_codes", "code_hash").await;
    assert_eq!((sealed.len(), hashes.len()), (1, 10));
    let mut needles: Vec<Vec<u8>> = vec![raw.clone(), secret.as_bytes().to_vec()];
    for code in &codes {
        needles.push(code.as_bytes().to_vec());
        needles.push(code.replace('-', "").into_bytes());
    }
    for stored in sealed.iter().chain(&hashes) {
        for needle in &needles {
            assert!(!contains(stored, needle), "a readable secret is stored");
        }
        // Not even a third of the secret in the clear.
        assert!(!raw.windows(7).any(|w| contains(stored, w)));
    }
    // The SQLite file (and its write-ahead log) as a thief would copy it.
    if let Some(path) = app.config.database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap();
        for file in [path.to_owned(), format!("{path}-wal")] {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            for needle in &needles {
                assert!(!contains(&bytes, needle), "{file} holds a readable secret");
            }
        }
    }
}

pub async fn five_wrong_codes_use_the_token_up_and_count_towards_the_throttle(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let (_, secret, _) = enrolled(&app, "erin").await;
    app.clock.advance(STEP * 2);
    let token = password_step(&app, "erin").await;
    let wrong = code_at(&secret, now(&app) + 600);
    for _ in 0..5 {
        second(&app, &json!({"mfaToken": token, "code": wrong}))
            .await
            .assert_problem(401, "invalid_mfa_code");
    }
    // Used up: the right code no longer helps.
    second(
        &app,
        &json!({"mfaToken": token, "code": code_now(&app, &secret)}),
    )
    .await
    .assert_problem(401, "mfa_token_invalid");
    // The five wrong codes were five failed logins (LOGIN_MAX_FAILURES).
    let r = app.login("erin", PASSWORD).await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
}

pub async fn right_passwords_between_wrong_codes_do_not_reset_the_throttle(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let (_, secret, _) = enrolled(&app, "olga").await;
    app.clock.advance(STEP * 2);
    let wrong = code_at(&secret, now(&app) + 600);
    // Two wrong codes per token, a right password for each new token.
    for _ in 0..2 {
        let token = password_step(&app, "olga").await;
        for _ in 0..2 {
            second(&app, &json!({"mfaToken": token, "code": wrong}))
                .await
                .assert_problem(401, "invalid_mfa_code");
        }
    }
    let token = password_step(&app, "olga").await;
    second(&app, &json!({"mfaToken": token, "code": wrong}))
        .await
        .assert_problem(401, "invalid_mfa_code");
    // Five wrong codes in the window: even the right code waits now.
    second(
        &app,
        &json!({"mfaToken": token, "code": code_now(&app, &secret)}),
    )
    .await
    .assert_problem(429, "rate_limited");
}

pub async fn recovery_codes_work_once_and_bodies_are_checked(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let (_, secret, codes) = enrolled(&app, "fred").await;
    assert!(
        codes
            .iter()
            .all(|c| c.len() == 23 && c.matches('-').count() == 3),
        "{codes:?}"
    );
    let token = password_step(&app, "fred").await;
    for bad in [
        json!({"mfaToken": token}),
        json!({"mfaToken": token, "code": "123456", "recoveryCode": codes[0]}),
        json!({"mfaToken": token, "code": 123_456}),
        json!({"code": "123456"}),
    ] {
        second(&app, &bad).await.assert_problem(400, "bad_request");
    }
    let typed = codes[0].to_uppercase();
    let r = second(&app, &json!({"mfaToken": token, "recoveryCode": typed})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(claims(&r.access_token())["amr"], json!(["pwd", "otp"]));
    let token = password_step(&app, "fred").await;
    second(&app, &json!({"mfaToken": token, "recoveryCode": codes[0]}))
        .await
        .assert_problem(401, "invalid_mfa_code");
    // The TOTP secret still works beside the codes.
    app.clock.advance(STEP);
    let r = second(
        &app,
        &json!({"mfaToken": token, "code": code_now(&app, &secret)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

pub async fn one_code_logs_in_once_however_many_requests_race(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            login_max_failures: 50,
            ..Config::default()
        },
    )
    .await;
    let (_, secret, _) = enrolled(&app, "gina").await;
    app.clock.advance(STEP);
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(password_step(&app, "gina").await);
    }
    let code = code_now(&app, &secret);
    let bodies: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"mfaToken": t, "code": code}))
        .collect();
    let answers = futures_util::future::join_all(bodies.iter().map(|b| second(&app, b))).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    for r in answers.iter().filter(|r| r.status != 200) {
        r.assert_problem(401, "invalid_mfa_code");
    }
}

pub async fn the_token_is_bound_to_the_client(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let (_, _, codes) = enrolled(&app, "hana").await;
    let token = password_step(&app, "hana").await;
    let r = app
        .post("/api/login/mfa")
        .header("user-agent", "another browser")
        .json(&json!({"mfaToken": token, "recoveryCode": codes[0]}))
        .send()
        .await;
    r.assert_problem(401, "mfa_token_invalid");
    for junk in ["", "not a token", &"A".repeat(43)] {
        second(&app, &json!({"mfaToken": junk, "recoveryCode": codes[0]}))
            .await
            .assert_problem(401, "mfa_token_invalid");
    }
    // Five minutes.
    app.clock.advance(std::time::Duration::from_secs(300));
    second(&app, &json!({"mfaToken": token, "recoveryCode": codes[0]}))
        .await
        .assert_problem(401, "mfa_token_invalid");
    // None of it spent the code.
    let token = password_step(&app, "hana").await;
    let r = second(&app, &json!({"mfaToken": token, "recoveryCode": codes[0]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

pub async fn turning_it_off_needs_the_password_and_a_code_and_keeps_sessions(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let (ivan, secret, codes) = enrolled(&app, "ivan").await;
    let off = |body: Value| {
        app.delete("/api/mfa/totp")
            .bearer(&ivan.access)
            .json(&body)
            .send()
    };
    // Contract v3: the password alone is not enough.
    off(json!({ "password": PASSWORD }))
        .await
        .assert_problem(400, "bad_request");
    off(json!({ "password": PASSWORD, "code": "123456", "recoveryCode": codes[0] }))
        .await
        .assert_problem(400, "bad_request");
    off(json!({ "password": "not the password", "code": code_now(&app, &secret) }))
        .await
        .assert_problem(401, "invalid_credentials");
    // The code that confirmed the enrolment is used.
    off(json!({ "password": PASSWORD, "code": code_now(&app, &secret) }))
        .await
        .assert_problem(401, "invalid_mfa_code");
    app.clock.advance(STEP);
    let r = off(json!({ "password": PASSWORD, "code": code_now(&app, &secret) })).await;
    assert_eq!(r.status, 204, "{}", r.text);
    off(json!({ "password": PASSWORD, "recoveryCode": codes[1] }))
        .await
        .assert_problem(404, "not_found");
    assert_eq!(app.protected(&ivan.access).await.status, 200);
    assert!(
        stored_bytes(&app, "recovery_codes", "code_hash")
            .await
            .is_empty()
    );
    let r = app.login("ivan", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(claims(&r.access_token())["amr"], json!(["pwd"]));
}

pub async fn deleting_the_account_deletes_its_second_factor(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let (jane, _, codes) = enrolled(&app, "jane").await;
    let (_, _, kept) = enrolled(&app, "kurt").await;
    password_step(&app, "jane").await;
    // Her session began before the enrolment: a code too (contract v3).
    let r = app
        .delete("/api/account")
        .bearer(&jane.access)
        .json(&json!({ "password": PASSWORD, "recoveryCode": codes[0] }))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // One transaction took the secret, the codes and the pending login;
    // the other user's are untouched.
    assert_eq!(
        stored_bytes(&app, "totp_secrets", "sealed_secret")
            .await
            .len(),
        1
    );
    assert_eq!(
        stored_bytes(&app, "recovery_codes", "code_hash")
            .await
            .len(),
        kept.len()
    );
    assert!(
        stored_bytes(&app, "mfa_tokens", "token_hash")
            .await
            .is_empty()
    );
    // The name registers again, as a user without two-factor login.
    let again = app.signed_in("jane").await;
    assert_eq!(claims(&again.access)["amr"], json!(["pwd"]));
}

async fn status(app: &TestApp, access: &str) -> Value {
    let r = app.get("/api/mfa/totp").bearer(access).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

pub async fn the_status_says_what_is_on_and_how_many_codes_are_left(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    app.get("/api/mfa/totp")
        .send()
        .await
        .assert_problem(401, "invalid_token");
    let lars = app.signed_in("lars").await;
    let off =
        json!({"enabled": false, "enabledAt": null, "pending": false, "recoveryCodesLeft": 0});
    assert_eq!(status(&app, &lars.access).await, off);
    let r = begin(&app, &lars.access).await;
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        status(&app, &lars.access).await,
        json!({"enabled": false, "enabledAt": null, "pending": true, "recoveryCodesLeft": 0})
    );
    let r = confirm(&app, &lars.access, &code_now(&app, &secret)).await;
    let codes = r.json()["recoveryCodes"].clone();
    let on = status(&app, &lars.access).await;
    assert_eq!(
        (&on["enabled"], &on["pending"], &on["recoveryCodesLeft"]),
        (&json!(true), &json!(false), &json!(10)),
        "{on}"
    );
    assert!(
        (on["enabledAt"].as_i64().unwrap() - now(&app)).abs() <= 1,
        "{on}"
    );
    let token = password_step(&app, "lars").await;
    let r = second(&app, &json!({"mfaToken": token, "recoveryCode": codes[2]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(status(&app, &lars.access).await["recoveryCodesLeft"], 9);
    let r = app
        .delete("/api/mfa/totp")
        .bearer(&lars.access)
        .json(&json!({ "password": PASSWORD, "recoveryCode": codes[3] }))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(status(&app, &lars.access).await, off);
}

/// `GET /api/account` (contract v3): who the caller is, since when, and
/// the second factors the account has.
pub async fn the_account_says_who_the_caller_is_and_its_second_factors(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    app.get("/api/account")
        .send()
        .await
        .assert_problem(401, "invalid_token");
    let mona = app.signed_in("Mona").await;
    let r = app.get("/api/account").bearer(&mona.access).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let id = claims(&mona.access)["sub"].clone();
    assert_eq!(body["id"], id, "{body}");
    assert_eq!(body["username"], "Mona", "as registered");
    assert_eq!(
        (&body["email"], &body["emailVerified"]),
        (&Value::Null, &json!(false))
    );
    assert!(
        (body["createdAt"].as_i64().expect("createdAt") - now(&app)).abs() <= 1,
        "{body}"
    );
    assert_eq!(body["mfa"], json!({"totp": false, "passkeys": 0}));

    let (nils, _, _) = enrolled(&app, "nils").await;
    let r = app.get("/api/account").bearer(&nils.access).send().await;
    assert_eq!(r.json()["mfa"], json!({"totp": true, "passkeys": 0}));
    // Another user's token shows that user, never Mona.
    assert_ne!(r.json()["id"], id);

    // A deleted user's token is refused like any invalid token.
    let r = app
        .delete("/api/account")
        .bearer(&mona.access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.get("/api/account")
        .bearer(&mona.access)
        .send()
        .await
        .assert_problem(401, "invalid_token");
}

/// Contract v3: `POST /api/mfa/totp` takes the password (a stolen access
/// token alone cannot enrol an attacker's authenticator), and wrong ones
/// count towards the login throttle.
pub async fn enrolment_needs_the_password_and_counts_wrong_ones(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let olga = app.signed_in("olga").await;
    let try_begin = |password: &'static str| {
        app.post("/api/mfa/totp")
            .bearer(&olga.access)
            .json(&json!({ "password": password }))
            .send()
    };
    app.post("/api/mfa/totp")
        .bearer(&olga.access)
        .send()
        .await
        .assert_problem(400, "bad_request");
    for _ in 0..5 {
        try_begin("not the password")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    // LOGIN_MAX_FAILURES (5): now even the right password waits.
    try_begin(PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
    app.login("olga", PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
    assert_eq!(
        status(&app, &olga.access).await["pending"],
        json!(false),
        "nothing was begun"
    );
}

/// Security review 2, finding 5: after a password change, an `mfaToken`
/// handed out before it (a phishing relay's) no longer finishes the login.
pub async fn a_password_change_ends_pending_mfa_tokens(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let (pia, _, codes) = enrolled(&app, "pia").await;
    let relayed = password_step(&app, "pia").await;
    let r = app
        .post("/api/password")
        .bearer(&pia.access)
        .json(&json!({
            "currentPassword": PASSWORD,
            "newPassword": "a brand new passphrase",
            // The session began before the enrolment: a code too (contract v3).
            "recoveryCode": codes[1],
        }))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    second(
        &app,
        &json!({"mfaToken": relayed, "recoveryCode": codes[0]}),
    )
    .await
    .assert_problem(401, "mfa_token_invalid");
    // The recovery code was not spent: a new login with the new password uses it.
    let r = app.login("pia", "a brand new passphrase").await;
    let token = r.json()["mfaToken"].as_str().expect("mfaToken").to_owned();
    let r = second(&app, &json!({"mfaToken": token, "recoveryCode": codes[0]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Security review 2, finding 4: five wrong codes at the confirmation void
/// the pending enrolment (`404 not_found` after that), and count towards
/// the login throttle.
pub async fn five_wrong_confirming_codes_void_the_enrolment(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let quinn = app.signed_in("quinn").await;
    let r = begin(&app, &quinn.access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = r.json()["secret"].as_str().expect("secret").to_owned();
    let right = code_now(&app, &secret);
    let wrong = ["000000", "111111", "222222"]
        .into_iter()
        .find(|c| *c != right)
        .expect("a wrong code");
    for _ in 0..5 {
        confirm(&app, &quinn.access, wrong)
            .await
            .assert_problem(400, "invalid_mfa_code");
    }
    confirm(&app, &quinn.access, &right)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(status(&app, &quinn.access).await["pending"], json!(false));
    app.login("quinn", PASSWORD)
        .await
        .assert_problem(429, "rate_limited");
}

/// Security review 2, finding 2 (contract v3): while two-factor login is
/// on, `POST /api/password` and `DELETE /api/account` from a session that
/// began with the password alone (before enrolment) need a code; from a
/// session that began with two factors they do not.
pub async fn account_changes_from_a_session_before_enrolment_need_a_code(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let (rolf, _, codes) = enrolled(&app, "rolf").await;
    assert_eq!(claims(&rolf.access)["amr"], json!(["pwd"]));
    let change = |body: Value| {
        app.post("/api/password")
            .bearer(&rolf.access)
            .json(&body)
            .send()
    };
    let new = "a brand new passphrase";
    change(json!({"currentPassword": PASSWORD, "newPassword": new}))
        .await
        .assert_problem(401, "invalid_mfa_code");
    change(json!({"currentPassword": PASSWORD, "newPassword": new, "code": "000000", "recoveryCode": codes[0]}))
        .await
        .assert_problem(400, "bad_request");
    change(json!({"currentPassword": PASSWORD, "newPassword": new, "recoveryCode": "00000-00000-00000-00000"}))
        .await
        .assert_problem(401, "invalid_mfa_code");
    let r =
        change(json!({"currentPassword": PASSWORD, "newPassword": new, "recoveryCode": codes[0]}))
            .await;
    assert_eq!(r.status, 204, "{}", r.text);

    // A session that began with two factors deletes with the password alone.
    let r = app.login("rolf", new).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let token = r.json()["mfaToken"].as_str().expect("mfaToken").to_owned();
    let r = second(&app, &json!({"mfaToken": token, "recoveryCode": codes[1]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .delete("/api/account")
        .bearer(&r.access_token())
        .json(&json!({ "password": new }))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

/// Security review 2, finding 1 (contract v3): the password and a rotating
/// `X-Forwarded-For` behind a trusted proxy used to buy unlimited code
/// guesses (5 per address). Now 10 wrong second factors from every address
/// together lock the account's second step: `429` from a new address even
/// with the right code or a recovery code, audited `second_factor_locked`
/// once however often it is refused.
pub async fn second_factors_are_capped_per_account_across_addresses(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
            ..Config::default()
        },
    )
    .await;
    let (_, secret, recovery) = enrolled(&app, "alice").await;
    app.clock.advance(STEP);
    let via = |i: u32| format!("198.51.100.{i}");
    let password_step = |i: u32| {
        let app = &app;
        async move {
            let r = app
                .post("/api/login")
                .header("x-forwarded-for", &via(i))
                .json(&json!({"username": "alice", "password": PASSWORD}))
                .send()
                .await;
            r.assert_problem(403, "mfa_required");
            r.json()["mfaToken"].as_str().expect("mfaToken").to_owned()
        }
    };
    let second_via = |i: u32, body: Value| {
        let app = &app;
        async move {
            app.post("/api/login/mfa")
                .header("x-forwarded-for", &via(i))
                .json(&body)
                .send()
                .await
        }
    };
    let wrong = format!(
        "{:06}",
        (code_now(&app, &secret).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    for i in 0..10 {
        let token = password_step(i).await;
        second_via(i, json!({"mfaToken": token, "code": wrong}))
            .await
            .assert_problem(401, "invalid_mfa_code");
    }
    let token = password_step(10).await;
    let r = second_via(
        10,
        json!({"mfaToken": token, "code": code_now(&app, &secret)}),
    )
    .await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    second_via(10, json!({"mfaToken": token, "recoveryCode": recovery[0]}))
        .await
        .assert_problem(429, "rate_limited");
    let locked = SeaAuditLog::new(app.running.database.clone())
        .recent(&AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .expect("reading audit_events")
        .iter()
        .filter(|r| r.event.kind == SecurityEventKind::SecondFactorLocked)
        .count();
    assert_eq!(locked, 1, "audited once, quieted after");
    // The window (LOGIN_FAILURE_WINDOW) passes: the owner gets in.
    app.clock.advance(std::time::Duration::from_secs(15 * 60));
    let token = password_step(11).await;
    let r = second_via(
        11,
        json!({"mfaToken": token, "code": code_now(&app, &secret)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

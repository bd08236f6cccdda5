//! Register, login, refresh, logout.

use std::time::Duration;

use authd::Config;
use integration_tests::app::{Backend, PASSWORD, spawn_app};
use integration_tests::clock::unix_now;
use serde_json::json;

integration_tests::on_both!(
    std::future::ready;
    register_creates_a_user,
    register_errors,
    registration_closed,
    login_answers_a_token_and_the_exact_cookie,
    insecure_cookie_drops_secure,
    login_errors,
    refresh_rotates,
    refresh_errors,
    grace_replay_returns_the_same_cookie,
    reuse_revokes_the_family,
    refresh_expires,
    logout_revokes_everything,
    logout_scope_session,
    imported_bcrypt_hash_is_upgraded,
    access_tokens_end_with_their_session,
    logout_with_a_dead_refresh_token_revokes_nothing_else,
);

/// Contract v2 (security review, finding 3): a refresh cookie counts at
/// logout only when it is live. A rotated one is reuse (its family only); a
/// revoked or unknown one revokes nothing.
pub async fn logout_with_a_dead_refresh_token_revokes_nothing_else(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            refresh_reuse_grace: Duration::ZERO,
            ..Config::default()
        },
    )
    .await;
    let phone = app.signed_in("alice").await;
    let laptop = app.login("alice", PASSWORD).await;
    let laptop_refresh = laptop.refresh_cookie().unwrap();
    let rotated = app.refresh(&phone.refresh).await;
    assert_eq!(rotated.status, 200);
    let phone_now = rotated.refresh_cookie().unwrap();

    // The phone's stale token: reuse. Its family goes; the laptop stays.
    let r = app
        .post("/api/logout")
        .refresh_cookie(&phone.refresh)
        .send()
        .await;
    assert_eq!(r.status, 204);
    app.refresh(&phone_now)
        .await
        .assert_problem(401, "session_revoked");
    let laptop = app.refresh(&laptop_refresh).await;
    assert_eq!(
        laptop.status, 200,
        "the other family survives: {}",
        laptop.text
    );
    let laptop_refresh = laptop.refresh_cookie().unwrap();

    // A token of the revoked family, and junk: nothing at all.
    for dead in [phone_now.as_str(), phone.refresh.as_str(), "not-a-token"] {
        let r = app.post("/api/logout").refresh_cookie(dead).send().await;
        assert_eq!(r.status, 204);
    }
    let laptop = app.refresh(&laptop_refresh).await;
    assert_eq!(laptop.status, 200, "still alive: {}", laptop.text);

    // A live cookie still logs out everywhere.
    let laptop_refresh = laptop.refresh_cookie().unwrap();
    let r = app
        .post("/api/logout")
        .refresh_cookie(&laptop_refresh)
        .send()
        .await;
    assert_eq!(r.status, 204);
    app.protected(&laptop.access_token())
        .await
        .assert_problem(401, "invalid_token");
}

/// Contract v2: `exp` never later than the session's absolute end.
pub async fn access_tokens_end_with_their_session(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            session_max_age: Duration::from_secs(20),
            ..Config::default()
        },
    )
    .await;
    app.register("alice", PASSWORD).await;
    let r = app.login("alice", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let expires_in = body["expiresIn"].as_i64().expect("expiresIn");
    assert!((19..=20).contains(&expires_in), "{body}");
    let claims = app
        .running
        .use_cases
        .access
        .verify(&r.access_token())
        .expect("valid now");
    assert_eq!(claims.exp - claims.iat, expires_in);
    assert_eq!(body["expiresAt"].as_i64(), Some(claims.exp));
}

pub async fn register_creates_a_user(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let r = app.register("alice", PASSWORD).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let body = r.json();
    assert_eq!(body["username"], "alice");
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    // Unknown fields are ignored.
    let r = app
        .post("/api/register")
        .json(&json!({"username": "bob", "password": PASSWORD, "email": "b@example.com"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

pub async fn register_errors(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    app.register("ab", PASSWORD)
        .await
        .assert_problem(400, "invalid_username");
    app.register("has space", PASSWORD)
        .await
        .assert_problem(400, "invalid_username");
    app.register("alice", "short")
        .await
        .assert_problem(400, "weak_password");
    app.register("alice", &"x".repeat(1025))
        .await
        .assert_problem(400, "weak_password");
    assert_eq!(app.register("alice", PASSWORD).await.status, 201);
    app.register("ALICE", PASSWORD)
        .await
        .assert_problem(409, "username_taken");
    app.post("/api/register")
        .json(&json!({"username": "carol"}))
        .send()
        .await
        .assert_problem(400, "bad_request");
}

pub async fn registration_closed(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            allow_registration: false,
            ..Config::default()
        },
    )
    .await;
    app.register("alice", PASSWORD)
        .await
        .assert_problem(403, "registration_closed");
}

pub async fn login_answers_a_token_and_the_exact_cookie(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let id = app.register("alice", PASSWORD).await.json()["id"].clone();
    let r = app.login("Alice", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    let now = unix_now();
    let expires_at = body["expiresAt"].as_i64().unwrap();
    assert!(
        (expires_at - (now + 900)).abs() <= 5,
        "expiresAt {expires_at} vs now {now}"
    );
    assert_eq!(body["user"], json!({"id": id, "username": "alice"}));
    assert_eq!(body["accessToken"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let token = r.refresh_cookie().unwrap();
    assert!(token.len() >= 43, "at least 256 bits, base64url: {token}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(
        r.set_cookie().unwrap(),
        format!(
            "refreshToken={token}; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=604800"
        )
    );
}

pub async fn insecure_cookie_drops_secure(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            cookie_secure: false,
            ..Config::default()
        },
    )
    .await;
    let s = app.signed_in("alice").await;
    let r = app.refresh(&s.refresh).await;
    let token = r.refresh_cookie().unwrap();
    assert_eq!(
        r.set_cookie().unwrap(),
        format!("refreshToken={token}; HttpOnly; SameSite=Strict; Path=/api; Max-Age=604800")
    );
}

pub async fn login_errors(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    app.register("alice", PASSWORD).await;
    for r in [
        app.login("alice", "wrong password").await,
        app.login("nobody", PASSWORD).await,
    ] {
        r.assert_problem(401, "invalid_credentials");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(r.set_cookie().is_none());
    }
    // Unknown user and wrong password look the same.
    let (a, b) = (
        app.login("alice", "wrong password").await.json(),
        app.login("nobody", "x".repeat(9).as_str()).await.json(),
    );
    assert_eq!(a["detail"], b["detail"]);
    app.post("/api/login")
        .body("application/json", "{\"username\":")
        .send()
        .await
        .assert_problem(400, "bad_request");
    app.post("/api/login")
        .json(&json!({"username": 5, "password": PASSWORD}))
        .send()
        .await
        .assert_problem(400, "bad_request");
}

pub async fn refresh_rotates(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let s = app.signed_in("alice").await;
    let r = app.refresh(&s.refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["user"]["username"], "alice");
    assert_eq!(r.json()["tokenType"], "Bearer");
    let next = r.refresh_cookie().unwrap();
    assert_ne!(next, s.refresh);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(
        r.set_cookie()
            .unwrap()
            .ends_with("; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=604800")
    );
    assert_eq!(app.protected(&r.access_token()).await.status, 200);
    let again = app.refresh(&next).await;
    assert_eq!(again.status, 200, "{}", again.text);
}

pub async fn refresh_errors(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let r = app.post("/api/refresh").send().await;
    r.assert_problem(401, "refresh_missing");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    app.refresh("").await.assert_problem(401, "refresh_missing");
    let r = app.refresh("not-a-token").await;
    r.assert_problem(401, "refresh_invalid");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    app.refresh(&"A".repeat(43))
        .await
        .assert_problem(401, "refresh_invalid");
}

pub async fn grace_replay_returns_the_same_cookie(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let s = app.signed_in("alice").await;
    let first = app.refresh(&s.refresh).await;
    assert_eq!(first.status, 200);
    let current = first.refresh_cookie().unwrap();
    // A lost response: the client presents the parent again within the grace.
    let replay = app.refresh(&s.refresh).await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(
        replay.refresh_cookie().unwrap(),
        current,
        "the same current token"
    );
    assert_eq!(app.protected(&replay.access_token()).await.status, 200);
    // Nothing was revoked: the current token still rotates.
    assert_eq!(app.refresh(&current).await.status, 200);
}

pub async fn reuse_revokes_the_family(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            refresh_reuse_grace: Duration::ZERO,
            ..Config::default()
        },
    )
    .await;
    let s = app.signed_in("alice").await;
    let next = app.refresh(&s.refresh).await;
    let current = next.refresh_cookie().unwrap();
    let access = next.access_token();
    let r = app.refresh(&s.refresh).await;
    r.assert_problem(401, "refresh_reused");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    app.refresh(&current)
        .await
        .assert_problem(401, "session_revoked");
    // Access tokens of the family die with it.
    app.protected(&access)
        .await
        .assert_problem(401, "invalid_token");
    app.protected(&s.access)
        .await
        .assert_problem(401, "invalid_token");
}

pub async fn refresh_expires(backend: Backend) {
    let app = spawn_app(
        backend,
        Config {
            refresh_token_expiry: Duration::from_secs(2),
            ..Config::default()
        },
    )
    .await;
    let s = app.signed_in("alice").await;
    let r = app.refresh(&s.refresh).await;
    assert!(
        r.set_cookie().unwrap().ends_with("Max-Age=2")
            || r.set_cookie().unwrap().ends_with("Max-Age=1")
    );
    let current = r.refresh_cookie().unwrap();
    app.clock.advance(Duration::from_millis(2500));
    app.refresh(&current)
        .await
        .assert_problem(401, "refresh_expired");
}

pub async fn logout_revokes_everything(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    // Without credentials: 204 all the same, cookie cleared.
    let r = app.post("/api/logout").send().await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.set_cookie(),
        Some("refreshToken=; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=0")
    );

    let one = app.signed_in("alice").await;
    let two = app.login("alice", PASSWORD).await;
    let (two_access, two_refresh) = (two.access_token(), two.refresh_cookie().unwrap());
    let r = app
        .post("/api/logout")
        .refresh_cookie(&one.refresh)
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.set_cookie(),
        Some("refreshToken=; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=0")
    );
    app.protected(&one.access)
        .await
        .assert_problem(401, "invalid_token");
    app.protected(&two_access)
        .await
        .assert_problem(401, "invalid_token");
    app.refresh(&one.refresh)
        .await
        .assert_problem(401, "session_revoked");
    app.refresh(&two_refresh)
        .await
        .assert_problem(401, "session_revoked");

    // By bearer token alone.
    let three = app.login("alice", PASSWORD).await;
    let access = three.access_token();
    assert_eq!(
        app.post("/api/logout").bearer(&access).send().await.status,
        204
    );
    app.protected(&access)
        .await
        .assert_problem(401, "invalid_token");
    // A second logout is still 204.
    assert_eq!(
        app.post("/api/logout").bearer(&access).send().await.status,
        204
    );
}

pub async fn logout_scope_session(backend: Backend) {
    let app = spawn_app(backend, Config::default()).await;
    let one = app.signed_in("alice").await;
    let two = app.login("alice", PASSWORD).await;
    let r = app
        .post("/api/logout?scope=session")
        .refresh_cookie(&one.refresh)
        .send()
        .await;
    assert_eq!(r.status, 204);
    assert!(r.set_cookie().unwrap().ends_with("Max-Age=0"));
    app.protected(&one.access)
        .await
        .assert_problem(401, "invalid_token");
    assert_eq!(app.protected(&two.access_token()).await.status, 200);
    assert_eq!(
        app.refresh(&two.refresh_cookie().unwrap()).await.status,
        200
    );
}

pub async fn imported_bcrypt_hash_is_upgraded(backend: Backend) {
    use application::ports::UserRepository;
    let app = spawn_app(backend, Config::default()).await;
    let repo = adapters::persistence::SeaUserRepository::new(app.running.database.clone());
    let username = domain::Username::parse("legacy").unwrap();
    let user = domain::User {
        id: domain::UserId::from_uuid(uuid::Uuid::new_v4()),
        username: username.clone(),
        password_hash: domain::PasswordHash::new(
            "$2b$10$LXuaCVGEZbZYxadu7fx2ieG/AlrzGvBaDdFNj3na2ukvGWtvXyWVW",
        ),
        created_at: domain::Timestamp::from_unix_seconds(unix_now()),
    };
    repo.insert(&user).await.unwrap();
    app.login("legacy", "password1234")
        .await
        .assert_problem(401, "invalid_credentials");
    let r = app.login("legacy", "password123").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stored = repo.find_by_username(&username).await.unwrap().unwrap();
    assert!(
        stored.password_hash.as_str().starts_with("$argon2id$"),
        "upgraded: {:?}",
        stored.password_hash
    );
    assert_eq!(app.login("legacy", "password123").await.status, 200);
}

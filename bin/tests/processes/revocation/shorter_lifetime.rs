//! Security review 2, finding 6: a restart with a shorter
//! `ACCESS_TOKEN_EXPIRY` loads the revoked sessions for the new, shorter
//! horizon, while tokens signed before it live longer; so a token whose
//! lifetime exceeds the configured one plus the leeway is refused (contract
//! v3, Tokens), and a revoked session's older token cannot come back.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_restart_with_a_shorter_lifetime_older_longer_tokens_are_refused() {
    let _serial = SERIAL.lock().await;
    let keys = Keys::new();
    let url = format!("sqlite://{}?mode=rwc", keys.dir.join("authd.db").display());
    let long = spawn(
        "api-15m",
        "api",
        &url,
        &keys,
        &[("ACCESS_TOKEN_EXPIRY", "15m")],
    )
    .expect("api with 15 minutes");
    let client = ApiClient::new(format!("http://{}", long.addr));
    let kept = client.signed_in("kept").await;
    let revoked = client.signed_in("gone").await;
    let r = client
        .post("/api/logout")
        .bearer(&revoked.access)
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    drop(long);

    let short = spawn(
        "api-1m",
        "api",
        &url,
        &keys,
        &[("ACCESS_TOKEN_EXPIRY", "1m")],
    )
    .expect("api with 1 minute");
    let client = ApiClient::new(format!("http://{}", short.addr));
    for (who, token) in [
        ("a live session's", &kept.access),
        ("a revoked session's", &revoked.access),
    ] {
        let r = client.get("/api/protected").bearer(token).send().await;
        assert_eq!(
            r.status, 401,
            "{who} 15-minute token after the restart: {}",
            r.text
        );
    }
    // A token of the new lifetime works, for the session that was kept too.
    let fresh = client.signed_in("new").await;
    let r = client
        .get("/api/protected")
        .bearer(&fresh.access)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = client
        .post("/api/refresh")
        .refresh_cookie(&kept.refresh)
        .send()
        .await;
    assert_eq!(r.status, 200, "the kept session refreshes: {}", r.text);
    let r = client
        .get("/api/protected")
        .bearer(&r.access_token())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

//! DPoP in the browser (contract v3, "Sender-constrained sessions"; issue
//! 34): the demo page in headless Chromium, through Nginx, logs in with a
//! session bound to a non-extractable P-256 key that `web/auth-client.js`
//! keeps in IndexedDB. The page shows it bound, `GET /api/sessions` says so,
//! the access token's `cnf.jkt` is the key's thumbprint (computed here),
//! and every proof the page sent is checked here. The key cannot be
//! exported and outlives a reload. What a thief copies out of the browser
//! (the HttpOnly refresh cookie through WebDriver, the access token from
//! the page) is refused without the key, while the page goes on
//! refreshing, re-authenticating its socket and calling the API.
//!
//! Then the unbound paths: the page with `?dpop=off` logs in as Bearer,
//! and a client in a page without IndexedDB, or without WebCrypto, logs in
//! unbound and says why.

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use integration_tests::dpop::DpopKey;

use super::browser_session::BrowserSession;
use super::demo_page::{WAIT, act, log_out, page_events, position, status, wait_new};
use super::dpop_page::{
    binding, check_bound, check_proof, claims_of, client_without, install_probe, last_sent, sent,
    stored_key, thumbprint,
};
use super::stack::StackOptions;
use super::webdriver::Browser;
use super::{PASSWORD, header};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(
        missing = "nginx",
        missing = "openssl",
        missing = "envsubst",
        missing = "postgres",
        missing = "chromium",
        missing = "chromedriver"
    ),
    ignore = "needs nginx, openssl, envsubst, PostgreSQL, chromium and chromedriver"
)]
async fn the_demo_pages_session_is_bound_to_a_key_in_the_browser() -> Result<()> {
    const TEST: &str = "the_demo_pages_session_is_bound_to_a_key_in_the_browser";
    let session = BrowserSession::start(TEST, StackOptions::default()).await?;
    let username = session.register_user().await?;
    let mut result = bound_session(&session, &username).await;
    if result.is_ok() {
        result = unbound_sessions(&session, &username).await;
    }
    session.finish(result, "browser-dpop.png").await
}

/// The bound session, from the login to the refreshes after the thefts.
async fn bound_session(session: &BrowserSession, username: &str) -> Result<()> {
    let (browser, origin) = (&session.browser, session.origin());
    browser.goto(&format!("{origin}/")).await?;
    wait_new(browser, 0, "the initial resume attempt", WAIT, |ev| {
        position(ev, "not_signed_in").is_some()
    })
    .await?;
    install_probe(browser).await?;
    browser.type_into("#username", username).await?;
    browser.type_into("#password", PASSWORD).await?;
    let from = page_events(browser).await?.len();
    browser.click("#login-btn").await?;
    wait_new(browser, from, "login + connected", WAIT, |ev| {
        position(ev, "connected").is_some() || ev.iter().any(|(e, _)| e.starts_with("closed"))
    })
    .await
    .and_then(|ev| {
        ensure!(position(&ev, "connected").is_some(), "{ev:?}");
        Ok(())
    })?;

    // The page says bound, by its key.
    let shown = binding(browser).await?;
    let jkt = shown.jkt.clone();
    check_bound(&shown, &jkt)?;
    ensure!(
        jkt.len() == 43
            && jkt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "a thumbprint is 43 base64url characters: {jkt:?}"
    );

    // The login carried a proof by that key, and got a bound token.
    let login = last_sent(browser, "POST", "/api/login").await?;
    ensure!(login.status == 200, "{login:?}");
    check_proof(
        login.proof()?,
        &jkt,
        "POST",
        &format!("{origin}/api/login"),
        None,
    )?;
    ensure!(login.body["tokenType"] == "DPoP", "{}", login.body);
    let first_token = login.access_token()?.to_owned();
    let first = claims_of(&first_token)?;
    ensure!(
        first["cnf"]["jkt"] == jkt.as_str(),
        "the token's cnf is not the page's key: {}",
        first["cnf"]
    );

    // GET /api/sessions, the page's own query: its row is bound, and the
    // token went as `DPoP` with a proof naming it (`ath`).
    act(browser, "#sessions-btn", "sessions").await?;
    let query = last_sent(browser, "GET", "/api/sessions").await?;
    ensure!(query.status == 200 && query.scheme == "DPoP", "{query:?}");
    check_proof(
        query.proof()?,
        &jkt,
        "GET",
        &format!("{origin}/api/sessions"),
        Some(&first_token),
    )?;
    let rows = query.body.as_array().context("the sessions list")?;
    let current: Vec<&Value> = rows.iter().filter(|r| r["current"] == true).collect();
    ensure!(
        current.len() == 1 && current[0]["dpop"] == true,
        "the current session's row is not bound: {rows:?}"
    );
    let row = browser
        .eval("const li = document.querySelector('#sessions li.current'); return li && li.dataset.dpop;")
        .await?;
    ensure!(row == "true", "the page's row: {row}");

    // The key in IndexedDB: non-extractable, ECDSA P-256 for signing, and
    // the one the token names.
    check_stored_key(browser, &jkt).await?;

    steal_the_cookie_and_the_token(session, &first_token).await?;

    // A reload: the page signs in again with the refresh cookie and a proof
    // by the same key (from IndexedDB), and opens its socket with one.
    browser.goto(&format!("{origin}/")).await?;
    wait_new(browser, 0, "the resumed session", WAIT, |ev| {
        position(ev, "refreshed").is_some() || position(ev, "not_signed_in").is_some()
    })
    .await?;
    ensure!(
        status(browser).await? == "signed-in",
        "the reload signed out"
    );
    let shown = binding(browser).await?;
    check_bound(&shown, &jkt)?;
    check_stored_key(browser, &jkt).await?;
    install_probe(browser).await?;
    act(browser, "#connect-btn", "connected").await?;

    // And it keeps refreshing: a new token by the same key, the socket
    // re-authenticated with it (a proof in `reauth`), the API still served.
    let from = page_events(browser).await?.len();
    browser.click("#refresh-btn").await?;
    let ev = wait_new(
        browser,
        from,
        "refreshed, then reauth_success",
        WAIT,
        |ev| {
            matches!(
                (position(ev, "refreshed"), position(ev, "reauth_success")),
                (Some(r), Some(s)) if s > r
            )
        },
    )
    .await?;
    ensure!(
        !ev.iter()
            .any(|(e, _)| e.starts_with("closed") || e.starts_with("error")),
        "{ev:?}"
    );
    let refresh = last_sent(browser, "POST", "/api/refresh").await?;
    ensure!(refresh.status == 200, "{refresh:?}");
    check_proof(
        refresh.proof()?,
        &jkt,
        "POST",
        &format!("{origin}/api/refresh"),
        None,
    )?;
    ensure!(refresh.body["tokenType"] == "DPoP", "{}", refresh.body);
    let token = refresh.access_token()?.to_owned();
    let claims = claims_of(&token)?;
    ensure!(
        token != first_token && claims["jti"] != first["jti"],
        "no new token"
    );
    let exp = |c: &Value| c["exp"].as_i64().context("a token without exp");
    ensure!(
        exp(&claims)? >= exp(&first)? && claims["cnf"]["jkt"] == jkt.as_str(),
        "the new token: {claims}"
    );
    ensure!(claims["sid"] == first["sid"], "another session: {claims}");
    act(browser, "#protected-btn", "protected").await?;
    let call = last_sent(browser, "GET", "/api/protected").await?;
    ensure!(call.status == 200 && call.scheme == "DPoP", "{call:?}");
    check_proof(
        call.proof()?,
        &jkt,
        "GET",
        &format!("{origin}/api/protected"),
        Some(&token),
    )?;
    act(browser, "#ping-btn", "pong").await?;
    check_bound(&binding(browser).await?, &jkt)?;

    // Every proof the page sent was new.
    let proofs: Vec<String> = sent(browser)
        .await?
        .into_iter()
        .filter_map(|s| s.dpop)
        .collect();
    let mut jtis: Vec<String> = proofs
        .iter()
        .map(|p| super::dpop_page::decode_proof(p).map(|(_, c)| c["jti"].to_string()))
        .collect::<Result<_>>()?;
    let n = jtis.len();
    jtis.sort();
    jtis.dedup();
    ensure!(jtis.len() == n, "a jti used twice among {n} proofs");
    log_out(browser).await
}

async fn check_stored_key(browser: &Browser, jkt: &str) -> Result<()> {
    let key = stored_key(browser).await?;
    ensure!(
        key["isCryptoKey"] == true && key["privateExtractable"] == false,
        "the private key is extractable: {key}"
    );
    ensure!(
        key["privateExport"] == "InvalidAccessError",
        "exporting the private key gave {}",
        key["privateExport"]
    );
    ensure!(
        key["algorithm"]["name"] == "ECDSA"
            && key["algorithm"]["namedCurve"] == "P-256"
            && key["usages"] == serde_json::json!(["sign"]),
        "{key}"
    );
    ensure!(
        thumbprint(&key["publicJwk"])? == jkt,
        "IndexedDB holds another key than the session's"
    );
    Ok(())
}

/// What a thief does with what the browser gives away: the refresh
/// cookie (WebDriver reads HttpOnly cookies) and the access token (the
/// page's script can read it). Each is refused without the key, and none
/// of it rotates or ends the page's session (the reload after this
/// refreshes with that same cookie).
async fn steal_the_cookie_and_the_token(session: &BrowserSession, token: &str) -> Result<()> {
    let (browser, http, origin) = (&session.browser, &session.http, session.origin());
    // WebDriver gives the cookies of the page's URL: the refresh cookie's
    // path is /api (the reload after this leaves this page again).
    browser.goto(&format!("{origin}/api/health")).await?;
    let cookies = browser.cookies().await?;
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == "refreshToken")
        .with_context(|| format!("no refresh cookie among {} cookies", cookies.len()))?;
    ensure!(
        cookie["httpOnly"] == true && cookie["secure"] == true && cookie["path"] == "/api",
        "the refresh cookie's attributes: httpOnly {} secure {} path {}",
        cookie["httpOnly"],
        cookie["secure"],
        cookie["path"]
    );
    let value = cookie["value"]
        .as_str()
        .context("a cookie without a value")?;
    let refresh_url = format!("{origin}/api/refresh");
    let other_key = DpopKey::new();
    for proof in [None, Some(other_key.proof("POST", &refresh_url, None))] {
        let mut req = http
            .post(&refresh_url)
            .header("Cookie", format!("refreshToken={value}"));
        if let Some(proof) = &proof {
            req = req.header("DPoP", proof);
        }
        let resp = req.send().await?;
        let (code, challenge) = (resp.status(), header(&resp, "www-authenticate").to_owned());
        let problem: Value = resp.json().await.unwrap_or_default();
        let with = if proof.is_some() {
            "another key's proof"
        } else {
            "no proof"
        };
        ensure!(
            code == 401 && problem["code"] == "invalid_dpop_proof",
            "the copied cookie with {with}: {code} {problem}"
        );
        ensure!(challenge.starts_with("DPoP"), "{with}: {challenge:?}");
    }

    // The access token: as Bearer, as DPoP without a proof, as DPoP with a
    // proof (of the right ath) by another key.
    let protected = format!("{origin}/api/protected");
    let attempts = [
        ("Bearer", None),
        ("DPoP", None),
        (
            "DPoP",
            Some(other_key.proof("GET", &protected, Some(token))),
        ),
    ];
    for (scheme, proof) in attempts {
        let mut req = http
            .get(&protected)
            .header("Authorization", format!("{scheme} {token}"));
        if let Some(proof) = &proof {
            req = req.header("DPoP", proof);
        }
        let resp = req.send().await?;
        let (code, challenge) = (resp.status(), header(&resp, "www-authenticate").to_owned());
        let problem: Value = resp.json().await.unwrap_or_default();
        let what = format!("the copied token as {scheme} (proof: {})", proof.is_some());
        ensure!(code == 401, "{what}: {code} {problem}");
        if scheme == "Bearer" {
            ensure!(problem["code"] == "invalid_token", "{what}: {problem}");
        }
        ensure!(challenge.starts_with("DPoP"), "{what}: {challenge:?}");
    }
    Ok(())
}

/// The page with `?dpop=off` is unbound (Bearer: its token works for whoever
/// holds it); a client without IndexedDB or WebCrypto logs in unbound too,
/// and says why.
async fn unbound_sessions(session: &BrowserSession, username: &str) -> Result<()> {
    let (browser, origin) = (&session.browser, session.origin());
    browser.goto(&format!("{origin}/?dpop=off")).await?;
    wait_new(browser, 0, "the initial resume attempt", WAIT, |ev| {
        position(ev, "not_signed_in").is_some()
    })
    .await?;
    install_probe(browser).await?;
    browser.clear("#username").await?;
    browser.type_into("#username", username).await?;
    browser.clear("#password").await?;
    browser.type_into("#password", PASSWORD).await?;
    act(browser, "#login-btn", "connected").await?;
    let shown = binding(browser).await?;
    ensure!(
        shown.bound == "false" && shown.key == "off" && shown.text.starts_with("Bearer (unbound)"),
        "{shown:?}"
    );
    let login = last_sent(browser, "POST", "/api/login").await?;
    ensure!(login.dpop.is_none(), "a proof with DPoP off");
    ensure!(login.body["tokenType"] == "Bearer", "{}", login.body);
    let token = login.access_token()?.to_owned();
    ensure!(
        claims_of(&token)?.get("cnf").is_none(),
        "an unbound token with cnf"
    );
    let resp = session
        .http
        .get(format!("{origin}/api/protected"))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(
        resp.status() == 200,
        "the unbound token as Bearer: {}",
        resp.status()
    );
    act(browser, "#sessions-btn", "sessions").await?;
    let row = browser
        .eval("const li = document.querySelector('#sessions li.current'); return li && li.dataset.dpop;")
        .await?;
    ensure!(row == "false", "the unbound session's row: {row}");
    log_out(browser).await?;

    // No key store, no WebCrypto: unbound logins, never a failed one.
    browser.goto(&format!("{origin}/")).await?;
    for (hidden, why) in [("indexedDB", "no IndexedDB"), ("crypto", "no WebCrypto")] {
        let out = client_without(browser, hidden, username, PASSWORD).await?;
        ensure!(
            out["state"] == "unavailable"
                && out["problem"].as_str().is_some_and(|p| p.starts_with(why))
                && out["thumbprint"].is_null(),
            "without {hidden}: {out}"
        );
        ensure!(
            out["tokenType"] == "Bearer" && out["bound"] == false,
            "without {hidden}: {out}"
        );
    }
    Ok(())
}

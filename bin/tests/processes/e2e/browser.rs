//! The demo page and Swagger UI in headless Chromium, through Nginx.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};

use super::PASSWORD;
use super::browser_session::BrowserSession;
use super::demo_page::{page_events, position, wait_events};
use super::dpop_page::bound_key;
use super::stack::StackOptions;
use super::webdriver::Browser;

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
async fn demo_page_in_headless_chromium() -> Result<()> {
    const TEST: &str = "demo_page_in_headless_chromium";
    // Short tokens, so the page must refresh and reauth within the test.
    let opts = StackOptions {
        access_token_expiry: "20s",
        ws_expiry_warning: "8s",
        ..StackOptions::default()
    };
    let session = BrowserSession::start(TEST, opts).await?;
    let (browser, origin, http) = (&session.browser, session.origin(), &session.http);
    let username = session.register_user().await?;

    let mut result = drive_demo(browser, &origin, &username).await;
    if result.is_ok() {
        result = change_password_then_delete_the_account(browser).await;
    }
    if result.is_ok() {
        // The account is gone: its name logs in no more.
        let r = http
            .post(format!("{origin}/api/login"))
            .json(&serde_json::json!({"username": username, "password": NEW_PASSWORD}))
            .send()
            .await?;
        assert_eq!(r.status(), 401, "the deleted account still logs in");
    }
    if result.is_ok() {
        result = super::browser_mfa::enrol_log_in_with_two_factors_turn_off(browser).await;
    }
    if result.is_ok() {
        result = swagger_ui_renders_under_its_policy(browser, &origin).await;
    }
    // Contract v3: the page's sockets authenticate with their first
    // message, so no token is in any URL, and no log holds one.
    session.finish(result, "demo-page.png").await
}

async fn drive_demo(browser: &Browser, origin: &str, username: &str) -> Result<()> {
    browser.goto(&format!("{origin}/")).await?;
    // The page tries the (absent) refresh cookie first; wait for that to settle.
    wait_events(
        browser,
        "the initial resume attempt",
        Duration::from_secs(10),
        |ev| position(ev, "not_signed_in").is_some(),
    )
    .await?;
    // Every URL the page opens a WebSocket with, to check that none holds
    // a token (contract v3: the first message authenticates).
    browser
        .eval(
            "const Native = window.WebSocket; window.__wsUrls = [];\
             window.WebSocket = class extends Native {\
               constructor(url, protocols) { window.__wsUrls.push(String(url)); super(url, protocols); }\
             };\
             return true;",
        )
        .await?;
    browser.type_into("#username", username).await?;
    browser.type_into("#password", PASSWORD).await?;
    browser.click("#login-btn").await?;

    let events = wait_events(browser, "connected", Duration::from_secs(15), |ev| {
        position(ev, "connected").is_some() || position(ev, "failed").is_some()
    })
    .await?;
    assert!(position(&events, "failed").is_none(), "{events:?}");
    assert!(position(&events, "login").is_some(), "{events:?}");
    // DPoP is on by default: the session is bound to the page's key.
    let jkt = bound_key(browser).await?;
    let urls = browser.eval("return window.__wsUrls;").await?;
    let urls: Vec<String> = serde_json::from_value(urls)?;
    ensure!(
        !urls.is_empty()
            && urls
                .iter()
                .all(|u| !u.contains('?') && !u.contains("token")),
        "WebSocket URLs: {urls:?}"
    );
    // Chromium offered permessage-deflate and the server (through Nginx) took it.
    let connected = &events[position(&events, "connected").unwrap_or_default()].1;
    assert!(
        connected.ends_with(
            "compression: permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        ),
        "{connected}"
    );
    // A 16 KiB message there and back, compressed both ways.
    let deadline = Instant::now() + Duration::from_secs(5);
    while browser
        .eval("return document.getElementById('echo-btn').disabled;")
        .await?
        == true
    {
        if Instant::now() > deadline {
            bail!("the echo button stayed disabled with the socket open");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.click("#echo-btn").await?;
    let events = wait_events(browser, "echo_ok", Duration::from_secs(5), |ev| {
        position(ev, "echo_ok").is_some() || position(ev, "echo_mismatch").is_some()
    })
    .await?;
    assert!(position(&events, "echo_mismatch").is_none(), "{events:?}");
    let status = browser
        .eval("return document.getElementById('status').dataset.state;")
        .await?;
    assert_eq!(status, "signed-in");

    // The 20 s token is refreshed before it expires, and the open socket is
    // re-authenticated in place (no reconnect, no close).
    let events = wait_events(
        browser,
        "refreshed + reauth_success",
        Duration::from_secs(40),
        |ev| {
            matches!(
                (position(ev, "refreshed"), ev.iter().rposition(|(e, _)| e == "reauth_success")),
                (Some(r), Some(s)) if s > r
            )
        },
    )
    .await?;
    assert!(
        !events.iter().any(|(e, _)| e.starts_with("closed")),
        "the socket closed before logout: {events:?}"
    );
    assert_eq!(
        events.iter().filter(|(e, _)| e == "connected").count(),
        1,
        "reauth must not reconnect: {events:?}"
    );
    let left = browser
        .eval("return Number(document.getElementById('countdown').dataset.seconds);")
        .await?;
    assert!(left.as_u64().is_some_and(|s| s > 0), "countdown {left}");
    // The timer's refresh (a proof by the same key) kept it bound.
    ensure!(
        bound_key(browser).await? == jkt,
        "another key after the refresh"
    );

    // Logout: the server revokes the session and closes the socket (4003).
    browser.click("#logout-btn").await?;
    let events = wait_events(browser, "closed 4003", Duration::from_secs(5), |ev| {
        ev.iter().any(|(e, _)| e.starts_with("closed"))
    })
    .await?;
    let closed: Vec<&String> = events
        .iter()
        .map(|(e, _)| e)
        .filter(|e| e.starts_with("closed"))
        .collect();
    assert_eq!(closed, ["closed 4003"], "{events:?}");
    assert!(
        position(&events, "error session_revoked").is_some(),
        "{events:?}"
    );
    let status = browser
        .eval("return document.getElementById('status').dataset.state;")
        .await?;
    assert_eq!(status, "signed-out");
    Ok(())
}

/// The password the page changes to.
const NEW_PASSWORD: &str = "a different passphrase";

/// Signed out by `drive_demo`: logs in again (the socket opens), changes
/// the password (a wrong current one first: the page shows the error),
/// then deletes the account (the socket closes 4003, the page signs out).
async fn change_password_then_delete_the_account(browser: &Browser) -> Result<()> {
    let before = page_events(browser).await?.len();
    let after = |ev: &[(String, String)]| ev[before.min(ev.len())..].to_vec();
    // The username field still holds the name.
    browser.type_into("#password", PASSWORD).await?;
    browser.click("#login-btn").await?;
    wait_events(browser, "connected again", Duration::from_secs(15), |ev| {
        position(&after(ev), "connected").is_some()
    })
    .await?;

    browser
        .type_into("#current-password", "not the password")
        .await?;
    browser.type_into("#new-password", NEW_PASSWORD).await?;
    browser.click("#password-btn").await?;
    wait_events(
        browser,
        "the refused change",
        Duration::from_secs(10),
        |ev| {
            after(ev)
                .iter()
                .any(|(e, d)| e == "failed" && d.contains("invalid_credentials"))
        },
    )
    .await?;
    let shown = browser
        .eval("return document.getElementById('form-error').textContent;")
        .await?;
    assert!(
        shown
            .as_str()
            .is_some_and(|t| t.starts_with("invalid_credentials")),
        "{shown}"
    );
    browser.type_into("#current-password", PASSWORD).await?;
    browser.type_into("#new-password", NEW_PASSWORD).await?;
    browser.click("#password-btn").await?;
    wait_events(browser, "password_changed", Duration::from_secs(10), |ev| {
        position(&after(ev), "password_changed").is_some()
    })
    .await?;
    // The page's own session (and socket) live on.
    let status = browser
        .eval("return document.getElementById('status').dataset.state;")
        .await?;
    assert_eq!(status, "signed-in");

    browser.type_into("#delete-password", NEW_PASSWORD).await?;
    browser.click("#delete-btn").await?;
    let events = wait_events(
        browser,
        "account_deleted + closed",
        Duration::from_secs(10),
        |ev| {
            let ev = after(ev);
            position(&ev, "account_deleted").is_some()
                && ev.iter().any(|(e, _)| e.starts_with("closed"))
        },
    )
    .await?;
    let closed: Vec<String> = after(&events)
        .into_iter()
        .map(|(e, _)| e)
        .filter(|e| e.starts_with("closed"))
        .collect();
    assert_eq!(closed, ["closed 4003"], "{events:?}");
    let status = browser
        .eval("return document.getElementById('status').dataset.state;")
        .await?;
    assert_eq!(status, "signed-out");
    Ok(())
}

/// Swagger UI, through Nginx, under its hash-only script policy: the page's
/// own scripts run (the operations render) and no policy violation is reported.
async fn swagger_ui_renders_under_its_policy(browser: &Browser, origin: &str) -> Result<()> {
    browser.goto(&format!("{origin}/api/docs")).await?;
    browser
        .eval(
            "window.__violations = [];\
             document.addEventListener('securitypolicyviolation', \
               e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));\
             return true;",
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = browser
            .eval("return document.querySelectorAll('.opblock').length;")
            .await?;
        if n.as_u64().is_some_and(|n| n >= 9) {
            break;
        }
        if Instant::now() > deadline {
            bail!("Swagger UI did not render its operations ({n} blocks)");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Expand one operation: more of the UI's own code runs.
    browser.click(".opblock-summary").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let violations = browser.eval("return window.__violations;").await?;
    assert_eq!(
        violations,
        serde_json::json!([]),
        "CSP violations on /api/docs"
    );
    Ok(())
}

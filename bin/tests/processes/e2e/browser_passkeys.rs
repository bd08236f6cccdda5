//! Passkeys on the demo page in headless Chromium, through Nginx (contract
//! v3): the browser holds a virtual authenticator (WebDriver's WebAuthn
//! extension: CTAP2, built in, resident keys, user verification, not
//! backup-eligible), and opens the page by `localhost`, the relying party
//! (the stack's only `WEBAUTHN_ORIGINS` is that origin).
//!
//! A user registers and logs in with the password, adds a passkey (the
//! password confirms it) and sees it listed; logs out and signs in with the
//! passkey and no username: signed in, the socket connects, the token's
//! `amr` is `["hwk","mfa"]`, the account counts one passkey, the session is
//! shown as two-factor. Once more through the page's own conversions for
//! browsers without the WebAuthn JSON methods (a login, and a registration
//! after the authenticator forgot the first passkey). Then the passkeys are
//! deleted in the panel, and the next passkey login is refused
//! (`invalid_passkey`) although the authenticator still holds its credential.

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use super::browser_session::BrowserSession;
use super::demo_page::{
    Events, WAIT, act, act_expecting_failure, factors, log_out, page_events, position, status,
    text, wait_events, wait_new,
};
use super::dpop_page::bound_key;
use super::stack::{StackOptions, WEBAUTHN_RP_ID};
use super::webdriver::Browser;
use super::{PASSWORD, unique_username};

/// The name the first passkey is given; the second gets the server's default.
const NAME: &str = "Laptop";
const DEFAULT_NAME: &str = "Passkey";

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
async fn passkeys_on_the_demo_page() -> Result<()> {
    const TEST: &str = "passkeys_on_the_demo_page";
    let session = BrowserSession::start(TEST, StackOptions::default()).await?;
    let browser = &session.browser;
    let result = drive_passkeys(browser, &session.stack.browser_origin()).await;
    session.finish(result, "browser-passkeys.png").await
}

async fn drive_passkeys(browser: &Browser, origin: &str) -> Result<()> {
    browser.goto(&format!("{origin}/")).await?;
    wait_events(browser, "the initial resume attempt", WAIT, |ev| {
        position(ev, "not_signed_in").is_some()
    })
    .await?;
    let authenticator = browser
        .add_virtual_authenticator(json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        }))
        .await?;
    install_amr_probe(browser).await?;

    // Registered and logged in with the password, on the page.
    let username = unique_username();
    browser.type_into("#username", &username).await?;
    browser.type_into("#password", PASSWORD).await?;
    act(browser, "#register-btn", "registered").await?;
    let from = page_events(browser).await?.len();
    let ev = act(browser, "#login-btn", "login").await?;
    ensure!(position(&ev, "mfa_required").is_none(), "{ev:?}");
    wait_connected(browser, from).await?;
    ensure!(
        last_amr(browser).await? == ("/api/login".to_owned(), json!(["pwd"])),
        "a password login's amr"
    );
    wait_passkeys(browser, 0).await?;

    // A passkey, confirmed with the password.
    browser.type_into("#passkey-password", PASSWORD).await?;
    browser.type_into("#passkey-name", NAME).await?;
    act(browser, "#passkey-add-btn", "passkey_added").await?;
    let listed = wait_passkeys(browser, 1).await?;
    let first = &listed[0];
    ensure!(first["name"] == NAME, "{first}");
    ensure!(
        first["lastUsedAt"] == "" && text_of(first).contains("last used never"),
        "a new passkey shows as never used: {first}"
    );
    ensure!(
        first["backedUp"] == "false" && text_of(first).contains("not backed up"),
        "{first}"
    );
    ensure!(
        browser
            .eval("return document.getElementById('passkey-password').value;")
            .await?
            == "",
        "the password stays in its field"
    );
    let held = browser.authenticator_credentials(&authenticator).await?;
    ensure!(held.len() == 1, "the authenticator holds {held:?}");
    check_credential(&held[0], &username)?;

    // Signed out, then in with the passkey: no username typed.
    log_out(browser).await?;
    browser.clear("#username").await?;
    browser.clear("#password").await?;
    let from = page_events(browser).await?.len();
    log_in_with_passkey(browser).await?;
    wait_connected(browser, from).await?;
    ensure!(
        last_amr(browser).await? == ("/api/login/passkey".to_owned(), json!(["hwk", "mfa"])),
        "a passkey login's amr (the virtual authenticator is not backup-eligible)"
    );
    assert_eq!(factors(browser).await?, "true", "a passkey login");
    let shown = text(browser, "#factors").await?;
    ensure!(shown.contains("passkey"), "{shown}");
    // GET /api/account counts it, and the list shows it used.
    let listed = wait_passkeys(browser, 1).await?;
    ensure!(
        listed[0]["lastUsedAt"]
            .as_str()
            .is_some_and(|t| t.parse::<u64>().is_ok()),
        "the passkey shows no last use: {}",
        listed[0]
    );
    ensure!(listed[0]["backedUp"] == "false", "{}", listed[0]);
    act(browser, "#sessions-btn", "sessions").await?;
    let mfa = browser
        .eval("const li = document.querySelector('#sessions li.current'); return li && li.dataset.mfa;")
        .await?;
    assert_eq!(mfa, "true", "the current session's row");

    // The page's own conversions, as in a browser without the WebAuthn JSON
    // methods: a login, then a registration (the authenticator forgets the
    // first passkey, so that the account's exclude list lets it make one more).
    without_webauthn_json(browser).await?;
    log_out(browser).await?;
    log_in_with_passkey(browser).await?;
    ensure!(
        last_amr(browser).await? == ("/api/login/passkey".to_owned(), json!(["hwk", "mfa"])),
        "a passkey login through the fallback"
    );
    browser
        .remove_authenticator_credentials(&authenticator)
        .await?;
    browser.type_into("#passkey-password", PASSWORD).await?;
    act(browser, "#passkey-add-btn", "passkey_added").await?;
    let listed = wait_passkeys(browser, 2).await?;
    ensure!(
        listed[0]["name"] == NAME && listed[1]["name"] == DEFAULT_NAME,
        "oldest first, the unnamed one {DEFAULT_NAME:?}: {listed:?}"
    );
    let held = browser.authenticator_credentials(&authenticator).await?;
    ensure!(held.len() == 1, "the authenticator holds {held:?}");
    check_credential(&held[0], &username)?;
    restore_webauthn_json(browser).await?;

    // Deleted in the panel: the authenticator still offers its credential,
    // and the server refuses it.
    for left in [1, 0] {
        act(
            browser,
            "#passkey-list li .delete-passkey",
            "passkey_deleted",
        )
        .await?;
        wait_passkeys(browser, left).await?;
    }
    log_out(browser).await?;
    ensure!(
        browser
            .eval("return document.querySelectorAll('#passkey-list li').length;")
            .await?
            == 0,
        "the passkey list is still on the page after logout"
    );
    let ev = act_expecting_failure(browser, "#passkey-login-btn", "invalid_passkey").await?;
    ensure!(
        position(&ev, "login").is_none(),
        "a deleted passkey logged in: {ev:?}"
    );
    assert_eq!(status(browser).await?, "signed-out");
    let held = browser.authenticator_credentials(&authenticator).await?;
    ensure!(
        held.len() == 1,
        "the authenticator should still hold the credential: {held:?}"
    );
    Ok(())
}

/// Clicks "Sign in with a passkey" and checks the page signed in with it.
async fn log_in_with_passkey(browser: &Browser) -> Result<Events> {
    for field in ["#username", "#password"] {
        ensure!(
            browser
                .eval(&format!(
                    "return document.querySelector({}).value;",
                    Value::from(field)
                ))
                .await?
                == "",
            "{field} is not empty: the passkey login must need no username"
        );
    }
    let ev = act(browser, "#passkey-login-btn", "login").await?;
    let login = &ev[position(&ev, "login").unwrap_or_default()].1;
    ensure!(login.contains("hwk+mfa"), "not a passkey login: {login}");
    ensure!(position(&ev, "mfa_required").is_none(), "{ev:?}");
    assert_eq!(status(browser).await?, "signed-in");
    // POST /api/login/passkey carried the proof: the session is bound.
    bound_key(browser).await?;
    Ok(ev)
}

/// Waits for the socket the page opens after a login (`#auto-connect`) to
/// connect, among the events after the first `from`.
async fn wait_connected(browser: &Browser, from: usize) -> Result<()> {
    let ev = wait_new(browser, from, "connected", WAIT, |ev| {
        position(ev, "connected").is_some() || ev.iter().any(|(e, _)| e.starts_with("closed"))
    })
    .await?;
    ensure!(
        position(&ev, "connected").is_some(),
        "the socket closed: {ev:?}"
    );
    Ok(())
}

/// Wraps the page's `fetch` so that every token response's `amr` is kept
/// in `window.__amr` as `[path, amr]`: the JWT payload is decoded in the
/// page, and the token itself never leaves it (a WebDriver answer could
/// end up in a log).
async fn install_amr_probe(browser: &Browser) -> Result<()> {
    browser
        .eval(
            "const native = window.fetch.bind(window); window.__amr = [];\
             window.fetch = async (input, init) => {\
               const res = await native(input, init);\
               if (res.ok) {\
                 try {\
                   const body = await res.clone().json();\
                   if (body && typeof body.accessToken === 'string') {\
                     const part = body.accessToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');\
                     window.__amr.push([new URL(String(input), location.href).pathname, JSON.parse(atob(part)).amr]);\
                   }\
                 } catch (_) {}\
               }\
               return res;\
             };\
             return true;",
        )
        .await?;
    Ok(())
}

/// The path and `amr` of the last token response the page received.
async fn last_amr(browser: &Browser) -> Result<(String, Value)> {
    let v = browser
        .eval("return window.__amr[window.__amr.length - 1] || null;")
        .await?;
    let path = v[0]
        .as_str()
        .with_context(|| format!("no token yet: {v}"))?;
    Ok((path.to_owned(), v[1].clone()))
}

/// Takes away `PublicKeyCredential.parseCreationOptionsFromJSON`,
/// `parseRequestOptionsFromJSON` and `toJSON`, as in a browser before them
/// (kept aside for `restore_webauthn_json`).
async fn without_webauthn_json(browser: &Browser) -> Result<()> {
    let gone = browser
        .eval(
            "const P = PublicKeyCredential;\
             window.__webauthnJson = [P.parseCreationOptionsFromJSON, P.parseRequestOptionsFromJSON, P.prototype.toJSON];\
             delete P.parseCreationOptionsFromJSON; delete P.parseRequestOptionsFromJSON; delete P.prototype.toJSON;\
             return window.__webauthnJson.every(f => typeof f === 'function')\
               && P.parseCreationOptionsFromJSON === undefined && P.parseRequestOptionsFromJSON === undefined\
               && P.prototype.toJSON === undefined;",
        )
        .await?;
    ensure!(
        gone == true,
        "Chromium lacks the WebAuthn JSON methods or kept them"
    );
    Ok(())
}

async fn restore_webauthn_json(browser: &Browser) -> Result<()> {
    browser
        .eval(
            "const P = PublicKeyCredential; const [c, r, j] = window.__webauthnJson;\
             P.parseCreationOptionsFromJSON = c; P.parseRequestOptionsFromJSON = r; P.prototype.toJSON = j;\
             return true;",
        )
        .await?;
    Ok(())
}

/// A credential the authenticator made for the page: discoverable, for
/// the relying party `localhost`, not backup-eligible, with an opaque user
/// handle (contract v3: never the username).
fn check_credential(credential: &Value, username: &str) -> Result<()> {
    ensure!(
        credential["isResidentCredential"] == true,
        "not discoverable: {credential}"
    );
    ensure!(credential["rpId"] == WEBAUTHN_RP_ID, "{credential}");
    ensure!(credential["backupEligibility"] == false, "{credential}");
    let handle = credential["userHandle"]
        .as_str()
        .context("no user handle")?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(handle.as_bytes())
        .with_context(|| format!("user handle {handle:?}"))?;
    ensure!(
        !bytes.is_empty() && bytes.len() <= 64,
        "user handle of {} bytes",
        bytes.len()
    );
    ensure!(
        !String::from_utf8_lossy(&bytes).contains(username),
        "the user handle holds the username"
    );
    Ok(())
}

/// Waits until the panel lists `count` passkeys and `#passkeys-state`
/// (from `GET /api/account`'s `mfa.passkeys`) counts as many; returns the
/// list's items as `{id, name, lastUsedAt, backedUp, text}`.
async fn wait_passkeys(browser: &Browser, count: usize) -> Result<Vec<Value>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = browser
            .eval(
                "return {\
                   count: document.getElementById('passkeys-state').dataset.count,\
                   items: Array.from(document.querySelectorAll('#passkey-list li')).map(li => ({\
                     id: li.dataset.passkeyId, name: li.querySelector('.name').textContent,\
                     lastUsedAt: li.dataset.lastUsedAt, backedUp: li.dataset.backedUp,\
                     text: li.textContent })) };",
            )
            .await?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let counted = v["count"].as_str().and_then(|c| c.parse::<usize>().ok());
        if counted == Some(count) && items.len() == count {
            for item in &items {
                let id = item["id"].as_str().unwrap_or_default();
                ensure!(uuid::Uuid::parse_str(id).is_ok(), "a passkey id: {item}");
            }
            return Ok(items);
        }
        if Instant::now() > deadline {
            let events = page_events(browser).await?;
            bail!("the page never showed {count} passkeys: {v}; events: {events:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn text_of(item: &Value) -> &str {
    item["text"].as_str().unwrap_or_default()
}

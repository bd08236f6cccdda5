//! Two-factor login on the demo page in headless Chromium, through Nginx:
//! enrolment (the QR code, the otpauth URI and the secret shown, a code
//! computed here from the secret the page shows), the recovery codes shown
//! once, the login's second step with a recovery code, a wrong code and a
//! right one, the session shown as begun with two factors, and turning it
//! off again. Called by `browser::demo_page_in_headless_chromium`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use super::demo_page::{
    Events, WAIT, act, act_expecting_failure, factors, log_out, page_events, position, status,
    text, visible, wait_new,
};
use super::dpop_page::bound_key;
use super::webdriver::Browser;
use super::{PASSWORD, unique_username};

/// A new user turns two-factor login on, logs in with a recovery code, then
/// with a code of the app, turns it off, and logs in with the password alone.
pub(super) async fn enrol_log_in_with_two_factors_turn_off(browser: &Browser) -> Result<()> {
    browser
        .eval(
            "window.__violations = [];\
             document.addEventListener('securitypolicyviolation', \
               e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));\
             return true;",
        )
        .await?;
    let username = unique_username();
    browser.clear("#username").await?;
    browser.type_into("#username", &username).await?;
    browser.clear("#password").await?;
    browser.type_into("#password", PASSWORD).await?;
    act(browser, "#register-btn", "registered").await?;
    let ev = log_in(browser).await?;
    ensure!(position(&ev, "mfa_required").is_none(), "{ev:?}");
    assert_eq!(factors(browser).await?, "false", "a password login");
    two_factor_state(browser, "false", None).await?;

    let (key, confirmed_step) = enrol(browser, &username).await?;
    let recovery = recovery_codes(browser).await?;
    two_factor_state(browser, "true", Some("10")).await?;
    log_out(browser).await?;
    ensure!(
        browser
            .eval("return document.querySelectorAll('#recovery-codes li').length;")
            .await?
            == 0,
        "the recovery codes are still on the page after logout"
    );

    // A recovery code instead of the app's code: one fewer is left.
    log_in_with_second_factor(browser, Factor::RecoveryCode(&recovery[0])).await?;
    two_factor_state(browser, "true", Some("9")).await?;
    // The sessions list says so too.
    act(browser, "#sessions-btn", "sessions").await?;
    let mfa = browser
        .eval("const li = document.querySelector('#sessions li.current'); return li && li.dataset.mfa;")
        .await?;
    assert_eq!(mfa, "true", "the current session's row");
    log_out(browser).await?;

    // A wrong code is refused and the page keeps asking; then the code of a
    // step after the confirming one (a code is accepted once: the
    // confirming code cannot log in) logs in.
    let ev = log_in(browser).await?;
    ensure!(position(&ev, "mfa_required").is_some(), "{ev:?}");
    let now = step_now();
    let valid: Vec<String> = (now - 1..=now + 1)
        .map(|s| adapters::crypto::totp::code(&key, s))
        .collect();
    let wrong = ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !valid.iter().any(|v| v == c))
        .context("a wrong code")?;
    browser.type_into("#mfa-code", wrong).await?;
    let ev = act_expecting_failure(browser, "#mfa-btn", "invalid_mfa_code").await?;
    ensure!(
        position(&ev, "login").is_none(),
        "a wrong code logged in: {ev:?}"
    );
    ensure!(visible(browser, "#mfa-form").await?, "the code form closed");
    let deadline = Instant::now() + Duration::from_secs(40);
    while step_now() <= confirmed_step {
        ensure!(Instant::now() < deadline, "the TOTP step never advanced");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let code = adapters::crypto::totp::code(&key, step_now());
    log_in_with_second_factor(browser, Factor::Code(&code)).await?;
    // The 20 s token is refreshed: the new one says two factors too.
    let from = page_events(browser).await?.len();
    wait_new(browser, from, "refreshed", Duration::from_secs(25), |ev| {
        position(ev, "refreshed").is_some()
    })
    .await?;
    assert_eq!(factors(browser).await?, "true", "after a refresh");

    // Off again (the password and a recovery code confirm it, contract
    // v3): the password alone logs in.
    browser
        .type_into("#totp-disable-password", PASSWORD)
        .await?;
    browser
        .type_into("#totp-disable-code", &recovery[1])
        .await?;
    act(browser, "#totp-disable-btn", "totp_disabled").await?;
    two_factor_state(browser, "false", None).await?;
    log_out(browser).await?;
    let ev = log_in(browser).await?;
    ensure!(
        position(&ev, "mfa_required").is_none(),
        "two-factor login is still on: {ev:?}"
    );
    ensure!(
        !visible(browser, "#mfa-form").await?,
        "the page asks for a code"
    );
    assert_eq!(factors(browser).await?, "false", "a password login again");

    let violations = browser.eval("return window.__violations;").await?;
    assert_eq!(
        violations,
        serde_json::json!([]),
        "CSP violations on the demo page"
    );
    log_out(browser).await?;
    Ok(())
}

/// Begins an enrolment, checks what the page shows, and confirms it with a
/// code computed from the secret it shows. Returns the secret's bytes and
/// the step of the confirming code.
async fn enrol(browser: &Browser, username: &str) -> Result<(Vec<u8>, u64)> {
    // Contract v3: the password confirms an enrolment.
    browser.type_into("#totp-begin-password", PASSWORD).await?;
    let ev = act(browser, "#totp-begin-btn", "totp_begun").await?;
    let qr = browser
        .eval(
            "const svg = document.querySelector('#totp-qr svg');\
             if (!svg) return null;\
             const r = svg.getBoundingClientRect();\
             const path = svg.querySelector('path');\
             return { width: r.width, height: r.height, modules: Number(svg.dataset.modules),\
                      drawn: path ? path.getAttribute('d').length : 0 };",
        )
        .await?;
    let size = |k: &str| qr[k].as_f64().unwrap_or_default();
    // Version 2 (25 modules) is the smallest; an otpauth URI needs more.
    ensure!(
        size("width") >= 100.0 && size("height") >= 100.0,
        "QR code size: {qr}"
    );
    ensure!(
        qr["modules"].as_u64().is_some_and(|m| m >= 25) && size("drawn") > 1000.0,
        "QR code modules: {qr}"
    );
    let secret = text(browser, "#totp-secret").await?;
    let uri = text(browser, "#totp-uri").await?;
    ensure!(
        secret.len() == 32 && uri.starts_with("otpauth://totp/"),
        "secret {secret:?}, URI {uri:?}"
    );
    ensure!(
        uri.contains(&format!("secret={secret}&")) && uri.contains(username),
        "{uri}"
    );
    ensure!(
        !ev.iter().any(|(_, d)| d.contains(&secret)),
        "the secret is in the event log: {ev:?}"
    );
    let key = integration_tests::totp::decode_base32(&secret);
    ensure!(key.len() == 20, "a 160-bit secret");

    let step = step_now();
    browser
        .type_into("#totp-code", &adapters::crypto::totp::code(&key, step))
        .await?;
    act(browser, "#totp-confirm-btn", "totp_enabled").await?;
    ensure!(
        !visible(browser, "#totp-enrolment").await?
            && text(browser, "#totp-secret").await?.is_empty(),
        "the secret is still shown after the confirmation"
    );
    Ok((key, step))
}

/// The recovery codes the page shows after the confirmation.
async fn recovery_codes(browser: &Browser) -> Result<Vec<String>> {
    let shown = browser
        .eval("return Array.from(document.querySelectorAll('#recovery-codes li')).map(li => li.textContent);")
        .await?;
    let codes: Vec<String> = shown
        .as_array()
        .context("recovery codes")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    assert_eq!(codes.len(), domain::totp::RECOVERY_CODES, "{codes:?}");
    for c in &codes {
        let groups: Vec<&str> = c.split('-').collect();
        ensure!(
            groups.len() == 4
                && groups
                    .iter()
                    .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_hexdigit())),
            "recovery code {c:?}"
        );
    }
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), codes.len(), "{codes:?}");
    ensure!(
        visible(browser, "#recovery").await?,
        "recovery codes hidden"
    );
    Ok(codes)
}

/// What the page's second step is given.
#[derive(Debug, Clone, Copy)]
enum Factor<'a> {
    Code(&'a str),
    RecoveryCode(&'a str),
}

/// Logs in with the password (unless the page already asks for a code
/// after a wrong one): the page asks for a second factor; gives it `factor`
/// and checks the session began with two factors.
async fn log_in_with_second_factor(browser: &Browser, factor: Factor<'_>) -> Result<()> {
    // The step after a failed code has the form open already.
    if !visible(browser, "#mfa-form").await? {
        let ev = log_in(browser).await?;
        ensure!(position(&ev, "mfa_required").is_some(), "{ev:?}");
        ensure!(
            position(&ev, "login").is_none(),
            "the password alone logged in: {ev:?}"
        );
    }
    assert_eq!(
        status(browser).await?,
        "signed-out",
        "signed in before the second factor"
    );
    ensure!(
        visible(browser, "#mfa-form").await? && !visible(browser, "#login-form").await?,
        "the page does not ask for a code"
    );
    match factor {
        Factor::Code(code) => browser.type_into("#mfa-code", code).await?,
        Factor::RecoveryCode(code) => {
            browser.click("#mfa-use-recovery").await?;
            browser.type_into("#mfa-recovery", code).await?;
        }
    }
    let ev = act(browser, "#mfa-btn", "login").await?;
    let login = &ev[position(&ev, "login").unwrap_or_default()].1;
    ensure!(login.contains("pwd+otp"), "not a two-factor login: {login}");
    assert_eq!(status(browser).await?, "signed-in");
    assert_eq!(factors(browser).await?, "true", "a two-factor login");
    let shown = text(browser, "#factors").await?;
    ensure!(shown.contains("two factors"), "{shown}");
    ensure!(!visible(browser, "#mfa-form").await?, "the code form stays");
    // The second step carried the proof: POST /api/login/mfa bound the session.
    bound_key(browser).await?;
    Ok(())
}

/// Types the password (the username field holds the name; registering
/// leaves the password in its field) and logs in;
/// returns the events up to `login` or `mfa_required`.
async fn log_in(browser: &Browser) -> Result<Events> {
    browser.clear("#password").await?;
    browser.type_into("#password", PASSWORD).await?;
    let from = page_events(browser).await?.len();
    browser.click("#login-btn").await?;
    wait_new(browser, from, "login or mfa_required", WAIT, |ev| {
        position(ev, "login").is_some() || position(ev, "mfa_required").is_some()
    })
    .await
}

/// Waits until `#totp-state` (from `GET /api/mfa/totp`) says `enabled`
/// and, when given, that many recovery codes are left.
async fn two_factor_state(
    browser: &Browser,
    enabled: &str,
    codes_left: Option<&str>,
) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = browser
            .eval(
                "const e = document.getElementById('totp-state');\
                 return [e.dataset.enabled, e.dataset.codesLeft || '', e.textContent];",
            )
            .await?;
        let field = |i: usize| v[i].as_str().unwrap_or_default().to_owned();
        if field(0) == enabled && codes_left.is_none_or(|n| field(1) == n) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "two-factor state: want enabled={enabled} codes={codes_left:?}, page shows {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The TOTP step now, on this machine's clock (the service's too).
fn step_now() -> u64 {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    domain::totp::step_of(domain::Timestamp::from_unix_millis(millis))
}

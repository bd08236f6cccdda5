//! One refresh across tabs (issue 32, item 3): three tabs of one headless
//! Chromium on the demo page, through Nginx, with 12 s access tokens. The
//! tabs share the refresh cookie; `web/auth-client.js` lets one of them
//! refresh under a Web Lock and hands the new token to the others over a
//! BroadcastChannel, so the server rotates the cookie once per expiry, not
//! once per tab, and no tab leans on the reuse grace (it never fires).
//!
//! The first tab opens the other two (`window.open`, same origin) and keeps
//! a handle on each, so the test reads and clicks every tab's page through
//! those handles from the one WebDriver window.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::PASSWORD;
use super::browser_session::BrowserSession;
use super::demo_page::{Events, WAIT, position};
use super::stack::{Stack, StackOptions};
use super::webdriver::Browser;

/// The stack's `ACCESS_TOKEN_EXPIRY` (the service's minimum is 10 s).
const LIFETIME_SECS: u64 = 12;
/// `refreshLead(12)` in auth-client.js: a quarter of the lifetime, at least 5 s.
const REFRESH_LEAD_SECS: u64 = 5;
/// How long the signed-in tabs are watched: more than three token lifetimes.
const WATCH: Duration = Duration::from_secs(42);
const TABS: usize = 3;

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
async fn three_tabs_share_one_refresh_per_expiry() -> Result<()> {
    const TEST: &str = "three_tabs_share_one_refresh_per_expiry";
    // The sockets' expiry warning comes after the refresh lead, so every
    // refresh is the refresh timer's (the warning would trigger one too).
    let opts = StackOptions {
        access_token_expiry: "12s",
        ws_expiry_warning: "3s",
        ..StackOptions::default()
    };
    let session = BrowserSession::start(TEST, opts).await?;
    let (browser, stack) = (&session.browser, &session.stack);
    let username = session.register_user().await?;

    let mut result =
        open_tabs_and_watch_the_refreshes(browser, stack, &session.origin(), &username).await;
    if result.is_ok() {
        result = logout_and_login_reach_every_tab(browser, stack).await;
    }
    // Tokens went between tabs, never into a URL or a log line.
    session.finish(result, "browser-tabs.png").await
}

/// Logs in in the first tab, opens two more on the signed-in page, connects
/// every tab's socket, then watches all three for `WATCH`.
async fn open_tabs_and_watch_the_refreshes(
    browser: &Browser,
    stack: &Stack,
    origin: &str,
    username: &str,
) -> Result<()> {
    browser.goto(&format!("{origin}/")).await?;
    browser
        .eval("window.__tabs = [window]; return true;")
        .await?;
    wait_tab(browser, 0, "the initial resume attempt", |ev| {
        position(ev, "not_signed_in").is_some()
    })
    .await?;
    browser.type_into("#username", username).await?;
    browser.type_into("#password", PASSWORD).await?;
    browser.click("#login-btn").await?;
    let ev = wait_tab(browser, 0, "connected", |ev| {
        position(ev, "connected").is_some() || position(ev, "failed").is_some()
    })
    .await?;
    ensure!(position(&ev, "failed").is_none(), "tab 0: {ev:?}");
    let jkt = tab_key(browser, 0).await?;

    // Two more tabs on the page, opened after the login: each signs in from
    // the session the browser has (whether from another tab or with the
    // cookie is the page's business).
    for tab in 1..TABS {
        let opened = browser
            .eval(&format!(
                "window.__tabs[{tab}] = window.open(location.origin + '/', 'authd-tab-{tab}'); \
                 return window.__tabs[{tab}] !== null;"
            ))
            .await?;
        ensure!(opened == true, "window.open gave no tab {tab}");
    }
    for tab in 1..TABS {
        wait_until(&format!("tab {tab} signed in"), || async move {
            Ok(status(browser, tab).await? == "signed-in")
        })
        .await?;
        click(browser, tab, "#connect-btn").await?;
        wait_tab(browser, tab, "connected", |ev| {
            position(ev, "connected").is_some()
        })
        .await?;
        // The token came bound from the first tab, and this tab proves it
        // with the same key (the origin's one, from IndexedDB).
        ensure!(
            tab_key(browser, tab).await? == jkt,
            "tab {tab}: another key"
        );
    }

    let mut seen = Vec::new();
    for tab in 0..TABS {
        seen.push(tab_events(browser, tab).await?.len());
    }
    let rotated = r#"authd_refreshes_total{outcome="rotated"}"#;
    let grace = r#"authd_refreshes_total{outcome="grace_replay"}"#;
    let reuse = r#"authd_refreshes_total{outcome="reuse_detected"}"#;
    let (rotated_before, grace_before) = (
        stack.metric_total(rotated).await?,
        stack.metric_total(grace).await?,
    );
    let started = Instant::now();
    tokio::time::sleep(WATCH).await;
    let watched = started.elapsed();
    let rotations = stack.metric_total(rotated).await? - rotated_before;
    let grace_replays = stack.metric_total(grace).await? - grace_before;
    let reuses = stack.metric_total(reuse).await?;

    // The session's token is replaced once per refresh period, whichever
    // tab does it: the lifetime less the lead, less one second because the
    // client counts whole seconds (12 - 5 - 1 = 6 s). So a window of W
    // seconds holds at most ceil(W / 6) refresh periods, and one rotation
    // more (the window's two ends cut periods): bound = periods + 1, 8 for
    // 42 s. Three tabs refreshing each for itself rotate about three times
    // per period (17 in 42 s with the client before this coordination).
    let period = LIFETIME_SECS - REFRESH_LEAD_SECS - 1;
    let bound = watched.as_secs().div_ceil(period) + 1;
    // For the record: rotations per nominal refresh period (7 s).
    let per_refresh =
        rotations / (watched.as_secs_f64() / (LIFETIME_SECS - REFRESH_LEAD_SECS) as f64);
    eprintln!(
        "browser_tabs: {rotations} rotations, {grace_replays} grace replays, {reuses} reuses \
         over {watched:?} with {TABS} tabs: {per_refresh:.2} per refresh period (at most {bound} in all)"
    );

    for (tab, &from) in seen.iter().enumerate() {
        let events = tab_events(browser, tab).await?;
        let during = &events[from.min(events.len())..];
        let bad: Vec<&(String, String)> = during
            .iter()
            .filter(|(e, d)| {
                matches!(
                    e.as_str(),
                    "refresh_failed" | "failed" | "signed_out" | "not_signed_in"
                ) || e.starts_with("closed")
                    || e.starts_with("error")
                    || d.contains("refresh_reused")
            })
            .collect();
        ensure!(
            bad.is_empty(),
            "tab {tab} saw {bad:?} while watched; all its events: {events:?}"
        );
        // Its socket followed every new token, its own or another tab's,
        // with a reauth (a missed one would have closed it, 4001).
        let reauths = during.iter().filter(|(e, _)| e == "reauth_success").count();
        ensure!(
            reauths >= 3,
            "tab {tab}: {reauths} reauths over {watched:?}: {during:?}"
        );
        ensure!(
            status(browser, tab).await? == "signed-in",
            "tab {tab} is signed out"
        );
        ensure!(
            tab_key(browser, tab).await? == jkt,
            "tab {tab}: another key"
        );
        let left = tab_eval(
            browser,
            tab,
            "Number(d.getElementById('countdown').dataset.seconds)",
        )
        .await?;
        ensure!(
            left.as_u64().is_some_and(|s| s > 0),
            "tab {tab}: countdown {left}"
        );
        // And its token works.
        let before = events.len();
        click(browser, tab, "#protected-btn").await?;
        let ev = wait_tab(browser, tab, "protected", |ev| {
            let ev = &ev[before.min(ev.len())..];
            position(ev, "protected").is_some() || position(ev, "failed").is_some()
        })
        .await?;
        let ev = &ev[before..];
        ensure!(position(ev, "failed").is_none(), "tab {tab}: {ev:?}");
    }

    ensure!(reuses == 0.0, "{reuses} refreshes were taken for reuse");
    ensure!(
        grace_replays == 0.0,
        "{grace_replays} refreshes leaned on the reuse grace (two tabs refreshed with one cookie)"
    );
    ensure!(
        rotations <= bound as f64,
        "{rotations} rotations over {watched:?} for {TABS} tabs: more than one per refresh period ({bound} at most)"
    );
    // At least one per token lifetime, or the tokens would have run out.
    ensure!(
        rotations >= (watched.as_secs() / LIFETIME_SECS) as f64,
        "{rotations} rotations over {watched:?}: the session was not refreshed"
    );
    Ok(())
}

/// A logout in the first tab signs every tab out (their sockets closed
/// 4003 by the server); a login there signs every tab in, without a refresh.
async fn logout_and_login_reach_every_tab(browser: &Browser, stack: &Stack) -> Result<()> {
    let mut seen = Vec::new();
    for tab in 0..TABS {
        seen.push(tab_events(browser, tab).await?.len());
    }
    let after = |tab: usize, ev: &[(String, String)]| ev[seen[tab].min(ev.len())..].to_vec();

    click(browser, 0, "#logout-btn").await?;
    for tab in 0..TABS {
        let ev = wait_tab(browser, tab, "signed out, socket closed", |ev| {
            let ev = after(tab, ev);
            ev.iter().any(|(e, _)| e.starts_with("closed"))
                && (position(&ev, "signed_out").is_some() || position(&ev, "logout").is_some())
        })
        .await?;
        let ev = after(tab, &ev);
        let closed: Vec<&String> = ev
            .iter()
            .map(|(e, _)| e)
            .filter(|e| e.starts_with("closed"))
            .collect();
        ensure!(closed == ["closed 4003"], "tab {tab}: {ev:?}");
        if tab > 0 {
            ensure!(
                position(&ev, "logout_in_tab").is_some(),
                "tab {tab}: {ev:?}"
            );
        }
        ensure!(
            status(browser, tab).await? == "signed-out",
            "tab {tab} is still signed in"
        );
    }

    let rotated = r#"authd_refreshes_total{outcome="rotated"}"#;
    let rotated_before = stack.metric_total(rotated).await?;
    let mut seen = Vec::new();
    for tab in 0..TABS {
        seen.push(tab_events(browser, tab).await?.len());
    }
    // The username field still holds the name.
    tab_eval(
        browser,
        0,
        &format!(
            "(d.getElementById('password').value = {}, d.getElementById('login-btn').click(), true)",
            serde_json::to_string(PASSWORD)?
        ),
    )
    .await?;
    for tab in 0..TABS {
        let name = if tab == 0 { "login" } else { "login_in_tab" };
        let ev = wait_tab(browser, tab, name, |ev| {
            position(&ev[seen[tab].min(ev.len())..], name).is_some()
        })
        .await?;
        let ev = &ev[seen[tab].min(ev.len())..];
        ensure!(
            position(ev, "refreshed").is_none() && position(ev, "failed").is_none(),
            "tab {tab}: {ev:?}"
        );
        ensure!(
            status(browser, tab).await? == "signed-in",
            "tab {tab} is not signed in"
        );
        // The login's message said the token is bound.
        tab_key(browser, tab).await?;
    }
    let rotations = stack.metric_total(rotated).await? - rotated_before;
    ensure!(
        rotations == 0.0,
        "{rotations} rotations to sign the other tabs in"
    );
    Ok(())
}

/// Evaluates `expr` in tab `tab`'s page, with `d` its document.
async fn tab_eval(browser: &Browser, tab: usize, expr: &str) -> Result<Value> {
    browser
        .eval(&format!(
            "const w = window.__tabs[{tab}]; const d = w.document; return ({expr});"
        ))
        .await
        .with_context(|| format!("in tab {tab}"))
}

/// The thumbprint of the key tab `tab`'s session is bound by (DPoP, on by
/// default); fails unless its page shows the session bound.
async fn tab_key(browser: &Browser, tab: usize) -> Result<String> {
    let v = tab_eval(
        browser,
        tab,
        "(e => e && [e.dataset.bound, e.dataset.jkt, e.textContent])(d.getElementById('session-binding'))",
    )
    .await?;
    let jkt = v[1].as_str().unwrap_or_default();
    ensure!(
        v[0] == "true" && jkt.len() == 43,
        "tab {tab}: the session is not shown bound: {v}"
    );
    Ok(jkt.to_owned())
}

/// Clicks the element `css` in tab `tab` (from its own script: only the
/// first tab is WebDriver's window).
async fn click(browser: &Browser, tab: usize, css: &str) -> Result<()> {
    let clicked = tab_eval(
        browser,
        tab,
        &format!(
            "(() => {{ const el = d.querySelector({}); if (!el || el.disabled) return false; el.click(); return true; }})()",
            serde_json::to_string(css)?
        ),
    )
    .await?;
    ensure!(clicked == true, "tab {tab}: {css} is missing or disabled");
    Ok(())
}

/// The page's signed-in state (`#status[data-state]`), "" before it loaded.
async fn status(browser: &Browser, tab: usize) -> Result<String> {
    let v = tab_eval(
        browser,
        tab,
        "(d.getElementById('status') || { dataset: {} }).dataset.state || ''",
    )
    .await?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

/// Event names in tab `tab`'s log (`<li data-event>`), with their text.
async fn tab_events(browser: &Browser, tab: usize) -> Result<Events> {
    let v = tab_eval(
        browser,
        tab,
        "Array.from(d.querySelectorAll('#log li')).map(li => [li.dataset.event, li.textContent])",
    )
    .await?;
    Ok(v.as_array()
        .context("event list")?
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap_or_default().to_owned(),
                e[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// Waits until `pred` holds for tab `tab`'s events.
async fn wait_tab(
    browser: &Browser,
    tab: usize,
    what: &str,
    pred: impl Fn(&[(String, String)]) -> bool,
) -> Result<Events> {
    let deadline = Instant::now() + WAIT;
    loop {
        let events = tab_events(browser, tab).await?;
        if pred(&events) {
            return Ok(events);
        }
        if Instant::now() > deadline {
            bail!("tab {tab} never showed {what} within {WAIT:?}; events: {events:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `check` answers true.
async fn wait_until<F, Fut>(what: &str, check: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("never {what} within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

//! The demo page as the browser tests use it: its event log (`#log`, one
//! `<li data-event>` per event, see `web/client-demo.js`), clicks that wait
//! for the event they cause, and what its elements show.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::webdriver::Browser;

/// Event names with their text, in the order the page logged them.
pub(super) type Events = Vec<(String, String)>;

/// How long a click may take to show its outcome in the page's log.
pub(super) const WAIT: Duration = Duration::from_secs(15);

/// Event names in the page's log (`<li data-event>`), with their text.
pub(super) async fn page_events(browser: &Browser) -> Result<Events> {
    let v = browser
        .eval(
            "return Array.from(document.querySelectorAll('#log li'))\
             .map(li => [li.dataset.event, li.textContent]);",
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

/// Waits until `pred` holds for the page's events.
pub(super) async fn wait_events(
    browser: &Browser,
    what: &str,
    within: Duration,
    pred: impl Fn(&[(String, String)]) -> bool,
) -> Result<Events> {
    let deadline = Instant::now() + within;
    loop {
        let events = page_events(browser).await?;
        if pred(&events) {
            return Ok(events);
        }
        if Instant::now() > deadline {
            bail!("page never showed {what} within {within:?}; events: {events:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Where the first event `name` is.
pub(super) fn position(events: &[(String, String)], name: &str) -> Option<usize> {
    events.iter().position(|(e, _)| e == name)
}

/// Logs out; the page shows no session.
pub(super) async fn log_out(browser: &Browser) -> Result<()> {
    act(browser, "#logout-btn", "logout").await?;
    assert_eq!(status(browser).await?, "signed-out");
    assert_eq!(factors(browser).await?, "", "no session");
    Ok(())
}

/// Clicks `button` and waits for the event `name`; fails if the page logs
/// `failed` instead.
pub(super) async fn act(browser: &Browser, button: &str, name: &str) -> Result<Events> {
    let from = page_events(browser).await?.len();
    browser.click(button).await?;
    let ev = wait_new(browser, from, name, WAIT, |ev| position(ev, name).is_some()).await?;
    Ok(ev)
}

/// Clicks `button` and waits for a `failed` event with `code`, which the
/// page also shows in its error line.
pub(super) async fn act_expecting_failure(
    browser: &Browser,
    button: &str,
    code: &str,
) -> Result<Events> {
    let from = page_events(browser).await?.len();
    browser.click(button).await?;
    let ev = wait_events(browser, code, WAIT, |ev| {
        position(&ev[from.min(ev.len())..], "failed").is_some()
    })
    .await?;
    let ev = ev[from..].to_vec();
    let failed = &ev[position(&ev, "failed").unwrap_or_default()].1;
    ensure!(failed.contains(code), "{failed}");
    let shown = text(browser, "#form-error").await?;
    ensure!(shown.starts_with(code), "{shown}");
    Ok(ev)
}

/// Waits for `pred` over the events logged after the first `from`; fails
/// as soon as the page logs `failed`.
pub(super) async fn wait_new(
    browser: &Browser,
    from: usize,
    what: &str,
    within: Duration,
    pred: impl Fn(&[(String, String)]) -> bool,
) -> Result<Events> {
    let ev = wait_events(browser, what, within, |ev| {
        let new = &ev[from.min(ev.len())..];
        pred(new) || position(new, "failed").is_some()
    })
    .await?;
    let new = ev[from.min(ev.len())..].to_vec();
    if !pred(&new) {
        bail!("the page failed waiting for {what}: {new:?}");
    }
    Ok(new)
}

/// `#status`' `data-state`: "signed-in" or "signed-out".
pub(super) async fn status(browser: &Browser) -> Result<Value> {
    browser
        .eval("return document.getElementById('status').dataset.state;")
        .await
}

/// `#factors`' `data-mfa`: "true", "false", or "" when signed out.
pub(super) async fn factors(browser: &Browser) -> Result<String> {
    let v = browser
        .eval("return document.getElementById('factors').dataset.mfa;")
        .await?;
    Ok(v.as_str().context("data-mfa")?.to_owned())
}

/// The text of the element `css`.
pub(super) async fn text(browser: &Browser, css: &str) -> Result<String> {
    let v = browser
        .eval(&format!(
            "const e = document.querySelector({}); return e && e.textContent;",
            Value::from(css)
        ))
        .await?;
    Ok(v.as_str().with_context(|| format!("no {css}"))?.to_owned())
}

/// Whether `css` is rendered (not hidden, nor inside something hidden).
pub(super) async fn visible(browser: &Browser, css: &str) -> Result<bool> {
    let v = browser
        .eval(&format!(
            "const e = document.querySelector({}); return !!e && e.getClientRects().length > 0;",
            Value::from(css)
        ))
        .await?;
    v.as_bool().context("visible")
}

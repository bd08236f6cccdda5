//! Email on the demo page in headless Chromium, through Nginx (contract v3,
//! "Email"; issue 35). The services mail a real SMTP server
//! (`tests/clients/smtp_sink.py`, Python's aiosmtpd), with `PUBLIC_URL` the
//! origin the browser opens, so a mail's links lead back to the page.
//!
//! A user registers on the page with an address and logs in: the address
//! shows, not verified yet. The verification link from the sink, opened in
//! the browser, verifies it: the page says so and shows it verified; opened
//! again, it is refused. A change of address on the page (a DPoP-bound
//! call) mails the new address while the verified one stays shown. Logged
//! out, "Forgot password?" says the same words for an unknown address
//! (which gets no mail) as for the account's; the reset link from the sink,
//! opened, asks for a new password, and the page says "Password changed:
//! log in with it". The new password logs in on the page, the old one is
//! refused. After each link the address bar, the page and its storage hold
//! no token (the page sends no Referer either), and no mail's token reaches
//! a log line.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use integration_tests::smtp::{ReceivedMail, SinkOptions, SmtpSink};

use super::browser_session::BrowserSession;
use super::demo_page::{
    WAIT, act, act_expecting_failure, log_out, position, status, text, visible, wait_events,
};
use super::dpop_page::{bound_key, decode_proof, install_probe, last_sent};
use super::stack::StackOptions;
use super::webdriver::Browser;
use super::{PASSWORD, header, unique_username};

const NEW_PASSWORD: &str = "staple-battery-horse-7";

/// What the page says after any reset request, whoever the address is.
const FORGOT_SAID: &str = "If that address belongs to an account, a mail is on its way";

/// How long a mail may take from the request to the sink (the outbox is
/// woken when it queues one, and polls every 2 s).
const MAIL_WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(
        missing = "nginx",
        missing = "openssl",
        missing = "envsubst",
        missing = "postgres",
        missing = "chromium",
        missing = "chromedriver",
        missing = "python-aiosmtpd"
    ),
    ignore = "needs nginx, openssl, envsubst, PostgreSQL, chromium, chromedriver and Python aiosmtpd"
)]
async fn email_on_the_demo_page() -> Result<()> {
    const TEST: &str = "email_on_the_demo_page";
    let sink = SmtpSink::start(SinkOptions::plain())?;
    let opts = StackOptions {
        smtp_url: Some(sink.url("smtp")),
        public_url: true,
        ..StackOptions::default()
    };
    let session = BrowserSession::start(TEST, opts).await?;
    let mut tokens = Vec::new();
    let mut result = drive(&session, &sink, &mut tokens).await;
    if result.is_ok() {
        let logs = session.stack.all_logs();
        if tokens.iter().any(|t| logs.contains(t.as_str())) {
            result = Err(anyhow::anyhow!("a mail's token reached a log line"));
        }
    }
    session.finish(result, "browser-email.png").await
}

/// The steps; `tokens` collects every mail's token, for the logs' check.
async fn drive(session: &BrowserSession, sink: &SmtpSink, tokens: &mut Vec<String>) -> Result<()> {
    let browser = &session.browser;
    let origin = session.stack.browser_origin();
    let username = unique_username();
    let address = format!("{username}@example.com");
    browser.goto(&format!("{origin}/")).await?;
    wait_events(browser, "the initial resume attempt", WAIT, |ev| {
        position(ev, "not_signed_in").is_some()
    })
    .await?;
    sends_no_referrer(session, browser).await?;

    // Registered with an address and logged in, on the page.
    browser.type_into("#username", &username).await?;
    browser.type_into("#password", PASSWORD).await?;
    browser.type_into("#register-email", &address).await?;
    act(browser, "#register-btn", "registered").await?;
    act(browser, "#login-btn", "login").await?;
    wait_address(browser, &address, false).await?;

    // The verification link, opened: verified, once.
    let mail = mail_to(sink, 1, &address).await?;
    let (link, token) = link_in(&mail, &origin, "verify")?;
    tokens.push(token.clone());
    open_link(browser, &origin, &link, &token).await?;
    wait_outcome(browser, "verified", "Email address verified.").await?;
    wait_signed_in(browser).await?;
    wait_address(browser, &address, true).await?;
    open_link(browser, &origin, &link, &token).await?;
    wait_outcome(
        browser,
        "verify_failed",
        "This verification link is used, expired or replaced by a newer one.",
    )
    .await?;
    let shown = text(browser, "#form-error").await?;
    ensure!(shown.starts_with("invalid_token_in_mail"), "{shown}");
    wait_signed_in(browser).await?;

    // A new address, asked for on the page through the session's key: it
    // gets a mail, and the verified address stays the account's.
    install_probe(browser).await?;
    let jkt = bound_key(browser).await?;
    let new_address = format!("{username}.new@example.com");
    browser.type_into("#email-new", &new_address).await?;
    browser.type_into("#email-password", PASSWORD).await?;
    act(browser, "#email-btn", "email_change_sent").await?;
    let put = last_sent(browser, "PUT", "/api/account/email").await?;
    ensure!(put.status == 202 && put.scheme == "DPoP", "{put:?}");
    let (proof_header, claims) = decode_proof(put.proof()?)?;
    ensure!(
        super::dpop_page::thumbprint(&proof_header["jwk"])? == jkt
            && claims["htm"] == "PUT"
            && claims["htu"] == format!("{origin}/api/account/email").as_str()
            && claims.get("ath").is_some(),
        "the change's proof: {proof_header} {claims}"
    );
    let note = text(browser, "#email-note").await?;
    ensure!(note.contains(&new_address), "{note}");
    let pending = mail_to(sink, 2, &new_address).await?;
    tokens.push(link_in(&pending, &origin, "verify")?.1);
    wait_address(browser, &address, true).await?;
    log_out(browser).await?;

    // "Forgot password?": the same words for an unknown address as for the
    // account's, and a mail only to the account's.
    let unknown = format!("nobody.{}@example.com", uuid::Uuid::new_v4().simple());
    for asked in [&unknown, &address] {
        browser.click("#forgot-btn").await?;
        browser.type_into("#forgot-email", asked).await?;
        act(browser, "#forgot-send-btn", "password_reset_requested").await?;
        let (outcome, said) = mail_result(browser).await?;
        ensure!(
            outcome == "forgot_sent" && said == FORGOT_SAID,
            "{asked}: {said:?}"
        );
        ensure!(!visible(browser, "#forgot-form").await?, "the form stays");
    }
    let reset = mail_to(sink, 3, &address).await?;
    let (link, token) = link_in(&reset, &origin, "reset")?;
    tokens.push(token.clone());
    // Time for a mail to the unknown address to show up, were there one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = sink.received();
    ensure!(
        received.len() == 3,
        "mails to {:?}",
        received.iter().map(|m| &m.rcpt_tos).collect::<Vec<_>>()
    );

    // The reset link, opened: a new password set on the page.
    open_link(browser, &origin, &link, &token).await?;
    wait_page("the new-password form", || visible(browser, "#reset-form")).await?;
    browser.type_into("#reset-password", NEW_PASSWORD).await?;
    browser
        .type_into("#reset-password-again", NEW_PASSWORD)
        .await?;
    act(browser, "#reset-btn", "password_reset").await?;
    wait_outcome(browser, "reset_done", "Password changed: log in with it").await?;
    ensure!(!visible(browser, "#reset-form").await?, "the form stays");
    ensure!(
        status(browser).await? == "signed-out",
        "signed in by a reset"
    );

    // The new password logs in on the page; the old one no more.
    for (password, works) in [(NEW_PASSWORD, true), (PASSWORD, false)] {
        browser.clear("#username").await?;
        browser.type_into("#username", &username).await?;
        browser.clear("#password").await?;
        browser.type_into("#password", password).await?;
        if works {
            act(browser, "#login-btn", "login").await?;
            ensure!(status(browser).await? == "signed-in", "not signed in");
            log_out(browser).await?;
        } else {
            act_expecting_failure(browser, "#login-btn", "invalid_credentials").await?;
            ensure!(status(browser).await? == "signed-out", "the old password");
        }
    }
    Ok(())
}

/// The page asks for no Referer, in its markup and through Nginx's header,
/// so a link's token never leaves in one.
async fn sends_no_referrer(session: &BrowserSession, browser: &Browser) -> Result<()> {
    let meta = browser
        .eval("const m = document.querySelector('meta[name=referrer]'); return m && m.content;")
        .await?;
    ensure!(meta == "no-referrer", "<meta name=referrer>: {meta}");
    let page = session
        .http
        .get(format!("{}/", session.origin()))
        .send()
        .await?;
    ensure!(
        header(&page, "referrer-policy") == "no-referrer",
        "Referrer-Policy {:?}",
        header(&page, "referrer-policy")
    );
    Ok(())
}

/// Waits until `n` mails arrived; the `n`th is to `to` alone.
async fn mail_to(sink: &SmtpSink, n: usize, to: &str) -> Result<ReceivedMail> {
    let mail = sink.wait_for(n, MAIL_WAIT).await?.swap_remove(n - 1);
    ensure!(
        mail.rcpt_tos == [to],
        "mail {n} went to {:?}",
        mail.rcpt_tos
    );
    Ok(mail)
}

/// A mail's link (`origin/?param=<token>`, in both parts) and its token.
fn link_in(mail: &ReceivedMail, origin: &str, param: &str) -> Result<(String, String)> {
    let token = mail.token().context("a mail without a Token: line")?;
    let link = format!("{origin}/?{param}={token}");
    for (part, body) in [("text", &mail.text), ("html", &mail.html)] {
        let body = body.as_deref().with_context(|| format!("no {part} part"))?;
        ensure!(
            body.contains(&link),
            "the {part} part lacks {link}:\n{body}"
        );
    }
    Ok((link, token.to_owned()))
}

/// Opens a mail's link; the page takes the token out of the address bar
/// at once, and keeps it out of its text and storage.
async fn open_link(browser: &Browser, origin: &str, link: &str, token: &str) -> Result<()> {
    browser.goto(link).await?;
    let seen = browser
        .eval(
            "return [location.href, document.documentElement.outerHTML,\
             JSON.stringify(localStorage) + JSON.stringify(sessionStorage)];",
        )
        .await?;
    let href = seen[0].as_str().context("location.href")?;
    ensure!(href == format!("{origin}/"), "the address bar: {href}");
    for (what, value) in [("the page", &seen[1]), ("the page's storage", &seen[2])] {
        let value = value.as_str().with_context(|| format!("{what}: {seen}"))?;
        ensure!(!value.contains(token), "{what} holds the link's token");
    }
    Ok(())
}

/// `#mail-result`: its `data-outcome` and text.
async fn mail_result(browser: &Browser) -> Result<(String, String)> {
    let v = browser
        .eval("const e = document.getElementById('mail-result'); return [e.dataset.outcome, e.textContent];")
        .await?;
    let field = |i: usize| v[i].as_str().map(str::to_owned).context("#mail-result");
    Ok((field(0)?, field(1)?))
}

/// Waits until `#mail-result` shows `outcome` (fails on another one), in
/// `words`.
async fn wait_outcome(browser: &Browser, outcome: &str, words: &str) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (shown, said) = mail_result(browser).await?;
        if shown == outcome {
            ensure!(said == words, "{outcome}: {said:?}");
            return Ok(());
        }
        if !shown.is_empty() || Instant::now() > deadline {
            bail!("the page shows {shown:?} ({said:?}), not {outcome}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `check` (a look at the page) holds.
async fn wait_page<F, Fut>(what: &str, check: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await? {
        if Instant::now() > deadline {
            bail!("the page never showed {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Waits until the page signed in (a link's page resumes the session).
async fn wait_signed_in(browser: &Browser) -> Result<()> {
    wait_page("a session", || async {
        Ok(status(browser).await? == "signed-in")
    })
    .await
}

/// Waits until `#email-state` shows `address`, verified or not, in the
/// page's words.
async fn wait_address(browser: &Browser, address: &str, verified: bool) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = browser
            .eval(
                "const e = document.getElementById('email-state');\
                 return [e.dataset.email, e.dataset.verified, e.textContent];",
            )
            .await?;
        if v[0] == address && v[1] == verified.to_string().as_str() {
            let said = v[2].as_str().unwrap_or_default();
            let words = if verified {
                format!("{address}: verified")
            } else {
                format!("{address}: not verified yet (follow the link in the mail)")
            };
            ensure!(said == words, "#email-state: {said:?}");
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("#email-state never showed {address} (verified {verified}): {v}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

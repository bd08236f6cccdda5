//! End-to-end tests of the deployment: PostgreSQL, two `authd api` and two
//! `authd ws` processes, and Nginx with the project's own configuration
//! (`infra/nginx/nginx.conf.template` rendered by `infra/nginx/render.sh` for
//! loopback ports and a fresh test certificate). Clients talk to Nginx only,
//! over HTTPS/WSS, trusting exactly that certificate. The browser tests drive
//! the demo page in headless Chromium (`browser_session.rs` starts them).
//!
//! Needs PostgreSQL, nginx, openssl, envsubst, and for the browser tests
//! chromium + chromedriver. Under `CI` a missing piece fails the test;
//! elsewhere the test is ignored (`tests/missing_tools.rs`).
//! `E2E_KEEP=1` keeps the temporary directory with every log.

mod browser;
mod browser_dpop;
mod browser_email;
mod browser_mfa;
mod browser_passkeys;
mod browser_session;
mod browser_tabs;
pub mod client;
mod demo_page;
mod deployment;
mod dpop_page;
mod nginx;
mod nginx_mail_zone;
pub mod stack;
pub mod webdriver;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use integration_tests::client::refresh_cookie_in;

const PASSWORD: &str = "correct-horse-battery-9";

fn unique_username() -> String {
    format!("e2e_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

async fn register(http: &reqwest::Client, origin: &str, username: &str) -> Result<()> {
    let resp = http
        .post(format!("{origin}/api/register"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await?;
    if resp.status() != 201 {
        bail!("register: {} {}", resp.status(), resp.text().await?);
    }
    Ok(())
}

/// Logs in; returns the token response and the refresh cookie value.
async fn login(http: &reqwest::Client, origin: &str, username: &str) -> Result<(Value, String)> {
    let resp = http
        .post(format!("{origin}/api/login"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await?;
    if resp.status() != 200 {
        bail!("login: {} {}", resp.status(), resp.text().await?);
    }
    let (cookie, raw) =
        refresh_cookie_in(resp.headers()).context("login sets no refresh cookie")?;
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api"] {
        assert!(raw.contains(attr), "refresh cookie lacks {attr}: {raw}");
    }
    Ok((resp.json().await?, cookie))
}

async fn refresh(http: &reqwest::Client, origin: &str, cookie: &str) -> Result<reqwest::Response> {
    Ok(http
        .post(format!("{origin}/api/refresh"))
        .header("Cookie", format!("refreshToken={cookie}"))
        .send()
        .await?)
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

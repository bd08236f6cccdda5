//! A minimal W3C WebDriver client for headless Chromium through Debian's
//! `chromedriver`: just the commands the demo-page tests need, and the
//! virtual authenticators of WebDriver's WebAuthn extension
//! (<https://w3c.github.io/webauthn/#sctn-automation>).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use integration_tests::process::{Proc, which};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium binary and its driver, when installed.
pub fn browser_tools() -> (Option<PathBuf>, Option<PathBuf>) {
    let chromium = which("chromium").or_else(|| which("chromium-browser"));
    (chromium, which("chromedriver"))
}

/// A chromedriver process with one browser session.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    // Dropped after the session is deleted (see Drop).
    _driver: Proc,
}

impl Browser {
    /// Starts chromedriver on `port` and a headless Chromium with a fresh profile.
    pub async fn start(chromium: &Path, driver: &Path, port: u16, dir: &Path) -> Result<Self> {
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let driver = Proc::spawn("chromedriver", cmd, dir.join("logs/chromedriver.log"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                bail!("chromedriver not ready:\n{}", driver.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile)?;
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "acceptInsecureCerts": true,
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": [
                            "--headless",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-extensions",
                            "--disable-default-apps",
                            "--no-first-run",
                            "--no-default-browser-check",
                            "--ignore-certificate-errors",
                            "--window-size=1200,900",
                            format!("--user-data-dir={}", profile.display()),
                        ]
                    }
                }
            }
        });
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let session = resp["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session: {resp}\n{}", driver.log_tail()))?
            .to_owned();
        Ok(Self {
            http,
            base,
            session,
            _driver: driver,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp: Value = req.send().await?.json().await?;
        if let Some(err) = resp["value"].get("error") {
            bail!("webdriver {path}: {err}: {}", resp["value"]["message"]);
        }
        Ok(resp["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .map(|_| ())
    }

    async fn element(&self, css: &str) -> Result<String> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .with_context(|| format!("find {css}"))?;
        v[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no element id for {css}: {v}"))
    }

    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let id = self.element(css).await?;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .map(|_| ())
    }

    /// Empties an input (typing appends to what it holds).
    pub async fn clear(&self, css: &str) -> Result<()> {
        let id = self.element(css).await?;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await
        .map(|_| ())
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        let id = self.element(css).await?;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await
        .map(|_| ())
    }

    pub async fn eval(&self, script: &str) -> Result<Value> {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Runs `script` as an async function body (`await` allowed) in the
    /// page; resolves to what it returns. A rejection is an error naming it.
    pub async fn eval_async(&self, script: &str) -> Result<Value> {
        let wrapped = format!(
            "const done = arguments[arguments.length - 1];\
             (async () => {{ {script} }})().then(\
               v => done({{ ok: v === undefined ? null : v }}),\
               e => done({{ err: String((e && e.name) || 'Error') + ': ' + String((e && e.message) || e) }}));"
        );
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/execute/async",
                Some(json!({ "script": wrapped, "args": [] })),
            )
            .await?;
        if let Some(err) = v.get("err") {
            bail!("the page's script failed: {err}");
        }
        Ok(v["ok"].clone())
    }

    /// Every cookie of the current page, HttpOnly ones included (WebDriver's
    /// Get All Cookies): objects with `name`, `value`, `path`, `httpOnly`,
    /// `secure`, `sameSite`, ...
    pub async fn cookies(&self) -> Result<Vec<Value>> {
        let v = self.cmd(reqwest::Method::GET, "/cookie", None).await?;
        v.as_array()
            .cloned()
            .ok_or_else(|| anyhow!("no cookie list: {v}"))
    }

    /// Adds a virtual authenticator to the browser (WebAuthn's WebDriver
    /// extension), e.g. `{"protocol":"ctap2","transport":"internal",
    /// "hasResidentKey":true,"hasUserVerification":true,"isUserVerified":true}`;
    /// returns its id. The page's ceremonies use it without a prompt.
    pub async fn add_virtual_authenticator(&self, options: Value) -> Result<String> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/webauthn/authenticator",
                Some(options),
            )
            .await?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no authenticator id: {v}"))
    }

    /// The credentials a virtual authenticator holds: objects with
    /// `credentialId`, `isResidentCredential`, `rpId`, `userHandle` (base64url),
    /// `signCount`, `backupEligibility`, `backupState`, `privateKey`.
    pub async fn authenticator_credentials(&self, authenticator: &str) -> Result<Vec<Value>> {
        let v = self
            .cmd(
                reqwest::Method::GET,
                &format!("/webauthn/authenticator/{authenticator}/credentials"),
                None,
            )
            .await?;
        v.as_array()
            .cloned()
            .ok_or_else(|| anyhow!("no credential list: {v}"))
    }

    /// Removes every credential of a virtual authenticator.
    pub async fn remove_authenticator_credentials(&self, authenticator: &str) -> Result<()> {
        self.cmd(
            reqwest::Method::DELETE,
            &format!("/webauthn/authenticator/{authenticator}/credentials"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Saves a PNG screenshot (for a human looking at a failure).
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        use base64::Engine;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().ok_or_else(|| anyhow!("no screenshot"))?)?;
        std::fs::write(path, png)?;
        Ok(())
    }
}

impl Drop for Browser {
    /// Ends the session (and so the Chromium process) even when a test panics;
    /// blocking, because Drop cannot await.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let Some(addr) = self.base.strip_prefix("http://") else {
            return;
        };
        if let Ok(mut tcp) = std::net::TcpStream::connect(addr) {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                tcp,
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink);
        }
    }
}

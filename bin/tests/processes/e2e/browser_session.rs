//! What every browser test begins and ends with: the stack, an HTTPS client
//! for it, and chromedriver with one headless Chromium session; at the end,
//! no token in any log line and a screenshot of the page.

use anyhow::{Result, anyhow};

use super::stack::{Stack, StackOptions};
use super::webdriver::{self, Browser};
use super::{register, unique_username};
use integration_tests::process;

/// The stack and a browser on it.
#[derive(Debug)]
pub struct BrowserSession {
    // Dropped first: the browser session ends before the stack goes down.
    pub browser: Browser,
    pub stack: Stack,
    /// Trusts exactly the stack's certificate.
    pub http: reqwest::Client,
}

impl BrowserSession {
    /// Starts the stack with `opts` and a headless Chromium beside it. The
    /// programs are required: a missing one fails `test` (outside CI such a
    /// test is ignored at build time).
    ///
    /// # Errors
    /// The stack, chromedriver or the browser session did not start.
    pub async fn start(test: &str, opts: StackOptions) -> Result<Self> {
        let (Some(chromium), Some(driver)) = webdriver::browser_tools() else {
            panic!(
                "{test}: chromium and chromedriver are required (apt-get install chromium chromium-driver)"
            );
        };
        let stack = Stack::start_for(test, opts).await?;
        let http = stack.https_client()?;
        let port = process::free_ports(1)[0];
        let browser = Browser::start(&chromium, &driver, port, &stack.dir).await?;
        Ok(Self {
            browser,
            stack,
            http,
        })
    }

    /// `https://127.0.0.1:PORT`, see [`Stack::origin`].
    pub fn origin(&self) -> String {
        self.stack.origin()
    }

    /// Registers a new user through the API; returns the name (the
    /// password is `PASSWORD`).
    ///
    /// # Errors
    /// The registration was refused.
    pub async fn register_user(&self) -> Result<String> {
        let username = unique_username();
        register(&self.http, &self.origin(), &username).await?;
        Ok(username)
    }

    /// Ends a test whose steps gave `result`: unless they failed, checks
    /// that no token reached a log line of Nginx or the services (contract
    /// v3: no token in a URL, where logs would catch it; an access token's
    /// header starts "eyJ"). Saves a screenshot as `logs/<screenshot>`,
    /// named on failure.
    ///
    /// # Errors
    /// `result`'s error, or a token in the logs.
    pub async fn finish(&self, mut result: Result<()>, screenshot: &str) -> Result<()> {
        if result.is_ok() {
            let logs = self.stack.all_logs();
            if logs.contains("token=") || logs.contains("eyJ") {
                result = Err(anyhow!(
                    "a token reached a log line of Nginx or the services"
                ));
            }
        }
        let shot = self.stack.dir.join("logs").join(screenshot);
        let _ = self.browser.screenshot(&shot).await;
        if result.is_err() {
            eprintln!("e2e: screenshot at {}", shot.display());
        }
        result
    }
}

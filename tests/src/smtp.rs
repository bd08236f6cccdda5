//! A real SMTP server for the tests: `tests/clients/smtp_sink.py`, on
//! Python's `aiosmtpd`, as a child process on 127.0.0.1. It keeps what it
//! accepts as files; [`SmtpSink::received`] reads them back (envelope, raw
//! message, decoded headers and parts).
//!
//! A test that starts one carries
//! `#[cfg_attr(missing = "python-aiosmtpd", ignore = "needs Python aiosmtpd (pip install aiosmtpd)")]`
//! (`any(missing = "python-aiosmtpd", missing = "openssl")` with TLS, whose
//! test certificate `infra/nginx/make-dev-cert.sh` makes): outside `CI` it
//! is then reported as ignored where the package is missing, and under `CI`
//! it runs and fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::process::{self, Proc};

/// How long the sink may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What the sink offers and requires.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// Offer STARTTLS (with the test certificate).
    pub starttls: bool,
    /// Refuse mail before STARTTLS.
    pub require_tls: bool,
    /// TLS from the first byte (`smtps://`) instead of STARTTLS.
    pub implicit_tls: bool,
    /// Require AUTH (PLAIN or LOGIN) with this user and password.
    pub auth: Option<(String, String)>,
}

impl SinkOptions {
    /// Plain SMTP: no TLS offered, no AUTH.
    #[must_use]
    pub fn plain() -> Self {
        Self::default()
    }

    /// STARTTLS offered (not required).
    #[must_use]
    pub fn starttls() -> Self {
        Self {
            starttls: true,
            ..Self::default()
        }
    }

    /// TLS from the first byte.
    #[must_use]
    pub fn implicit_tls() -> Self {
        Self {
            implicit_tls: true,
            ..Self::default()
        }
    }

    /// These options, with AUTH required as `user`/`password`.
    #[must_use]
    pub fn with_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    fn tls(&self) -> bool {
        self.starttls || self.require_tls || self.implicit_tls
    }
}

/// One mail the sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope's sender (`MAIL FROM`).
    pub mail_from: String,
    /// The envelope's recipients (`RCPT TO`).
    pub rcpt_tos: Vec<String>,
    /// Whether it came over TLS (STARTTLS or implicit).
    pub tls: bool,
    /// The user that authenticated, if any.
    pub auth: Option<String>,
    /// The headers, decoded (RFC 2047 words as text), in order.
    pub headers: Vec<(String, String)>,
    /// The `text/plain` part, decoded, with `\n` line ends.
    pub text: Option<String>,
    /// The `text/html` part, decoded, with `\n` line ends.
    pub html: Option<String>,
    /// The message as received (after the SMTP dot-unstuffing).
    pub raw: String,
}

impl ReceivedMail {
    /// The first header called `name` (any case), decoded.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What follows `Token: ` on a line of the plain-text part (the
    /// contract's mail format).
    #[must_use]
    pub fn token(&self) -> Option<&str> {
        self.text
            .as_deref()?
            .lines()
            .find_map(|line| line.strip_prefix("Token: "))
            .map(str::trim)
    }

    fn read(mailbox: &Path, n: u64) -> Result<Self> {
        let json = mailbox.join(format!("{n}.json"));
        let meta: Value = serde_json::from_slice(
            &std::fs::read(&json).with_context(|| format!("read {}", json.display()))?,
        )?;
        let raw = std::fs::read(mailbox.join(format!("{n}.eml")))?;
        let text = |key: &str| meta[key].as_str().map(str::to_owned);
        Ok(Self {
            mail_from: text("mail_from").unwrap_or_default(),
            rcpt_tos: meta["rcpt_tos"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            tls: meta["tls"].as_bool().unwrap_or(false),
            auth: text("auth"),
            headers: meta["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|pair| {
                    Some((pair[0].as_str()?.to_owned(), pair[1].as_str()?.to_owned()))
                })
                .collect(),
            text: text("text"),
            html: text("html"),
            raw: String::from_utf8_lossy(&raw).into_owned(),
        })
    }
}

/// The running sink; stopped, and its files removed, on drop.
#[derive(Debug)]
pub struct SmtpSink {
    proc: Option<Proc>,
    port: u16,
    root: PathBuf,
    mailbox: PathBuf,
    cert: Option<(PathBuf, PathBuf)>,
    options: SinkOptions,
    starts: u32,
}

impl SmtpSink {
    /// Starts a sink on a free loopback port, with a fresh test certificate
    /// when `options` ask for TLS.
    ///
    /// # Errors
    /// `python3` or `aiosmtpd` is missing (see the module's doc for the
    /// attribute that turns this into an ignored test), the certificate
    /// cannot be made, or the sink does not listen in time (with its log).
    pub fn start(options: SinkOptions) -> Result<Self> {
        let root = process::temp_dir("authd-smtp-sink")?;
        let mailbox = root.join("mailbox");
        std::fs::create_dir_all(&mailbox)?;
        let cert = if options.tls() {
            let dir = root.join("cert");
            process::run(
                Command::new("sh")
                    .arg(process::workspace_root().join("infra/nginx/make-dev-cert.sh"))
                    .arg(&dir),
            )
            .context("the test certificate (make-dev-cert.sh needs openssl)")?;
            Some((dir.join("dev.crt"), dir.join("dev.key")))
        } else {
            None
        };
        let mut sink = Self {
            proc: None,
            port: 0,
            root,
            mailbox,
            cert,
            options,
            starts: 0,
        };
        sink.spawn()?;
        Ok(sink)
    }

    fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        let mut cmd = Command::new("python3");
        cmd.arg(process::workspace_root().join("tests/clients/smtp_sink.py"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.mailbox);
        if let Some((crt, key)) = &self.cert {
            cmd.arg("--tls-cert").arg(crt).arg("--tls-key").arg(key);
        }
        if self.options.require_tls {
            cmd.arg("--require-tls");
        }
        if self.options.implicit_tls {
            cmd.arg("--implicit-tls");
        }
        if let Some((user, password)) = &self.options.auth {
            cmd.arg("--auth").arg(format!("{user}:{password}"));
        }
        let log = self.root.join(format!("sink-{}.log", self.starts));
        let mut proc = Proc::spawn("smtp_sink.py", cmd, log)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let port = loop {
            if let Some(port) = proc
                .log_text()
                .lines()
                .find_map(|l| l.strip_prefix("ready ")?.trim().parse::<u16>().ok())
            {
                break port;
            }
            if let Some(status) = proc.exited() {
                bail!(
                    "smtp_sink.py exited ({status}) before listening (is aiosmtpd installed? \
                     pip install aiosmtpd):\n{}",
                    proc.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "smtp_sink.py not ready after {READY_TIMEOUT:?}:\n{}",
                    proc.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.port = port;
        self.proc = Some(proc);
        Ok(())
    }

    /// The port it listens on (kept across [`Self::restart`]).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `{scheme}://127.0.0.1:{port}`.
    #[must_use]
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The test certificate (self-signed, for `localhost` and `127.0.0.1`),
    /// to trust as `SMTP_CA_FILE`; `None` without TLS.
    #[must_use]
    pub fn ca_file(&self) -> Option<&Path> {
        self.cert.as_ref().map(|(crt, _)| crt.as_path())
    }

    /// Every mail accepted so far, in arrival order (also those accepted
    /// before a restart).
    ///
    /// # Panics
    /// When a mail's files cannot be read.
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedMail> {
        let mut numbers: Vec<u64> = std::fs::read_dir(&self.mailbox)
            .expect("the sink's mailbox")
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        numbers
            .into_iter()
            .map(|n| ReceivedMail::read(&self.mailbox, n).expect("a received mail"))
            .collect()
    }

    /// Waits until at least `n` mails have arrived; returns them all.
    ///
    /// # Errors
    /// Fewer arrived within `timeout` (with the sink's log).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<ReceivedMail>> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= n {
                return Ok(received);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} of {n} mails arrived within {timeout:?}; the sink's log:\n{}",
                    received.len(),
                    self.proc.as_ref().map(Proc::log_tail).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// From now on answers every `RCPT` and `DATA` with `code` (e.g. `451`,
    /// `550`); `None` accepts mail again.
    ///
    /// # Panics
    /// When the control file cannot be written or removed.
    pub fn answer_with(&self, code: Option<u16>) {
        let path = self.mailbox.join("answer");
        match code {
            Some(code) => std::fs::write(&path, code.to_string()).expect("write the answer file"),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
                _ => {}
            },
        }
    }

    /// Stops the sink: its port refuses connections until [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.stop();
        }
    }

    /// Starts the sink again on the same port, with the same options and
    /// mailbox (stopping it first if it runs).
    ///
    /// # Errors
    /// As [`Self::start`]; also when the port was taken meanwhile.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

//! The deployed system on loopback: two `authd api` and two `authd ws`
//! processes on one PostgreSQL database, and Nginx with the project's own
//! template rendered for free loopback ports and a fresh test certificate.
//! Each `authd api` serves its metrics on a loopback port of its own
//! (`METRICS_ADDR`, as in `infra/docker-compose.yml`), outside Nginx.
//! Everything is torn down on `Drop` (logs are kept when a test panics).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use integration_tests::process::{
    self, Proc, free_ports, run, tail, wait_listening, workspace_root,
};

/// The programs every test of the Nginx stack needs.
pub const TOOLS: [&str; 3] = ["nginx", "openssl", "envsubst"];

/// The stack's `WEBAUTHN_RP_ID`: the name the browser opens the page by.
pub const WEBAUTHN_RP_ID: &str = "localhost";

fn browser_origin(https_port: u16) -> String {
    format!("https://{WEBAUTHN_RP_ID}:{https_port}")
}

/// Settings that differ between the tests.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub access_token_expiry: &'static str,
    pub ws_expiry_warning: &'static str,
    /// `SMTP_URL` for every process (the service refuses it without
    /// `public_url`). Unset, each process writes its mail as files under
    /// the stack's `data/mail/`.
    pub smtp_url: Option<String>,
    /// `PUBLIC_URL` as [`Stack::browser_origin`] for every process: the
    /// links in mail point there, and DPoP proofs must name it, so the
    /// clients of such a stack use that origin, not [`Stack::origin`].
    pub public_url: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            access_token_expiry: "15m",
            ws_expiry_warning: "60s",
            smtp_url: None,
            public_url: false,
        }
    }
}

/// The project's Nginx for `ports` (HTTP, HTTPS), in front of `api`/`ws`
/// upstream ports on 127.0.0.1, with one worker (see
/// [`integration_tests::nginx::start`]).
///
/// # Errors
/// Rendering, `nginx -t` or the start failed.
pub fn start_nginx(
    dir: &Path,
    ports: (u16, u16),
    api_ports: &[u16],
    ws_ports: &[u16],
) -> Result<Proc> {
    integration_tests::nginx::start(
        dir,
        &integration_tests::nginx::NginxPorts {
            http: ports.0,
            https: ports.1,
            api: api_ports.to_vec(),
            ws: ws_ports.to_vec(),
            workers: "1",
        },
    )
}

/// The running system.
#[derive(Debug)]
pub struct Stack {
    pub dir: PathBuf,
    pub https_port: u16,
    pub http_port: u16,
    pub api_ports: Vec<u16>,
    pub ws_ports: Vec<u16>,
    /// `METRICS_ADDR` ports of the `authd api` processes, in their order.
    pub metrics_ports: Vec<u16>,
    pub cert_pem: Vec<u8>,
    pub access_log: PathBuf,
    // Nginx first: it goes down before the services it proxies to.
    nginx: Option<Proc>,
    services: Vec<Proc>,
}

impl Stack {
    /// What every test of the stack begins with: its programs required (a
    /// missing one fails `test`; outside CI such a test is ignored at build
    /// time), a fresh database, and the stack on it.
    ///
    /// # Errors
    /// The stack did not start (see [`Stack::start`]).
    pub async fn start_for(test: &str, opts: StackOptions) -> Result<Self> {
        process::require_tools(test, &TOOLS);
        let db = integration_tests::postgres::fresh_postgres_url().await;
        Self::start(&db, opts).await
    }

    /// Keys, certificate, migration, 2 × api, 2 × ws, Nginx; waits until all answer.
    pub async fn start(database_url: &str, opts: StackOptions) -> Result<Self> {
        let root = workspace_root();
        let dir = std::env::temp_dir().join(format!("authd-e2e-{}", uuid::Uuid::new_v4()));
        for sub in ["keys", "certs", "logs"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let access_log = dir.join("logs/nginx-access.log");

        // The project's own scripts make the key pair and the certificate.
        run(Command::new("sh")
            .arg(root.join("generate-keys.sh"))
            .arg(dir.join("keys")))
        .context("generate-keys.sh")?;
        run(Command::new("sh")
            .arg(root.join("infra/nginx/make-dev-cert.sh"))
            .arg(dir.join("certs")))
        .context("make-dev-cert.sh")?;
        let cert_pem = fs::read(dir.join("certs/dev.crt"))?;

        let ports = free_ports(8);
        let (http_port, https_port) = (ports[0], ports[1]);
        let api_ports = vec![ports[2], ports[3]];
        let ws_ports = vec![ports[4], ports[5]];
        let metrics_ports = vec![ports[6], ports[7]];

        let mut stack = Self {
            dir: dir.clone(),
            https_port,
            http_port,
            api_ports: api_ports.clone(),
            ws_ports: ws_ports.clone(),
            metrics_ports: metrics_ports.clone(),
            cert_pem,
            access_log: access_log.clone(),
            nginx: None,
            services: Vec::new(),
        };

        let authd = crate::authd();
        let service_env = |cmd: &mut Command| {
            cmd.env("DATABASE_URL", database_url)
                .env("PRIVATE_KEY_PATH", dir.join("keys/private.pem"))
                .env("PUBLIC_KEY_PATH", dir.join("keys/public.pem"))
                .env("ACCESS_TOKEN_EXPIRY", opts.access_token_expiry)
                .env("WS_EXPIRY_WARNING", opts.ws_expiry_warning)
                .env("COOKIE_SECURE", "true")
                .env("TRUSTED_PROXIES", "127.0.0.1")
                .env("ALLOW_REGISTRATION", "true")
                // Passkeys: the relying party is `localhost`, and a ceremony
                // comes from the page as the browser opens it through Nginx.
                .env("WEBAUTHN_RP_ID", WEBAUTHN_RP_ID)
                .env("WEBAUTHN_ORIGINS", browser_origin(https_port))
                .env("RUST_LOG", "info")
                .env("LOG_FORMAT", "json")
                .env_remove("CORS_ORIGINS")
                .env_remove("SMTP_URL")
                .env_remove("PUBLIC_URL")
                .current_dir(&dir);
            if let Some(url) = &opts.smtp_url {
                cmd.env("SMTP_URL", url);
            }
            if opts.public_url {
                cmd.env("PUBLIC_URL", browser_origin(https_port));
            }
        };

        let mut migrate = Command::new(&authd);
        migrate.arg("migrate");
        service_env(&mut migrate);
        let status = migrate
            .stdout(File::create(dir.join("logs/migrate.log"))?)
            .stderr(File::create(dir.join("logs/migrate.err.log"))?)
            .status()
            .context("run authd migrate")?;
        if !status.success() {
            bail!(
                "authd migrate failed ({status}):\n{}\n{}",
                tail(&dir.join("logs/migrate.log"), 30),
                tail(&dir.join("logs/migrate.err.log"), 30)
            );
        }

        for (i, (port, metrics)) in api_ports.iter().zip(&metrics_ports).enumerate() {
            let mut cmd = Command::new(&authd);
            cmd.arg("api")
                .env("API_ADDR", format!("127.0.0.1:{port}"))
                .env("METRICS_ADDR", format!("127.0.0.1:{metrics}"));
            service_env(&mut cmd);
            let name = format!("api-{}", i + 1);
            let log = dir.join(format!("logs/{name}.log"));
            stack.services.push(Proc::spawn(&name, cmd, log)?);
        }
        for (i, port) in ws_ports.iter().enumerate() {
            let mut cmd = Command::new(&authd);
            cmd.arg("ws").env("WS_ADDR", format!("127.0.0.1:{port}"));
            service_env(&mut cmd);
            let name = format!("ws-{}", i + 1);
            let log = dir.join(format!("logs/{name}.log"));
            stack.services.push(Proc::spawn(&name, cmd, log)?);
        }
        let ports: Vec<u16> = api_ports.iter().chain(ws_ports.iter()).copied().collect();
        for (idx, port) in ports.into_iter().enumerate() {
            wait_listening(&mut stack.services[idx], port, Duration::from_secs(30))?;
        }
        let plain = reqwest::Client::new();
        for port in &api_ports {
            let url = format!("http://127.0.0.1:{port}/api/health");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match plain.get(&url).send().await {
                    Ok(r) if r.status() == 200 => break,
                    other if Instant::now() > deadline => {
                        bail!("{url} not healthy: {other:?}")
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }

        let proc = start_nginx(&dir, (http_port, https_port), &api_ports, &ws_ports)?;
        stack.nginx = Some(proc);
        Ok(stack)
    }

    /// `https://127.0.0.1:PORT` — the one origin clients use.
    pub fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    /// `https://localhost:PORT` — the same Nginx by name, the origin a
    /// browser opens for a passkey ceremony (a relying party is a domain,
    /// never an address), and the stack's only `WEBAUTHN_ORIGINS`.
    pub fn browser_origin(&self) -> String {
        browser_origin(self.https_port)
    }

    /// An HTTPS client that trusts exactly this stack's certificate.
    ///
    /// # Errors
    /// The certificate does not parse.
    pub fn https_client(&self) -> Result<reqwest::Client> {
        super::client::https_client(&self.cert_pem)
    }

    /// The sum over the `authd api` processes of the metric series written
    /// exactly as `series` (name and labels), e.g.
    /// `authd_refreshes_total{outcome="rotated"}`; a process that has no such
    /// line counts 0.
    ///
    /// # Errors
    /// A metrics endpoint that does not answer 200, or a value that is not a number.
    pub async fn metric_total(&self, series: &str) -> Result<f64> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let mut total = 0.0;
        for port in &self.metrics_ports {
            let url = format!("http://127.0.0.1:{port}/metrics");
            let resp = http.get(&url).send().await.with_context(|| url.clone())?;
            if resp.status() != 200 {
                bail!("{url}: {}", resp.status());
            }
            let text = resp.text().await?;
            for line in text.lines() {
                if let Some(value) = line.strip_prefix(series).and_then(|r| r.strip_prefix(' ')) {
                    total += value
                        .trim()
                        .parse::<f64>()
                        .with_context(|| format!("{url}: {line}"))?;
                }
            }
        }
        Ok(total)
    }

    /// Everything the services and Nginx logged, concatenated.
    pub fn all_logs(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = fs::read_dir(self.dir.join("logs")) {
            for entry in entries.flatten() {
                if let Ok(text) = fs::read_to_string(entry.path()) {
                    all.push_str(&text);
                }
            }
        }
        all
    }

    /// The JSON log lines of the `authd` processes (api-*, ws-*), in file
    /// order per process.
    ///
    /// # Errors
    /// A line that is not a JSON object.
    pub fn service_log_lines(&self) -> Result<Vec<serde_json::Value>> {
        let mut lines = Vec::new();
        for service in &self.services {
            for line in service.log_text().lines().filter(|l| !l.trim().is_empty()) {
                let value: serde_json::Value = serde_json::from_str(line)
                    .with_context(|| format!("{}: not a JSON log line: {line}", service.name))?;
                if !value.is_object() {
                    bail!("{}: not a JSON object: {line}", service.name);
                }
                lines.push(value);
            }
        }
        Ok(lines)
    }

    /// Nginx's JSON access log lines.
    ///
    /// # Errors
    /// The log cannot be read, or a line is not JSON.
    pub fn access_log_lines(&self) -> Result<Vec<serde_json::Value>> {
        fs::read_to_string(&self.access_log)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("access log line: {l}")))
            .collect()
    }

    /// Whether every service and Nginx is still running (names of those that are not).
    pub fn dead_processes(&mut self) -> Vec<String> {
        let mut dead = Vec::new();
        for p in self.services.iter_mut().chain(self.nginx.iter_mut()) {
            if let Some(status) = p.exited() {
                dead.push(format!("{} ({status}):\n{}", p.name, p.log_tail()));
            }
        }
        dead
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.nginx.take();
        self.services.clear();
        if std::thread::panicking() || std::env::var_os("E2E_KEEP").is_some() {
            eprintln!("e2e: logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

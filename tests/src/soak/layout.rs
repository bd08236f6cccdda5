//! The production layout on loopback: a throwaway PostgreSQL, three
//! `authd api` and three `authd ws` processes on it, each reaching the
//! database through a fault proxy of its own, and Nginx with the project's
//! configuration in front. Processes can be killed and restarted, a
//! process's database flows frozen and thawed, and `authd keys` run
//! against the same database; everything stops on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::settings::Settings;
use super::tls::Front;
use crate::fault_proxy::FaultProxy;
use crate::nginx::{self, NginxPorts};
use crate::postgres::PostgresServer;
use crate::process::{self, Proc, run, workspace_root};

/// What an `authd` process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Ws,
}

/// One `authd api` or `authd ws` process slot: its port and proxy stay,
/// the process may be replaced.
#[derive(Debug)]
struct Node {
    name: String,
    role: Role,
    port: u16,
    proxy: FaultProxy,
    proc: Option<Proc>,
    generation: u32,
}

/// A process that ended without being killed by the run.
#[derive(Debug, Clone)]
pub struct Exit {
    pub name: String,
    pub status: String,
    pub log_tail: String,
}

/// The running layout.
#[derive(Debug)]
pub struct Layout {
    /// The work directory (logs, keys, certificate, Nginx's files).
    pub dir: PathBuf,
    /// Nginx's HTTPS front.
    pub front: Front,
    /// The database's URL, straight to PostgreSQL.
    pub db_url: String,
    // Dropped in this order: Nginx, the services, the proxies' runtime,
    // PostgreSQL.
    nginx: Mutex<Option<Proc>>,
    nodes: Mutex<Vec<Node>>,
    _proxies: ProxyRuntime,
    /// The server (restarted as a fault).
    pub pg: PostgresServer,
    authd: PathBuf,
    env: Vec<(String, String)>,
}

/// The proxies run on a runtime of their own, so that a busy load
/// generator does not stall the services' database traffic.
#[derive(Debug)]
struct ProxyRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ProxyRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The names of the six processes, API first.
pub const NAMES: [&str; 6] = ["api-1", "api-2", "api-3", "ws-1", "ws-2", "ws-3"];

impl Layout {
    /// Starts everything: PostgreSQL, the certificate, the proxies, `api-1`
    /// (which migrates, creates the first signing key and the server
    /// secret), the five others, Nginx; returns once every API answers
    /// its health check.
    ///
    /// # Errors
    /// A piece did not start (its log's tail says why).
    pub async fn start(settings: &Settings) -> Result<Self> {
        let dir = match &settings.dir {
            Some(dir) => dir.clone(),
            None => process::temp_dir("authd-soak")?,
        };
        for sub in ["logs", "certs"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        private_dir(&dir.join("keys"))?;
        run(Command::new("sh")
            .arg(workspace_root().join("infra/nginx/make-dev-cert.sh"))
            .arg(dir.join("certs")))
        .context("make-dev-cert.sh")?;
        let cert = std::fs::read(dir.join("certs/dev.crt"))?;

        let pg = PostgresServer::start().await;
        let db_url = pg.fresh_database_url().await;
        let upstream = SocketAddr::from(([127, 0, 0, 1], pg.port()));
        let proxies = ProxyRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("soak-proxies")
                .enable_all()
                .build()?,
        ));
        let ports = process::free_ports(8);
        let front = Front::new(ports[7], &cert)?;
        let mut nodes = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            let handle = proxies.0.as_ref().context("the proxies' runtime")?.handle();
            let proxy = handle.spawn(FaultProxy::start(upstream)).await??;
            nodes.push(Node {
                name: (*name).to_owned(),
                role: if i < 3 { Role::Api } else { Role::Ws },
                port: ports[i],
                proxy,
                proc: None,
                generation: 0,
            });
        }
        let keys = dir.join("keys");
        let env = vec![
            (
                "PRIVATE_KEY_PATH",
                keys.join("private.pem").display().to_string(),
            ),
            (
                "PUBLIC_KEY_PATH",
                keys.join("public.pem").display().to_string(),
            ),
            (
                "REFRESH_SEAL_KEY_PATH",
                keys.join("refresh-seal.key").display().to_string(),
            ),
            ("JWT_ALG", settings.jwt_alg.clone()),
            (
                "KEY_PUBLISH_AHEAD",
                format!("{}s", settings.key_publish_ahead.as_secs()),
            ),
            ("PUBLIC_URL", front.origin()),
            ("WEBAUTHN_RP_ID", "localhost".into()),
            ("WEBAUTHN_ORIGINS", front.passkey_origin()),
            ("TRUSTED_PROXIES", "127.0.0.1".into()),
            ("COOKIE_SECURE", "true".into()),
            ("LOG_FORMAT", "json".into()),
            ("RUST_LOG", "info".into()),
        ];
        let layout = Self {
            dir,
            front,
            db_url,
            nginx: Mutex::new(None),
            nodes: Mutex::new(nodes),
            _proxies: proxies,
            pg,
            authd: settings.authd.canonicalize().context("the authd binary")?,
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        };
        // The first one migrates and makes the key and the secret the
        // others read.
        layout.launch("api-1").await?;
        let rest = NAMES[1..].iter().map(|name| layout.launch(name));
        for started in futures_util::future::join_all(rest).await {
            started?;
        }
        for addr in layout.api_addrs() {
            healthy(addr, Duration::from_secs(30)).await?;
        }
        let nginx_ports = NginxPorts {
            http: ports[6],
            https: ports[7],
            api: ports[..3].to_vec(),
            ws: ports[3..6].to_vec(),
            // Each worker holds 4,096 connections, two per proxied socket.
            workers: "auto",
        };
        let dir = layout.dir.clone();
        let proc = tokio::task::spawn_blocking(move || nginx::start(&dir, &nginx_ports)).await??;
        *lock(&layout.nginx) = Some(proc);
        Ok(layout)
    }

    /// The API processes' own addresses (for probes that bypass Nginx).
    pub fn api_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.nodes)
            .iter()
            .filter(|n| n.role == Role::Api)
            .map(|n| SocketAddr::from(([127, 0, 0, 1], n.port)))
            .collect()
    }

    /// Starts (or restarts) the process of slot `name` and waits until it
    /// listens.
    ///
    /// # Errors
    /// It could not start, or exited, or did not listen within 60 s.
    pub async fn launch(&self, name: &str) -> Result<()> {
        let (mut cmd, port, log) = {
            let mut nodes = lock(&self.nodes);
            let node = find(&mut nodes, name)?;
            node.generation += 1;
            let role = if node.role == Role::Api { "api" } else { "ws" };
            let mut cmd = self.authd_command(role, &via(&self.db_url, node.proxy.addr()));
            let listen = format!("127.0.0.1:{}", node.port);
            cmd.env(
                if node.role == Role::Api {
                    "API_ADDR"
                } else {
                    "WS_ADDR"
                },
                listen,
            );
            let log = self
                .dir
                .join(format!("logs/{name}.{}.log", node.generation));
            (cmd, node.port, log)
        };
        cmd.current_dir(&self.dir);
        let proc = Proc::spawn(name, cmd, log)?;
        let proc = tokio::task::spawn_blocking(move || {
            let mut proc = proc;
            process::wait_listening(&mut proc, port, Duration::from_secs(60)).map(|()| proc)
        })
        .await??;
        find(&mut lock(&self.nodes), name)?.proc = Some(proc);
        Ok(())
    }

    /// `kill -9` of the process of slot `name`, reaped.
    ///
    /// # Errors
    /// The slot has no running process.
    pub fn kill(&self, name: &str) -> Result<()> {
        let proc = find(&mut lock(&self.nodes), name)?.proc.take();
        let Some(mut proc) = proc else {
            bail!("{name} is not running");
        };
        proc.child.kill()?;
        proc.child.wait()?;
        Ok(())
    }

    /// Freezes every database flow of `name` and holds new ones (an outage
    /// the database never sees), or thaws it (`false`: new flows work; the
    /// frozen ones stay frozen, as after a NAT flush).
    ///
    /// # Errors
    /// No such slot.
    pub fn freeze(&self, name: &str, frozen: bool) -> Result<()> {
        let mut nodes = lock(&self.nodes);
        let node = find(&mut nodes, name)?;
        if frozen {
            node.proxy.start_outage();
        } else {
            node.proxy.heal();
        }
        Ok(())
    }

    /// The process ids of the running processes, by slot, with Nginx's.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut pids: Vec<(String, u32)> = lock(&self.nodes)
            .iter()
            .filter_map(|n| {
                let pid = n.proc.as_ref()?.child.id();
                Some((format!("{}#{}", n.name, n.generation), pid))
            })
            .collect();
        if let Some(nginx) = lock(&self.nginx).as_ref() {
            pids.push(("nginx".into(), nginx.child.id()));
        }
        pids
    }

    /// The processes that ended on their own since the last call (taken
    /// out of their slots, so the caller may relaunch them).
    pub fn exits(&self) -> Vec<Exit> {
        let mut exits = Vec::new();
        for node in lock(&self.nodes).iter_mut() {
            let status: Option<ExitStatus> = node.proc.as_mut().and_then(Proc::exited);
            if let Some(status) = status {
                let proc = node.proc.take();
                exits.push(Exit {
                    name: node.name.clone(),
                    status: status.to_string(),
                    log_tail: proc.map(|p| p.log_tail()).unwrap_or_default(),
                });
            }
        }
        if let Some(nginx) = lock(&self.nginx).as_mut()
            && let Some(status) = nginx.exited()
        {
            exits.push(Exit {
                name: "nginx".into(),
                status: status.to_string(),
                log_tail: nginx.log_tail(),
            });
        }
        exits
    }

    /// `authd keys <args>` on the database (straight, not through a proxy);
    /// its standard output.
    ///
    /// # Errors
    /// It failed (with its output).
    pub async fn keys(&self, args: &str) -> Result<String> {
        let mut cmd = self.authd_command(&format!("keys {args}"), &self.db_url);
        cmd.env("RUST_LOG", "warn").current_dir(&self.dir);
        let out = tokio::process::Command::from(cmd).output().await?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "authd keys {args}: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }

    fn authd_command(&self, args: &str, database_url: &str) -> Command {
        let mut cmd = Command::new(&self.authd);
        cmd.args(args.split_whitespace())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn find<'a>(nodes: &'a mut [Node], name: &str) -> Result<&'a mut Node> {
    nodes
        .iter_mut()
        .find(|n| n.name == name)
        .with_context(|| format!("no process slot {name}"))
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme_user, rest) = url.split_once('@').unwrap_or(("postgres://postgres", url));
    let path = rest.split_once('/').map_or("", |(_, path)| path);
    format!("{scheme_user}@{addr}/{path}")
}

/// A directory only its owner may enter (the services refuse a key
/// directory others can write).
fn private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Waits until `GET /api/health` on `addr` answers 200.
///
/// # Errors
/// Not within `within`.
pub async fn healthy(addr: SocketAddr, within: Duration) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let url = format!("http://{addr}/api/health");
    let deadline = Instant::now() + within;
    loop {
        match http.get(&url).send().await {
            Ok(r) if r.status() == 200 => return Ok(()),
            other if Instant::now() > deadline => bail!("{url} not healthy: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

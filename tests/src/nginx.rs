//! Nginx with the project's own configuration: `infra/nginx/render.sh`
//! renders `infra/nginx/nginx.conf.template` for loopback ports, with the
//! template's own throttles; the end-to-end stack
//! (`bin/tests/processes/e2e/stack.rs`) and the soak start it so.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::process::{Proc, run, running_as_root, wait_listening, which, workspace_root};

/// Where Nginx listens and what it sits in front of.
#[derive(Debug, Clone)]
pub struct NginxPorts {
    pub http: u16,
    pub https: u16,
    pub api: Vec<u16>,
    pub ws: Vec<u16>,
    /// `NGINX_WORKER_PROCESSES`: `auto` (one per core) or a number.
    pub workers: &'static str,
}

/// Renders the template into `dir/nginx/conf` and starts Nginx (blocking
/// until it listens); its certificate is `dir/certs/dev.{crt,key}`, its
/// logs `dir/logs/nginx-{access,error,stderr}.log`.
///
/// # Errors
/// Rendering, `nginx -t` or the start failed.
pub fn start(dir: &Path, ports: &NginxPorts) -> Result<Proc> {
    let root = workspace_root();
    for sub in ["logs", "nginx/conf", "nginx/run"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let error_log = dir.join("logs/nginx-error.log");
    let join = |ports: &[u16]| {
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    run(Command::new("sh")
        .arg(root.join("infra/nginx/render.sh"))
        .arg(dir.join("nginx/conf"))
        .env("NGINX_HTTP_LISTEN", format!("127.0.0.1:{}", ports.http))
        .env("NGINX_HTTPS_LISTEN", format!("127.0.0.1:{}", ports.https))
        .env("NGINX_HTTPS_PUBLIC_PORT", ports.https.to_string())
        .env("API_UPSTREAMS", join(&ports.api))
        .env("WS_UPSTREAMS", join(&ports.ws))
        .env("TLS_CERT", dir.join("certs/dev.crt"))
        .env("TLS_KEY", dir.join("certs/dev.key"))
        .env("WEB_ROOT", root.join("web"))
        .env("NGINX_ACCESS_LOG", dir.join("logs/nginx-access.log"))
        .env("NGINX_ERROR_LOG", &error_log)
        .env("NGINX_RUN_DIR", dir.join("nginx/run"))
        .env("NGINX_WORKER_PROCESSES", ports.workers))
    .context("render.sh")?;
    let conf = dir.join("nginx/conf/nginx.conf");
    let nginx = which("nginx").context("nginx not found")?;
    // As root, nginx would switch its workers to `nobody`, who may not be
    // able to read the web root of a checkout under /root.
    let mut globals = String::from("daemon off;");
    if running_as_root() {
        globals.push_str(" user root;");
    }
    let args = |cmd: &mut Command| {
        cmd.arg("-p")
            .arg(dir.join("nginx/run"))
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log)
            .arg("-g")
            .arg(&globals);
    };
    let mut check = Command::new(&nginx);
    args(&mut check);
    check.arg("-t");
    run(&mut check).context("nginx -t on the rendered configuration")?;
    let mut cmd = Command::new(&nginx);
    args(&mut cmd);
    let mut proc = Proc::spawn("nginx", cmd, dir.join("logs/nginx-stderr.log"))?;
    wait_listening(&mut proc, ports.https, Duration::from_secs(15))?;
    Ok(proc)
}

/// The DER of the first certificate of a PEM text (the dev certificate
/// Nginx serves, for a client's roots).
///
/// # Errors
/// Not UTF-8, or not base64 between the markers.
pub fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(pem)?;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    Ok(data_encoding::BASE64.decode(body.as_bytes())?)
}

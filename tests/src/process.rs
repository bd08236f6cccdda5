//! Real processes for the tests: the built `authd` binary, free loopback
//! ports, child processes whose output goes to a log file and that are
//! stopped on drop, and the "missing tool" check.

use std::fs::{self, File};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Fails when a program `test` needs is not on `PATH`. Outside `CI` such a
/// test is ignored rather than run (see `tests/missing_tools.rs`), so this
/// fails only under `CI`, or when a program went away after the test binary
/// was built.
///
/// # Panics
/// When one of `programs` is missing.
pub fn require_tools(test: &str, programs: &[&str]) {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| which(p).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{test}: required programs missing: {} (outside CI, tests that need them are \
         ignored when they are missing at build time)",
        missing.join(", ")
    );
}

/// Writes straight to stderr, past the test harness's output capture, so a
/// skipped check is visible in a passing run.
pub fn loud(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n==== {message} ====\n");
}

/// Looks a program up on `PATH` (plus the sbin directories nginx lives in).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The workspace root (this package lives in `tests/`).
///
/// # Panics
/// Never in practice: the package directory always has a parent.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Distinct free loopback ports (bound together, then released).
///
/// # Panics
/// When the machine has no ephemeral port left.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// A fresh, empty directory under the system's temporary directory
/// (`<prefix>-<uuid>`). The caller removes it.
///
/// # Errors
/// When the directory cannot be created.
pub fn temp_dir(prefix: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    ///
    /// # Errors
    /// When the log file cannot be created or the program cannot be started.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Result<Self> {
        let out = File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().with_context(|| format!("spawn {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// `Some(status)` if the process has already exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of the process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 40)
    }

    /// Everything the process has written so far (empty when unreadable).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the process: SIGTERM, up to 5 s for it to exit, then SIGKILL.
    /// Does nothing when it has already exited.
    pub fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Last `n` lines of a file (empty when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` to completion.
///
/// # Errors
/// When it cannot start or exits unsuccessfully (with its stdout and stderr).
pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Waits (blocking) until `127.0.0.1:port` accepts connections.
///
/// # Errors
/// When the process exits first, or nothing listens within `timeout`
/// (with the tail of the process's log).
pub fn wait_listening(proc: &mut Proc, port: u16, timeout: Duration) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = proc.exited() {
            bail!(
                "{} exited early ({status}):\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} does not listen on {addr} after {timeout:?}:\n{}",
                proc.name,
                proc.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether this process runs as root (uid 0).
pub fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Writes a fresh RSA key pair of `bits` bits (`openssl genpkey`) as
/// `private.pem` (PKCS#8) and `public.pem` (SPKI) into `dir`; returns
/// `(private, public)` paths, ready for `PRIVATE_KEY_PATH`/`PUBLIC_KEY_PATH`.
///
/// # Errors
/// When `openssl` is missing or fails.
pub fn write_rsa_keys(dir: &Path, bits: u32) -> Result<(PathBuf, PathBuf)> {
    fs::create_dir_all(dir)?;
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .arg("-out")
        .arg(&private))
    .context("openssl genpkey")?;
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public))
    .context("openssl pkey -pubout")?;
    Ok((private, public))
}

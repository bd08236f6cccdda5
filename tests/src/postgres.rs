//! Throwaway databases for the tests: a PostgreSQL server started from the
//! locally installed binaries (one per test process, a new database per
//! call), and fresh SQLite files.
//!
//! The servers run as the `postgres` user when the tests run as root (the
//! PostgreSQL binaries refuse root), listen on 127.0.0.1 on a free port with
//! trust authentication and `fsync=off`, and are stopped when the test process
//! exits: a small watchdog process waits for the test process to disappear,
//! then stops the server and deletes its directory, whatever way the test
//! process ended.
//!
//! Without PostgreSQL binaries the helpers panic. A test that needs them
//! carries `#[cfg_attr(missing = "postgres", ignore = ...)]`: the test
//! packages' build script (`tests/missing_tools.rs`) sets that cfg when the
//! binaries are absent and `CI` is not set, so such a test is reported as
//! ignored, and under `CI` it runs and fails.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where the PostgreSQL binaries are looked for (`PG_BIN` overrides).
const PG_GLOB_ROOT: &str = "/usr/lib/postgresql";

static SHARED: OnceLock<PostgresServer> = OnceLock::new();
static SQLITE_DIR: OnceLock<PathBuf> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A URL of a brand-new, empty database on this process's shared PostgreSQL
/// server (started by the first call).
///
/// # Panics
/// When the binaries are missing or the server cannot be started.
pub async fn fresh_postgres_url() -> String {
    shared().fresh_database_url().await
}

/// A URL of a new database with every migration applied, on this process's
/// shared PostgreSQL server: a copy of a template migrated once per server,
/// so the tests that need the schema do not each migrate.
///
/// # Panics
/// When the binaries are missing, or the template cannot be made or copied.
pub async fn fresh_migrated_postgres_url() -> String {
    shared().fresh_migrated_database_url().await
}

fn shared() -> &'static PostgresServer {
    SHARED.get_or_init(|| PostgresServer::start_blocking("shared"))
}

/// A URL of a new SQLite file in this process's temporary directory (deleted
/// when the process exits).
pub fn fresh_sqlite_url() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("sqlite://{}/test-{n}.db", process_temp_dir().display())
}

/// A new, empty directory in this process's temporary directory (deleted
/// when the process exits), named `<prefix>-<n>`: a test app's mail files.
///
/// # Panics
/// When it cannot be created.
pub fn fresh_temp_dir(prefix: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = process_temp_dir().join(format!("{prefix}-{n}"));
    std::fs::create_dir_all(&dir).expect("creating a test directory");
    dir
}

/// This process's temporary directory, removed by a watchdog once the
/// process has exited.
fn process_temp_dir() -> &'static PathBuf {
    SQLITE_DIR.get_or_init(|| {
        let dir = unique_temp_dir("authd-sqlite");
        std::fs::create_dir_all(&dir).expect("creating the SQLite test directory");
        spawn_watchdog(&format!("rm -rf '{}'", dir.display()));
        dir
    })
}

/// One PostgreSQL server of this test process. Stopped on drop (and by its
/// watchdog if the process dies first).
///
/// Tests that stop or restart the server need their own (see
/// [`PostgresServer::start`]): the shared one of [`fresh_postgres_url`] serves
/// every other test of the process at the same time.
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
    /// The migrated template's name, once made.
    template: tokio::sync::OnceCell<String>,
}

impl PostgresServer {
    /// Starts a dedicated server (about a second).
    ///
    /// # Panics
    /// When the binaries are missing or the server cannot be started.
    pub async fn start() -> Self {
        tokio::task::spawn_blocking(|| Self::start_blocking("dedicated"))
            .await
            .expect("starting PostgreSQL")
    }

    fn start_blocking(kind: &str) -> Self {
        let bin = find_binaries().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries not found under {PG_GLOB_ROOT}/*/bin (or PG_BIN): \
                 install postgresql-15 (outside CI, tests that need them are ignored when \
                 they are missing at build time)"
            )
        });
        let as_postgres_user = running_as_root();
        let dir = unique_temp_dir(&format!("authd-pg-{kind}"));
        std::fs::create_dir_all(&dir).expect("creating the PostgreSQL test directory");
        let mut server = Self {
            bin,
            dir,
            port: 0,
            as_postgres_user,
            template: tokio::sync::OnceCell::new(),
        };
        if as_postgres_user {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(&server.dir));
        }
        // The watchdog first, so that nothing is left behind even if a step below panics.
        spawn_watchdog(&format!(
            "{stop} >/dev/null 2>&1; rm -rf '{dir}'",
            stop = server.shell_command(
                "pg_ctl",
                &["-D", &server.data_dir(), "-m", "immediate", "-w", "stop"]
            ),
            dir = server.dir.display()
        ));
        let data = server.data_dir();
        run(&mut server.command(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        ));
        // A port can be taken between probing and binding: try a few.
        for attempt in 0..5 {
            server.port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={dir} \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                port = server.port,
                dir = server.dir.display()
            );
            let log = server.log_file();
            let status = server
                .command(
                    "pg_ctl",
                    &[
                        "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
                    ],
                )
                .stdout(Stdio::null())
                .status()
                .expect("running pg_ctl");
            if status.success() {
                return server;
            }
            eprintln!(
                "PostgreSQL did not start on port {} (attempt {attempt}), retrying",
                server.port
            );
        }
        panic!("PostgreSQL did not start; see {}", server.log_file());
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a new, empty database and returns its URL.
    ///
    /// # Panics
    /// When the database cannot be created.
    pub async fn fresh_database_url(&self) -> String {
        self.create_database(None).await
    }

    /// A URL of a new database with every migration applied: a copy of a
    /// template this server migrates once (`CREATE DATABASE .. TEMPLATE`).
    ///
    /// # Panics
    /// When the template cannot be migrated or copied.
    pub async fn fresh_migrated_database_url(&self) -> String {
        let template = self
            .template
            .get_or_init(|| async {
                let url = self.create_database(None).await;
                let db = adapters::persistence::Database::connect(&url)
                    .await
                    .expect("connecting to the template");
                db.migrate().await.expect("migrating the template");
                // A template is copied only while nobody is connected to it.
                db.connection()
                    .clone()
                    .close()
                    .await
                    .expect("closing the template's connections");
                url.rsplit('/').next().expect("a database name").to_owned()
            })
            .await;
        self.create_database(Some(template)).await
    }

    async fn create_database(&self, template: Option<&str>) -> String {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{}_{n}", std::process::id());
        let port = self.port.to_string();
        let psql = self.bin.join("psql");
        let create = match template {
            None => format!("CREATE DATABASE {name}"),
            Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
        };
        let status = tokio::process::Command::new(psql)
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-c", &create])
            .stdout(Stdio::null())
            .status()
            .await
            .expect("running psql");
        assert!(status.success(), "{create} failed");
        format!("postgres://postgres@127.0.0.1:{port}/{name}")
    }

    /// Restarts the server (fast shutdown: open connections are cut), waiting until it accepts connections again.
    ///
    /// # Panics
    /// When the server does not come back.
    pub async fn restart(&self) {
        let (data, log) = (self.data_dir(), self.log_file());
        let mut cmd = self.command(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-m", "fast", "-w", "-t", "60", "restart",
            ],
        );
        cmd.stdout(Stdio::null());
        let status = tokio::task::spawn_blocking(move || cmd.status())
            .await
            .expect("join")
            .expect("pg_ctl");
        assert!(status.success(), "PostgreSQL did not restart; see {log}");
    }

    /// Stops the server (fast shutdown); [`Self::restart`] starts it again.
    ///
    /// # Panics
    /// When pg_ctl fails.
    pub async fn stop(&self) {
        let data = self.data_dir();
        let mut cmd = self.command("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
        cmd.stdout(Stdio::null());
        let status = tokio::task::spawn_blocking(move || cmd.status())
            .await
            .expect("join")
            .expect("pg_ctl");
        assert!(status.success(), "PostgreSQL did not stop");
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn log_file(&self) -> String {
        self.dir.join("server.log").display().to_string()
    }

    /// `program` from the PostgreSQL binaries, as the `postgres` user when we are root.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.args(args).current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    fn shell_command(&self, program: &str, args: &[&str]) -> String {
        let path = self.bin.join(program).display().to_string();
        let prefix = if self.as_postgres_user {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let args: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        format!("{prefix}'{path}' {}", args.join(" "))
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb`, or `PG_BIN`.
fn find_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(PG_GLOB_ROOT)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whether this process runs as root (`/proc/self` belongs to the effective user).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn unique_temp_dir(prefix: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a probe port");
    listener.local_addr().expect("probe address").port()
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cleanup` (a shell command) once this process has exited. The
/// watchdog is its own process group, detached from our stdio, so it neither
/// dies with a Ctrl-C of the tests nor holds their output pipes open.
#[allow(
    clippy::zombie_processes,
    reason = "the watchdog outlives this process by design"
)]
fn spawn_watchdog(cleanup: &str) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {cleanup}",
        pid = std::process::id()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawning the cleanup watchdog");
}

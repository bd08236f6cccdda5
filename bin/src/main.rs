//! `authd`: the auth service's command line.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use authd::Services;
use authd::wiring::{self, KeyMaterial};
use authd::{Config, observability};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use secrecy::{ExposeSecret as _, SecretString};

mod audit;

/// Authentication service: signed access tokens (RS256, PS256, ES256 or EdDSA), rotating
/// refresh tokens, WebSocket sessions.
///
/// Configuration comes from the environment and a `.env` file (see the README).
#[derive(Debug, Parser)]
#[command(name = "authd", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the REST API and the WebSocket service together (the default).
    Serve,
    /// Run the REST API only.
    Api,
    /// Run the WebSocket service only.
    Ws,
    /// Apply database migrations and exit.
    Migrate,
    /// Print stored security audit events as JSON lines, newest first.
    Audit(audit::AuditArgs),
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: authd::keys_cli::KeysCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the OpenAPI document of the REST API.
    Openapi,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user (also when registration is closed); the password is read from stdin.
    Add {
        /// The username.
        name: String,
    },
    /// Delete a user with their sessions (every process closes their
    /// sockets and refuses their tokens within seconds); the audit trail
    /// keeps its events and records the deletion.
    Delete {
        /// The username.
        name: String,
    },
    /// Turn two-factor login off for a user who lost both the authenticator
    /// app and the recovery codes (their sessions go on; the audit trail
    /// records `mfa_disabled`). Check who is asking first.
    ResetMfa {
        /// The username.
        name: String,
    },
    /// Set a user's password (read from stdin), as a reset by mail does:
    /// every session of the user ends (every process closes their sockets
    /// within seconds), their failed logins are forgotten, two-factor login
    /// stays on; the audit trail records `password_reset`. Check who is
    /// asking first.
    SetPassword {
        /// The username.
        name: String,
    },
}

fn main() -> std::process::ExitCode {
    // Before any thread runs: argon2's freed memory goes back to the system.
    adapters::system::tune_allocator();
    // `--help` lists every variable of the configuration's declaration.
    let matches = Cli::command()
        .after_help(authd::config::environment_help())
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(Command::Openapi) = cli.command {
        println!("{}", adapters::http::openapi_json());
        return std::process::ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("authd: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("authd: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The OTLP exporter sends from the runtime: set it up inside it.
    let telemetry = match runtime.block_on(async { observability::init(&config) }) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("authd: cannot set up logging and tracing: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config));
    if let Err(e) = &result {
        tracing::error!(error = ?e, "authd failed");
        eprintln!("authd: {e:#}");
    }
    // Here, on the main thread with the runtime still up: the last spans go out.
    telemetry.shutdown();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(&config, Services::Both).await,
        Command::Api => serve(&config, Services::Api).await,
        Command::Ws => serve(&config, Services::Ws).await,
        Command::Migrate => {
            let db = adapters::persistence::Database::connect(&config.database_url).await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Audit(args) => audit::run(&config.database_url, &args).await,
        Command::Keys { command } => authd::keys_cli::run(command, &config).await,
        Command::User {
            command: UserCommand::Add { name },
        } => {
            let password = read_password(&name)?;
            let user = wiring::user_accounts(&config)
                .await?
                .add(&name, password)
                .await
                .map_err(|e| anyhow::anyhow!("cannot add the user: {e}"))?;
            println!("added user {} ({})", user.username, user.id);
            Ok(())
        }
        Command::User {
            command: UserCommand::Delete { name },
        } => match wiring::user_accounts(&config).await?.delete(&name).await? {
            Some((user, sessions)) => {
                println!(
                    "deleted user {} ({}); {sessions} sessions ended",
                    user.username, user.id
                );
                Ok(())
            }
            None => anyhow::bail!("no user is named {name:?}"),
        },
        Command::User {
            command: UserCommand::ResetMfa { name },
        } => match wiring::user_accounts(&config)
            .await?
            .reset_two_factor(&name)
            .await?
        {
            Some((user, true)) => {
                println!(
                    "two-factor login turned off for user {} ({})",
                    user.username, user.id
                );
                Ok(())
            }
            Some((user, false)) => {
                println!(
                    "user {} has no two-factor login; nothing changed",
                    user.username
                );
                Ok(())
            }
            None => anyhow::bail!("no user is named {name:?}"),
        },
        Command::User {
            command: UserCommand::SetPassword { name },
        } => {
            let (users, replacement) = wiring::password_replacement(&config).await?;
            let user = match domain::Username::parse(&name) {
                Ok(username) => users.find_by_username(&username).await?,
                Err(_) => None,
            };
            let Some(user) = user else {
                anyhow::bail!("no user is named {name:?}");
            };
            let password = read_password(&name)?;
            let operator = application::ClientInfo {
                ip: None,
                user_agent: Some("authd user set-password".into()),
                key: None,
            };
            let ended = replacement
                .replace(&user, password, &operator)
                .await
                .map_err(|e| anyhow::anyhow!("cannot set the password: {e}"))?;
            println!(
                "password set for user {} ({}); {} sessions ended",
                user.username,
                user.id,
                ended.len()
            );
            Ok(())
        }
        Command::Openapi => {
            unreachable!("main prints the document before reading the configuration")
        }
    }
}

/// The first line of stdin; on a terminal with a prompt and without echo.
fn read_password(name: &str) -> anyhow::Result<SecretString> {
    use secrecy::zeroize::Zeroize as _;
    let stdin = std::io::stdin();
    let echo_off = if stdin.is_terminal() {
        // Echo off before the prompt: whatever is typed after it stays hidden.
        let echo_off = EchoOff::new(&stdin).context("turning the terminal's echo off")?;
        eprint!("password for {name}: ");
        std::io::stderr().flush().ok();
        Some(echo_off)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if echo_off.is_some() {
        // The Enter the user typed was not echoed either.
        eprintln!();
    }
    read.context("reading the password from stdin")?;
    let password = SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned());
    line.zeroize();
    if password.expose_secret().is_empty() {
        anyhow::bail!("no password on stdin");
    }
    Ok(password)
}

/// Turns a terminal's echo off until dropped.
struct EchoOff {
    fd: std::os::fd::OwnedFd,
    saved: rustix::termios::Termios,
}

impl EchoOff {
    fn new(stdin: &std::io::Stdin) -> std::io::Result<Self> {
        use std::os::fd::AsFd as _;
        let fd = stdin.as_fd().try_clone_to_owned()?;
        let saved = rustix::termios::tcgetattr(&fd)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &quiet)?;
        Ok(Self { fd, saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            &self.fd,
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

async fn serve(config: &Config, services: Services) -> anyhow::Result<()> {
    let keys = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || KeyMaterial::load_or_create(&config)).await??
    };
    let app = authd::start(config, &keys, services).await?;
    let trigger = app.shutdown_trigger();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        trigger.trigger();
    });
    app.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

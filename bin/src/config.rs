//! Configuration from the environment (and a `.env` file): the contract's
//! Configuration table. A bad value stops start-up with a message naming the
//! variable, never repeating the value (it may be a secret).
//!
//! clap reads the variables (`env = ..`). A value is trimmed (every value
//! parser here trims), a variable set to nothing but blanks counts as unset
//! (`blank_is_unset`), and a list drops its empty items (`list`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use adapters::net::IpNet;
use adapters::telemetry::otlp::OtlpConfig;
use clap::{Arg, ArgAction, CommandFactory as _, FromArgMatches as _};
use domain::Algorithm;

mod values;

use values::*;
pub use values::{MIN_ACCESS_TOKEN_EXPIRY, SmtpUrl, parse_duration};

/// The default database: an embedded SQLite file under `data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/authd.db?mode=rwc";

/// A variable with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for {variable}: {reason}")]
pub struct ConfigError {
    /// The variable's name.
    pub variable: String,
    /// What is wrong (never the value itself: it may be a secret).
    pub reason: String,
}

/// Log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default when stdout is not a terminal).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Every setting of the service, each declared once: its variable, default,
/// parser and documentation (the help of `authd --help`, and the README's
/// Configuration table, which a test compares with this declaration).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// `postgres://user:pass@host/db` for PostgreSQL, or a `sqlite:` file.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, value_parser = database_url)]
    pub database_url: String,
    /// Where the REST API listens.
    #[arg(long, env = "API_ADDR", default_value = "127.0.0.1:3000", value_parser = socket_addr)]
    pub api_addr: SocketAddr,
    /// Where the WebSocket service listens.
    #[arg(long, env = "WS_ADDR", default_value = "127.0.0.1:3001", value_parser = socket_addr)]
    pub ws_addr: SocketAddr,
    /// `true` binds `WS_ADDR` with `SO_REUSEPORT`, so several `authd ws`
    /// processes share one port (Linux spreads new connections among them).
    #[arg(long, env = "WS_REUSE_PORT", default_value = "false", value_parser = boolean, action = ArgAction::Set)]
    pub ws_reuse_port: bool,
    /// A signing key from before the key set (PKCS#8 PEM; PKCS#1 also read),
    /// readable by its owner only: it becomes the first key of an empty set,
    /// with its kid; not read otherwise.
    #[arg(long, env = "PRIVATE_KEY_PATH", default_value = "keys/private.pem", value_parser = path)]
    pub private_key_path: PathBuf,
    /// Its public half (SPKI PEM), published in the JWKS.
    #[arg(long, env = "PUBLIC_KEY_PATH", default_value = "keys/public.pem", value_parser = path)]
    pub public_key_path: PathBuf,
    /// The secret of the refresh-grace seals; default: `refresh-seal.key` next
    /// to the private key (created at first start, mode 0600).
    #[arg(long, env = "REFRESH_SEAL_KEY_PATH", value_parser = path)]
    pub refresh_seal_key_path: Option<PathBuf>,
    /// Access-token lifetime (at least 10 s).
    #[arg(long, env = "ACCESS_TOKEN_EXPIRY", default_value = "15m", value_parser = access_lifetime)]
    pub access_token_expiry: Duration,
    /// Refresh-token idle timeout.
    #[arg(long, env = "REFRESH_TOKEN_EXPIRY", default_value = "7d", value_parser = nonzero_duration)]
    pub refresh_token_expiry: Duration,
    /// How long the direct parent of the current refresh token may be
    /// replayed (it gets the current token again); `0` for strict rotation.
    #[arg(long, env = "REFRESH_REUSE_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub refresh_reuse_grace: Duration,
    /// Absolute lifetime of a session (token family).
    #[arg(long, env = "SESSION_MAX_AGE", default_value = "30d", value_parser = nonzero_duration)]
    pub session_max_age: Duration,
    /// `token_expiring` is sent this long before `exp`.
    #[arg(long, env = "WS_EXPIRY_WARNING", default_value = "60s", value_parser = parse_duration)]
    pub ws_expiry_warning: Duration,
    /// `iss` of access tokens.
    #[arg(long, env = "JWT_ISSUER", default_value = "auth", value_parser = text)]
    pub jwt_issuer: String,
    /// `aud` of access tokens.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "api", value_parser = text)]
    pub jwt_audience: String,
    /// The algorithm of signing keys created from now on.
    #[arg(long, env = "JWT_ALG", default_value = "RS256", value_parser = jwt_alg)]
    pub jwt_alg: Algorithm,
    /// How long a key added by `authd keys rotate` is published before it signs.
    #[arg(long, env = "KEY_PUBLISH_AHEAD", default_value = "10m", value_parser = parse_duration)]
    pub key_publish_ahead: Duration,
    /// `false` drops `Secure` from the refresh cookie (plain-HTTP development only).
    #[arg(long, env = "COOKIE_SECURE", default_value = "true", value_parser = boolean, action = ArgAction::Set)]
    pub cookie_secure: bool,
    /// `false` closes `POST /api/register` (`authd user add` still works).
    #[arg(long, env = "ALLOW_REGISTRATION", default_value = "true", value_parser = boolean, action = ArgAction::Set)]
    pub allow_registration: bool,
    /// Failed logins per username and client address within
    /// `LOGIN_FAILURE_WINDOW` before the lockout.
    #[arg(long, env = "LOGIN_MAX_FAILURES", default_value = "5", value_parser = positive::<u32>)]
    pub login_max_failures: u32,
    /// Open REST connections at most; one more is answered `503 overloaded`
    /// and closed. Default: seven eighths of the open-file limit (after
    /// raising it to the hard limit), less 64.
    #[arg(long, env = "API_MAX_CONNECTIONS", value_parser = positive::<usize>)]
    pub api_max_connections: Option<usize>,
    /// Open REST connections at most from one client address (an IPv6
    /// client by its /64); loopback and `TRUSTED_PROXIES` are exempt. One
    /// more is answered `429 too_many_connections` and closed.
    #[arg(long, env = "API_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = adapters::http::DEFAULT_MAX_PER_ADDRESS, value_parser = positive::<usize>)]
    pub api_max_connections_per_address: usize,
    /// From a request's first byte (or the connection's opening) to its
    /// answer's first byte; a slower client loses the connection.
    #[arg(long, env = "API_REQUEST_TIMEOUT", default_value = "10s", value_parser = nonzero_duration)]
    pub api_request_timeout: Duration,
    /// Open WebSockets per user; one more is refused `429 too_many_connections`.
    #[arg(long, env = "WS_MAX_CONNECTIONS_PER_USER", default_value_t = domain::sockets::DEFAULT_MAX_SOCKETS_PER_USER, value_parser = positive::<usize>)]
    pub ws_max_connections_per_user: usize,
    /// The same per client address (loopback and `TRUSTED_PROXIES` are not bounded).
    #[arg(long, env = "WS_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = domain::sockets::DEFAULT_MAX_SOCKETS_PER_ADDRESS, value_parser = positive::<usize>)]
    pub ws_max_connections_per_address: usize,
    /// Password checks and hashes that may wait for a hashing thread; one
    /// more is refused `503 overloaded`.
    #[arg(long, env = "PASSWORD_QUEUE_LIMIT", default_value = "64", value_parser = positive::<usize>)]
    pub password_queue_limit: usize,
    /// Access tokens whose verified claims are kept in memory; `0` checks
    /// the signature on every request.
    #[arg(long, env = "TOKEN_CACHE_SIZE", default_value = "10000", value_parser = whole)]
    pub token_cache_size: usize,
    /// The window of `LOGIN_MAX_FAILURES`.
    #[arg(long, env = "LOGIN_FAILURE_WINDOW", default_value = "15m", value_parser = nonzero_duration)]
    pub login_failure_window: Duration,
    /// Comma-separated addresses/CIDRs whose `X-Forwarded-For` is believed.
    // A list is one value that `list` splits (`std::vec::Vec` keeps clap from
    // taking the field for repeated values, where an empty item would be
    // refused); its declared default is the empty list.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", value_parser = list(ip_net))]
    pub trusted_proxies: std::vec::Vec<IpNet>,
    /// Comma-separated origins allowed with credentials (REST and WebSocket).
    #[arg(long, env = "CORS_ORIGINS", default_value = "", value_parser = list(origin))]
    pub cors_origins: std::vec::Vec<String>,
    /// The external base URL (`https://auth.example.com`): the URL DPoP
    /// proofs name (`htu`). Unset, a request's own scheme and `Host`.
    #[arg(long, env = "PUBLIC_URL", value_parser = origin)]
    pub public_url: Option<String>,
    /// How far a DPoP proof's `iat` may be from the server's clock.
    #[arg(long, env = "DPOP_PROOF_MAX_AGE", default_value = "60s", value_parser = nonzero_duration)]
    pub dpop_proof_max_age: Duration,
    /// The WebAuthn relying party: the domain passkeys are bound to (the
    /// origins' host or a parent domain of it).
    #[arg(long, env = "WEBAUTHN_RP_ID", default_value = "localhost", value_parser = domain_name)]
    pub webauthn_rp_id: String,
    /// The relying party's name, as authenticators show it.
    #[arg(long, env = "WEBAUTHN_RP_NAME", default_value = "authd")]
    pub webauthn_rp_name: String,
    /// Comma-separated origins a passkey ceremony may come from
    /// (`clientDataJSON.origin`).
    #[arg(
        long,
        env = "WEBAUTHN_ORIGINS",
        default_value = "http://localhost:3000,https://localhost",
        value_parser = list(origin)
    )]
    pub webauthn_origins: std::vec::Vec<String>,
    /// Where mail goes: `smtp://host:port` (STARTTLS when offered),
    /// `smtp+starttls://` (STARTTLS required), `smtps://` (implicit TLS),
    /// with `user:password@` if the server wants it. Unset: `.eml` files
    /// under `MAIL_DIR`. Needs `PUBLIC_URL` (links in mail never come from a
    /// request's `Host`).
    #[arg(long, env = "SMTP_URL", value_parser = smtp_url)]
    pub smtp_url: Option<SmtpUrl>,
    /// A PEM certificate the SMTP server's may be signed by, besides the
    /// web's roots (a private CA).
    #[arg(long, env = "SMTP_CA_FILE", value_parser = path)]
    pub smtp_ca_file: Option<PathBuf>,
    /// The sender of every mail.
    #[arg(long, env = "MAIL_FROM", default_value = "authd <no-reply@localhost>")]
    pub mail_from: String,
    /// Where mail is written without `SMTP_URL` (one 0600 `.eml` each).
    #[arg(long, env = "MAIL_DIR", default_value = "data/mail", value_parser = path)]
    pub mail_dir: PathBuf,
    /// How long a verification link works.
    #[arg(long, env = "EMAIL_VERIFY_EXPIRY", default_value = "24h", value_parser = nonzero_duration)]
    pub email_verify_expiry: Duration,
    /// How long a password-reset link works.
    #[arg(long, env = "PASSWORD_RESET_EXPIRY", default_value = "30m", value_parser = nonzero_duration)]
    pub password_reset_expiry: Duration,
    /// Apply pending migrations at start.
    #[arg(long, env = "AUTO_MIGRATE", default_value = "true", value_parser = boolean, action = ArgAction::Set)]
    pub auto_migrate: bool,
    /// Static demo files served at `/` by the API (none by default).
    #[arg(long, env = "DEMO_DIR", value_parser = path)]
    pub demo_dir: Option<PathBuf>,
    /// `false` turns Swagger UI at `/api/docs` off.
    #[arg(long, env = "API_DOCS", default_value = "true", value_parser = boolean, action = ArgAction::Set)]
    pub api_docs: bool,
    /// `json` or `pretty` (default: pretty on a terminal, JSON otherwise).
    #[arg(long, env = "LOG_FORMAT", value_parser = log_format)]
    pub log_format: Option<LogFormat>,
    /// `host:port` of a separate listener serving Prometheus text at
    /// `GET /metrics`; off when unset. Keep it off the public network.
    #[arg(long, env = "METRICS_ADDR", value_parser = socket_addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// How long security events stay in `audit_events`.
    #[arg(long, env = "AUDIT_RETENTION", default_value = "90d", value_parser = nonzero_duration)]
    pub audit_retention: Duration,
    /// OTLP export of traces and metrics: on when `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// is set (from the variables of [`OtelVariables`]).
    #[arg(skip)]
    pub otlp: Option<OtlpConfig>,
}

/// The standard OpenTelemetry variables the service reads; they make
/// [`Config::otlp`].
#[derive(Debug, Clone, clap::Args)]
struct OtelVariables {
    /// OTLP/HTTP collector base URL, `http://` or `https://`: turns on trace
    /// and metric export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = otlp_endpoint)]
    endpoint: Option<String>,
    /// For `https://`: a PEM file of the certificates the collector's chain
    /// must end in (default: Mozilla's roots).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_CERTIFICATE", value_parser = path)]
    certificate: Option<PathBuf>,
    /// The only protocol supported (no gRPC).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", default_value = "http/protobuf", value_parser = otlp_protocol)]
    protocol: String,
    /// `key=value` pairs, comma-separated, sent with every export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_HEADERS", default_value = "", value_parser = list(otlp_header))]
    headers: std::vec::Vec<(String, String)>,
    /// The service name of the exported signals.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "authd", value_parser = text)]
    service_name: String,
    /// `true` turns the export off.
    #[arg(long, env = "OTEL_SDK_DISABLED", default_value = "false", value_parser = otel_true, action = ArgAction::Set)]
    sdk_disabled: bool,
    /// Refused: client certificates (mutual TLS) are not supported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_CLIENT_KEY", value_parser = no_client_certificates)]
    client_key: Option<String>,
    /// Refused: client certificates (mutual TLS) are not supported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", value_parser = no_client_certificates)]
    client_certificate: Option<String>,
}

impl OtelVariables {
    fn otlp(self) -> Option<OtlpConfig> {
        let endpoint = self.endpoint.filter(|_| !self.sdk_disabled)?;
        Some(OtlpConfig {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            certificate: self.certificate,
            service_name: self.service_name,
            headers: self.headers,
        })
    }
}

/// Everything read from the environment.
#[derive(Debug, clap::Parser)]
#[command(name = "authd", no_binary_name = true, disable_help_flag = true)]
struct Variables {
    #[command(flatten)]
    config: Config,
    #[command(flatten)]
    otel: OtelVariables,
}

impl Variables {
    /// Parses no arguments with `command` (this declaration, perhaps with
    /// some variables removed): what its variables hold, over the defaults.
    fn from_command(command: clap::Command) -> Result<Self, ConfigError> {
        let matches = command
            .try_get_matches_from(std::iter::empty::<&str>())
            .map_err(|e| config_error(&e))?;
        Self::from_arg_matches(&matches).map_err(|e| config_error(&e))
    }

    /// The declared defaults, whatever the environment holds.
    fn declared() -> Self {
        let command = Self::command().mut_args(|arg| arg.env(None::<&'static str>));
        // The defaults parse by construction (`defaults_match_the_contract`).
        match Self::from_command(command) {
            Ok(variables) => variables,
            Err(e) => unreachable!("the defaults are valid: {e}"),
        }
    }

    fn config(self) -> Config {
        Config {
            otlp: self.otel.otlp(),
            ..self.config
        }
    }
}

/// A variable set to nothing but blanks (`FOO=` in a `.env` or compose
/// file) counts as unset: clap would hand its value to the parser, and the
/// setting falls back to its default instead.
fn blank_is_unset(arg: Arg) -> Arg {
    let blank = arg
        .get_env()
        .and_then(std::env::var_os)
        .is_some_and(|value| value.to_str().is_some_and(|v| v.trim().is_empty()));
    if blank {
        arg.env(None::<&'static str>)
    } else {
        arg
    }
}

impl Default for Config {
    /// The declared defaults, whatever the environment holds (tests start
    /// from them: `Config { access_token_expiry: .., ..Config::default() }`).
    fn default() -> Self {
        Variables::declared().config()
    }
}

impl Config {
    /// Where the refresh-grace seal key lives: `REFRESH_SEAL_KEY_PATH`, or
    /// `refresh-seal.key` in the private key's directory.
    pub fn seal_key_path(&self) -> PathBuf {
        self.refresh_seal_key_path.clone().unwrap_or_else(|| {
            self.private_key_path
                .with_file_name(crate::key_files::SEAL_KEY_FILE)
        })
    }

    /// Reads `.env` (when present, without overriding the environment), then the environment.
    ///
    /// # Errors
    /// A variable has a value that cannot be used, or `.env` is malformed.
    pub fn from_env() -> Result<Self, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => {
                return Err(ConfigError {
                    variable: ".env".into(),
                    reason: e.to_string(),
                });
            }
        }
        // Built after `.env` is loaded: clap reads each variable as the
        // declaration is built.
        Variables::from_command(Variables::command().mut_args(blank_is_unset))
            .map(Variables::config)
    }
}

/// The default `arg` declares, as `--help` and the README show it: none for
/// a list (whose declared default is the empty list, `""`).
fn declared_default(arg: &Arg) -> Option<String> {
    arg.get_default_values()
        .first()
        .map(|d| d.to_string_lossy().into_owned())
        .filter(|d| !d.is_empty())
}

/// Every variable with its help and default, for `authd --help`.
pub fn environment_help() -> String {
    let mut help = String::from(
        "Configuration (environment variables; a .env file in the working directory is read too;\n\
         durations are written 900, 15m, 7d or 10s):\n",
    );
    for arg in Variables::command().get_arguments() {
        let Some(name) = arg.get_env() else { continue };
        let text = arg.get_help().map(ToString::to_string).unwrap_or_default();
        help.push_str(&format!("  {}\n          {text}", name.to_string_lossy()));
        if let Some(default) = declared_default(arg) {
            help.push_str(&format!(" [default: {default}]"));
        }
        help.push('\n');
    }
    help.push_str(
        "  RUST_LOG\n          Log filter (tracing's EnvFilter syntax). [default: info]\n",
    );
    help
}

/// The variable of the argument a clap error is about, and the parser's
/// reason. Not clap's own message: that quotes the refused value
/// ("invalid value '..' for '--api-addr <API_ADDR>'"), which may be a secret.
fn config_error(error: &clap::Error) -> ConfigError {
    use clap::error::{ContextKind, ContextValue};
    let arg = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.clone(),
        _ => String::new(),
    };
    let variable = Variables::command()
        .get_arguments()
        .find(|a| {
            a.get_long()
                .is_some_and(|l| arg.starts_with(&format!("--{l} ")) || arg == format!("--{l}"))
        })
        .and_then(|a| a.get_env())
        .map_or_else(
            || "configuration".to_owned(),
            |e| e.to_string_lossy().into_owned(),
        );
    // The parser's own message (ours, none of which repeats the value), or
    // the kind of error ("invalid UTF-8 was detected ..."), never the value.
    let reason = std::error::Error::source(error)
        .map_or_else(|| error.kind().to_string(), ToString::to_string);
    ConfigError { variable, reason }
}

#[cfg(test)]
mod tests;

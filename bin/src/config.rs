//! Configuration from the environment (and a `.env` file): the contract's
//! Configuration table. A bad value stops start-up with a message naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use adapters::net::IpNet;
use adapters::telemetry::otlp::OtlpConfig;

/// The default database: an embedded SQLite file under `data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/authd.db?mode=rwc";

/// A variable with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for {variable}: {reason}")]
pub struct ConfigError {
    /// The variable's name.
    pub variable: &'static str,
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

/// Every setting of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `API_ADDR`.
    pub api_addr: SocketAddr,
    /// `WS_ADDR`.
    pub ws_addr: SocketAddr,
    /// `PRIVATE_KEY_PATH` (PKCS#8 PEM).
    pub private_key_path: PathBuf,
    /// `PUBLIC_KEY_PATH` (SPKI PEM).
    pub public_key_path: PathBuf,
    /// `REFRESH_SEAL_KEY_PATH`; `None`: `refresh-seal.key` next to the private key.
    pub refresh_seal_key_path: Option<PathBuf>,
    /// `ACCESS_TOKEN_EXPIRY`.
    pub access_token_expiry: Duration,
    /// `REFRESH_TOKEN_EXPIRY`.
    pub refresh_token_expiry: Duration,
    /// `REFRESH_REUSE_GRACE`.
    pub refresh_reuse_grace: Duration,
    /// `SESSION_MAX_AGE`.
    pub session_max_age: Duration,
    /// `WS_EXPIRY_WARNING`.
    pub ws_expiry_warning: Duration,
    /// `JWT_ISSUER`.
    pub jwt_issuer: String,
    /// `JWT_AUDIENCE`.
    pub jwt_audience: String,
    /// `COOKIE_SECURE`.
    pub cookie_secure: bool,
    /// `ALLOW_REGISTRATION`.
    pub allow_registration: bool,
    /// `LOGIN_MAX_FAILURES`.
    pub login_max_failures: u32,
    /// `API_MAX_CONNECTIONS`: open REST connections at most; one more is
    /// answered `503 overloaded` and closed. Default: seven eighths of the
    /// open-file limit (after raising it to the hard limit), less 64.
    pub api_max_connections: Option<usize>,
    /// `API_REQUEST_TIMEOUT` (default `10s`): from a request's first byte
    /// (or the connection's opening) to its answer's first byte; a slower
    /// client loses the connection.
    pub api_request_timeout: Duration,
    /// `WS_MAX_CONNECTIONS_PER_USER` (default 100): one more socket for the
    /// user is refused `429 too_many_connections` before the upgrade.
    pub ws_max_connections_per_user: usize,
    /// `WS_MAX_CONNECTIONS_PER_ADDRESS` (default 1000): the same per client
    /// address (loopback and `TRUSTED_PROXIES` are not bounded).
    pub ws_max_connections_per_address: usize,
    /// `PASSWORD_QUEUE_LIMIT` (default 64): password checks and hashes that
    /// may wait for a hashing thread; one more is refused `503 overloaded`.
    pub password_queue_limit: usize,
    /// `TOKEN_CACHE_SIZE` (default 10,000): access tokens whose verified
    /// claims are kept in memory; 0 checks the signature on every request.
    pub token_cache_size: usize,
    /// `LOGIN_FAILURE_WINDOW`.
    pub login_failure_window: Duration,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<IpNet>,
    /// `CORS_ORIGINS`.
    pub cors_origins: Vec<String>,
    /// `AUTO_MIGRATE` (default `true`): apply migrations at start.
    pub auto_migrate: bool,
    /// `DEMO_DIR`: static demo files served at `/` by the API (none by default).
    pub demo_dir: Option<PathBuf>,
    /// `API_DOCS`: serve Swagger UI at `/api/docs`.
    pub api_docs: bool,
    /// `LOG_FORMAT`: `json` or `pretty` (default: pretty on a terminal, JSON otherwise).
    pub log_format: Option<LogFormat>,
    /// `METRICS_ADDR`: where `GET /metrics` (Prometheus text) listens; off when unset.
    /// Keep it off the public network.
    pub metrics_addr: Option<SocketAddr>,
    /// `AUDIT_RETENTION` (default `90d`): how long security events are kept.
    pub audit_retention: Duration,
    /// OTLP export of traces and metrics: on when `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// is set (`OTEL_EXPORTER_OTLP_PROTOCOL` must then be `http/protobuf`).
    pub otlp: Option<OtlpConfig>,
}

impl Default for Config {
    fn default() -> Self {
        // The defaults parse by construction; an empty environment is the default configuration.
        match Self::from_lookup(|_| None) {
            Ok(config) => config,
            Err(e) => unreachable!("the defaults are valid: {e}"),
        }
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
                    variable: ".env",
                    reason: e.to_string(),
                });
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (tests pass a map).
    ///
    /// # Errors
    /// A variable has a value that cannot be used.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let string =
            |name: &'static str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        let duration = |name: &'static str, default: &str| {
            parse_duration(&string(name, default)).map_err(|reason| ConfigError {
                variable: name,
                reason,
            })
        };
        let boolean = |name: &'static str, default: bool| match get(name) {
            None => Ok(default),
            Some(v) => parse_bool(&v).ok_or_else(|| ConfigError {
                variable: name,
                reason: "expected true or false".into(),
            }),
        };
        let addr = |name: &'static str, default: &str| {
            string(name, default)
                .parse::<SocketAddr>()
                .map_err(|e| ConfigError {
                    variable: name,
                    reason: format!("expected host:port with an IP address ({e})"),
                })
        };
        let list = |name: &'static str| -> Vec<String> {
            get(name)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };

        let database_url = string("DATABASE_URL", DEFAULT_DATABASE_URL);
        if !["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            return Err(ConfigError {
                variable: "DATABASE_URL",
                reason: "expected a postgres:// or sqlite:// URL".into(),
            });
        }
        let nonzero = |name: &'static str, d: Duration| {
            if d.is_zero() {
                Err(ConfigError {
                    variable: name,
                    reason: "must be longer than zero".into(),
                })
            } else {
                Ok(d)
            }
        };
        let positive = |name: &'static str, default: u32| match get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError {
                    variable: name,
                    reason: "expected a positive whole number".into(),
                }),
        };
        let login_max_failures = positive("LOGIN_MAX_FAILURES", 5)?;
        let password_queue_limit = positive("PASSWORD_QUEUE_LIMIT", 64)? as usize;
        let ws_max_connections_per_user = positive("WS_MAX_CONNECTIONS_PER_USER", 100)? as usize;
        let ws_max_connections_per_address =
            positive("WS_MAX_CONNECTIONS_PER_ADDRESS", 1000)? as usize;
        let api_max_connections = match get("API_MAX_CONNECTIONS") {
            None => None,
            Some(_) => Some(positive("API_MAX_CONNECTIONS", 1)? as usize),
        };
        let token_cache_size = match get("TOKEN_CACHE_SIZE") {
            None => 10_000,
            Some(v) => v.parse::<usize>().ok().ok_or_else(|| ConfigError {
                variable: "TOKEN_CACHE_SIZE",
                reason: "expected a whole number (0 turns the cache off)".into(),
            })?,
        };
        let trusted_proxies = list("TRUSTED_PROXIES")
            .iter()
            .map(|p| p.parse::<IpNet>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError {
                variable: "TRUSTED_PROXIES",
                reason: e.to_string(),
            })?;
        let cors_origins = list("CORS_ORIGINS");
        if let Some(bad) = cors_origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/'))
        {
            return Err(ConfigError {
                variable: "CORS_ORIGINS",
                reason: format!("{bad:?} is not an origin like https://app.example.com"),
            });
        }
        let log_format = match get("LOG_FORMAT").map(|v| v.to_ascii_lowercase()).as_deref() {
            None => None,
            Some("json") => Some(LogFormat::Json),
            Some("pretty" | "text") => Some(LogFormat::Pretty),
            Some(_) => {
                return Err(ConfigError {
                    variable: "LOG_FORMAT",
                    reason: "expected json or pretty".into(),
                });
            }
        };
        let metrics_addr = match get("METRICS_ADDR") {
            None => None,
            Some(_) => Some(addr("METRICS_ADDR", "")?),
        };
        let otlp = otlp_config(&get)?;

        Ok(Self {
            database_url,
            api_addr: addr("API_ADDR", "127.0.0.1:3000")?,
            ws_addr: addr("WS_ADDR", "127.0.0.1:3001")?,
            private_key_path: string("PRIVATE_KEY_PATH", "keys/private.pem").into(),
            public_key_path: string("PUBLIC_KEY_PATH", "keys/public.pem").into(),
            refresh_seal_key_path: get("REFRESH_SEAL_KEY_PATH").map(PathBuf::from),
            access_token_expiry: nonzero(
                "ACCESS_TOKEN_EXPIRY",
                duration("ACCESS_TOKEN_EXPIRY", "15m")?,
            )?,
            refresh_token_expiry: nonzero(
                "REFRESH_TOKEN_EXPIRY",
                duration("REFRESH_TOKEN_EXPIRY", "7d")?,
            )?,
            refresh_reuse_grace: duration("REFRESH_REUSE_GRACE", "10s")?,
            session_max_age: nonzero("SESSION_MAX_AGE", duration("SESSION_MAX_AGE", "30d")?)?,
            ws_expiry_warning: duration("WS_EXPIRY_WARNING", "60s")?,
            jwt_issuer: string("JWT_ISSUER", "auth"),
            jwt_audience: string("JWT_AUDIENCE", "api"),
            cookie_secure: boolean("COOKIE_SECURE", true)?,
            allow_registration: boolean("ALLOW_REGISTRATION", true)?,
            login_max_failures,
            password_queue_limit,
            ws_max_connections_per_user,
            ws_max_connections_per_address,
            api_max_connections,
            api_request_timeout: nonzero(
                "API_REQUEST_TIMEOUT",
                duration("API_REQUEST_TIMEOUT", "10s")?,
            )?,
            token_cache_size,
            login_failure_window: nonzero(
                "LOGIN_FAILURE_WINDOW",
                duration("LOGIN_FAILURE_WINDOW", "15m")?,
            )?,
            trusted_proxies,
            cors_origins,
            auto_migrate: boolean("AUTO_MIGRATE", true)?,
            demo_dir: get("DEMO_DIR").map(PathBuf::from),
            api_docs: boolean("API_DOCS", true)?,
            log_format,
            metrics_addr,
            audit_retention: nonzero("AUDIT_RETENTION", duration("AUDIT_RETENTION", "90d")?)?,
            otlp,
        })
    }
}

/// The OTLP settings from the standard `OTEL_*` variables.
fn otlp_config(get: &impl Fn(&str) -> Option<String>) -> Result<Option<OtlpConfig>, ConfigError> {
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let Some(endpoint) = get("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Ok(None);
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(ConfigError {
            variable: "OTEL_EXPORTER_OTLP_ENDPOINT",
            reason: format!("{endpoint:?} is not an http:// or https:// URL"),
        });
    }
    // Client certificates (mutual TLS) are not supported: refused rather
    // than silently exporting without them.
    for variable in [
        "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    ] {
        if get(variable).is_some() {
            return Err(ConfigError {
                variable,
                reason: "client certificates (mutual TLS) are not supported: use \
                         OTEL_EXPORTER_OTLP_HEADERS for credentials, or a collector \
                         next to the service"
                    .into(),
            });
        }
    }
    match get("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        None | Some("http/protobuf") => {}
        Some(other) => {
            return Err(ConfigError {
                variable: "OTEL_EXPORTER_OTLP_PROTOCOL",
                reason: format!("{other:?} is not supported: use http/protobuf"),
            });
        }
    }
    let headers = get("OTEL_EXPORTER_OTLP_HEADERS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| ConfigError {
                    variable: "OTEL_EXPORTER_OTLP_HEADERS",
                    reason: "expected key=value pairs separated by commas".into(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(OtlpConfig {
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        certificate: get("OTEL_EXPORTER_OTLP_CERTIFICATE").map(PathBuf::from),
        service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "authd".into()),
        headers,
    }))
}

/// Parses `900`, `900s`, `15m`, `2h`, `7d` (also `500ms`).
///
/// # Errors
/// Anything else, as a message.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("expected a duration like 900, 15m, 7d or 10s, got {text:?}");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(bad)
    };
    match unit.trim() {
        "" | "s" => secs(1),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(bad()),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

//! The value parsers of the configuration's variables: what text each
//! takes. Each trims its value, and none repeats it in an error: the
//! variable's name is enough to find it, and it may be a secret.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use adapters::net::IpNet;
use domain::Algorithm;

use super::LogFormat;

pub(super) fn text(text: &str) -> Result<String, Infallible> {
    Ok(text.trim().to_owned())
}

/// `SMTP_URL`: it may hold a password, so `Debug` shows only the scheme
/// and host.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(pub String);

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("?", ""));
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        write!(f, "SmtpUrl({scheme}://{host})")
    }
}

pub(super) fn smtp_url(text: &str) -> Result<SmtpUrl, String> {
    if ["smtp://", "smtp+starttls://", "smtps://"]
        .iter()
        .any(|p| text.starts_with(p))
    {
        Ok(SmtpUrl(text.to_owned()))
    } else {
        Err("expected smtp://, smtp+starttls:// or smtps://".into())
    }
}

pub(super) fn path(text: &str) -> Result<PathBuf, Infallible> {
    Ok(PathBuf::from(text.trim()))
}

pub(super) fn database_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if ["postgres://", "postgresql://", "sqlite:"]
        .iter()
        .any(|p| text.starts_with(p))
    {
        Ok(text.to_owned())
    } else {
        Err("expected a postgres:// or sqlite:// URL".into())
    }
}

pub(super) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|e| format!("expected host:port with an IP address ({e})"))
}

pub(super) fn jwt_alg(text: &str) -> Result<Algorithm, String> {
    Algorithm::parse(text.trim()).map_err(|e| e.to_string())
}

/// The shortest `ACCESS_TOKEN_EXPIRY` accepted (security review 2, finding
/// 11): below it a token is spent before a client can use it and refresh
/// in time (at 500 ms, `exp` equals `iat`).
pub const MIN_ACCESS_TOKEN_EXPIRY: Duration = Duration::from_secs(10);

pub(super) fn access_lifetime(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d < MIN_ACCESS_TOKEN_EXPIRY => Err(format!(
            "must be at least {} seconds",
            MIN_ACCESS_TOKEN_EXPIRY.as_secs()
        )),
        d => Ok(d),
    }
}

pub(super) fn nonzero_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be longer than zero".into()),
        d => Ok(d),
    }
}

pub(super) fn boolean(text: &str) -> Result<bool, String> {
    parse_bool(text).ok_or_else(|| "expected true or false".into())
}

pub(super) fn positive<T: std::str::FromStr + Default + PartialOrd>(
    text: &str,
) -> Result<T, String> {
    text.trim()
        .parse::<T>()
        .ok()
        .filter(|n| *n > T::default())
        .ok_or_else(|| "expected a positive whole number".into())
}

pub(super) fn whole(text: &str) -> Result<usize, String> {
    text.trim()
        .parse()
        .map_err(|_| "expected a whole number (0 turns the cache off)".into())
}

/// A comma-separated list of what `item` parses: items are trimmed, empty
/// ones dropped (`a,,b,` is `a`, `b`); an error names the item by its place.
pub(super) fn list<T: 'static>(
    item: fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<Vec<T>, String> + Clone + Send + Sync + 'static {
    move |text| {
        text.split(',')
            .enumerate()
            .filter(|(_, i)| !i.trim().is_empty())
            .map(|(n, i)| item(i).map_err(|e| format!("item {}: {e}", n + 1)))
            .collect()
    }
}

pub(super) fn ip_net(text: &str) -> Result<IpNet, String> {
    text.trim()
        .parse()
        .map_err(|e: adapters::net::IpNetError| e.to_string())
}

pub(super) fn origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    if (text.starts_with("http://") || text.starts_with("https://")) && !text.ends_with('/') {
        Ok(text.to_owned())
    } else {
        Err("expected an origin like https://app.example.com (no path, no trailing slash)".into())
    }
}

/// A DNS name: labels of letters, digits and hyphens, lower-cased.
pub(super) fn domain_name(text: &str) -> Result<String, String> {
    let name = text.trim().to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(name)
    } else {
        Err("expected a domain name like auth.example.com (no scheme, no port)".into())
    }
}

pub(super) fn log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "json" => Ok(LogFormat::Json),
        "pretty" | "text" => Ok(LogFormat::Pretty),
        _ => Err("expected json or pretty".into()),
    }
}

pub(super) fn otlp_endpoint(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with("http://") || text.starts_with("https://") {
        Ok(text.to_owned())
    } else {
        Err("expected an http:// or https:// URL".into())
    }
}

pub(super) fn otlp_protocol(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text == "http/protobuf" {
        Ok(text.to_owned())
    } else {
        Err("not supported: use http/protobuf".into())
    }
}

pub(super) fn otlp_header(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| "expected key=value pairs separated by commas".into())
}

/// OpenTelemetry's boolean: `true` in any case is true, anything else false.
pub(super) fn otel_true(text: &str) -> Result<bool, Infallible> {
    Ok(text.trim().eq_ignore_ascii_case("true"))
}

pub(super) fn no_client_certificates(_: &str) -> Result<String, String> {
    Err("client certificates (mutual TLS) are not supported: use \
         OTEL_EXPORTER_OTLP_HEADERS for credentials, or a collector next to the service"
        .into())
}

/// Parses `900`, `900s`, `15m`, `2h`, `7d` (also `500ms`).
///
/// # Errors
/// Anything else, as a message (which does not repeat `text`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || "expected a duration like 900, 15m, 7d or 10s".to_owned();
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| "too long a duration".to_owned())
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

pub(super) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

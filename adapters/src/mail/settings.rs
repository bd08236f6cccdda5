//! The mail settings, checked once at start: where mail goes (`SMTP_URL`, or
//! files), who sends it (`MAIL_FROM`), and which certificate authorities an
//! SMTP server's certificate may chain to (`SMTP_CA_FILE`). A mistake is an
//! error naming the setting; the URL's password is never in one, nor in
//! `Debug` or `Display`.

use std::fmt;
use std::path::{Path, PathBuf};

use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
use lettre::transport::smtp::{SMTP_PORT, SUBMISSION_PORT, SUBMISSIONS_PORT};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use secrecy::{ExposeSecret as _, SecretString};

/// `MAIL_FROM` when it is not set.
pub const DEFAULT_MAIL_FROM: &str = "authd <no-reply@localhost>";

/// A setting that cannot work. The messages name the setting and never hold
/// the password of `SMTP_URL`.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    /// `SMTP_URL` does not parse as a URL.
    #[error("SMTP_URL is not a URL: {0}")]
    NotAUrl(url::ParseError),
    /// `SMTP_URL` has a scheme other than the three known.
    #[error("SMTP_URL: the scheme must be smtp, smtp+starttls or smtps, not `{0}`")]
    Scheme(String),
    /// `SMTP_URL` parses, but one of its parts is wrong.
    #[error("SMTP_URL: {0}")]
    SmtpUrl(&'static str),
    /// `MAIL_FROM` is not a mailbox.
    #[error("MAIL_FROM is not a mailbox such as `authd <no-reply@example.com>`: `{0}`")]
    MailFrom(String),
    /// `SMTP_CA_FILE` cannot be read or holds no usable certificate.
    #[error("SMTP_CA_FILE {}: {reason}", path.display())]
    CaFile {
        /// The file named.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// How the connection to the SMTP server is protected, by `SMTP_URL`'s scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://` (default port 25): STARTTLS when the server offers it,
    /// plain text otherwise.
    Opportunistic,
    /// `smtp+starttls://` (default port 587): STARTTLS, or no delivery.
    StartTls,
    /// `smtps://` (default port 465): TLS from the first byte.
    Implicit,
}

impl SmtpSecurity {
    fn from_scheme(scheme: &str) -> Option<Self> {
        match scheme {
            "smtp" => Some(Self::Opportunistic),
            "smtp+starttls" => Some(Self::StartTls),
            "smtps" => Some(Self::Implicit),
            _ => None,
        }
    }

    /// The URL scheme that asks for this.
    #[must_use]
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Opportunistic => "smtp",
            Self::StartTls => "smtp+starttls",
            Self::Implicit => "smtps",
        }
    }

    /// The port when the URL names none.
    #[must_use]
    pub fn default_port(self) -> u16 {
        match self {
            Self::Opportunistic => SMTP_PORT,
            Self::StartTls => SUBMISSION_PORT,
            Self::Implicit => SUBMISSIONS_PORT,
        }
    }
}

/// The SMTP server of `SMTP_URL`. `Debug` and `Display` show
/// `scheme://user@host:port`, never the password.
#[derive(Clone)]
pub struct SmtpServer {
    security: SmtpSecurity,
    host: String,
    port: u16,
    credentials: Option<(String, SecretString)>,
    tls: TlsParameters,
}

impl SmtpServer {
    /// How the connection is protected.
    #[must_use]
    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    /// The host name or IP address (IPv6 without brackets).
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, the scheme's default when the URL names none.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name of the URL, percent-decoded.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(user, _)| user.as_str())
    }

    /// The user name and password, for lettre.
    pub(super) fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.expose_secret()))
    }

    /// The TLS settings (server name, roots) for STARTTLS or implicit TLS.
    pub(super) fn tls(&self) -> &TlsParameters {
        &self.tls
    }
}

impl fmt::Display for SmtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.security.scheme())?;
        if let Some(user) = self.user() {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpServer")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user())
            .field("password", &self.credentials.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// To the SMTP server of `SMTP_URL`.
    Smtp(SmtpServer),
    /// Without `SMTP_URL`: one `.eml` file per mail in this directory.
    Files(PathBuf),
}

/// The checked mail settings; [`super::mailer`] turns them into a mailer.
#[derive(Debug, Clone)]
pub struct MailSettings {
    from: Mailbox,
    delivery: Delivery,
}

impl MailSettings {
    /// Checks the settings: `smtp_url` (`SMTP_URL`; `None` or empty: files
    /// in `mail_dir`), `mail_from` (`MAIL_FROM`, e.g. [`DEFAULT_MAIL_FROM`])
    /// and `extra_ca_pem` (`SMTP_CA_FILE`: PEM certificates trusted besides
    /// Mozilla's roots; read now, unused without `SMTP_URL`).
    ///
    /// `SMTP_URL` is `smtp://`, `smtp+starttls://` or `smtps://`, then
    /// optionally `user:password@` (percent-encoded), a host, and optionally
    /// `:port`; a trailing `/` at most.
    ///
    /// # Errors
    /// [`MailConfigError`], naming the setting.
    pub fn new(
        smtp_url: Option<&str>,
        mail_from: &str,
        mail_dir: PathBuf,
        extra_ca_pem: Option<PathBuf>,
    ) -> Result<Self, MailConfigError> {
        let from = parse_mail_from(mail_from)?;
        let delivery = match smtp_url.filter(|url| !url.trim().is_empty()) {
            None => Delivery::Files(mail_dir),
            Some(url) => Delivery::Smtp(parse_smtp_url(url, extra_ca_pem.as_deref())?),
        };
        Ok(Self { from, delivery })
    }

    /// The sender of every mail (`From`, and the envelope's sender).
    #[must_use]
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Where mail goes.
    #[must_use]
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }
}

fn parse_mail_from(mail_from: &str) -> Result<Mailbox, MailConfigError> {
    let refuse = || MailConfigError::MailFrom(mail_from.escape_debug().to_string());
    // No line break or other control character can reach a header.
    if mail_from.chars().any(char::is_control) {
        return Err(refuse());
    }
    mail_from.trim().parse::<Mailbox>().map_err(|_| refuse())
}

fn parse_smtp_url(raw: &str, extra_ca_pem: Option<&Path>) -> Result<SmtpServer, MailConfigError> {
    use MailConfigError::SmtpUrl;

    let url = url::Url::parse(raw.trim()).map_err(MailConfigError::NotAUrl)?;
    let security = SmtpSecurity::from_scheme(url.scheme())
        .ok_or_else(|| MailConfigError::Scheme(url.scheme().to_owned()))?;
    let host = match url.host() {
        Some(url::Host::Domain(name)) => name.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => String::new(),
    };
    if host.is_empty() {
        return Err(SmtpUrl("no host (smtp://host:port)"));
    }
    // The name TLS checks the certificate against, also for `smtp://`.
    if ServerName::try_from(host.as_str()).is_err() {
        return Err(SmtpUrl("the host is neither a DNS name nor an IP address"));
    }
    let port = url.port().unwrap_or_else(|| security.default_port());
    if port == 0 {
        return Err(SmtpUrl("port 0"));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(SmtpUrl(
            "only user:password@host:port, no path, query or fragment",
        ));
    }
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        ("", Some(_)) => return Err(SmtpUrl("a password without a user name")),
        (_, None) => return Err(SmtpUrl("a user name without a password (user:password@)")),
        (user, Some(password)) => {
            let decode = |part: &str| {
                percent_encoding::percent_decode_str(part)
                    .decode_utf8()
                    .map(std::borrow::Cow::into_owned)
            };
            let user = decode(user).map_err(|_| SmtpUrl("the user name is not UTF-8"))?;
            let password = decode(password).map_err(|_| SmtpUrl("the password is not UTF-8"))?;
            Some((user, SecretString::from(password)))
        }
    };
    let tls = tls_parameters(&host, extra_ca_pem)?;
    Ok(SmtpServer {
        security,
        host,
        port,
        credentials,
        tls,
    })
}

/// rustls (on ring, as everywhere in the build) checking the server's
/// certificate for `host` against Mozilla's roots plus those in
/// `extra_ca_pem`.
fn tls_parameters(
    host: &str,
    extra_ca_pem: Option<&Path>,
) -> Result<TlsParameters, MailConfigError> {
    let mut builder =
        TlsParameters::builder(host.to_owned()).certificate_store(CertificateStore::WebpkiRoots);
    if let Some(path) = extra_ca_pem {
        let ca_error = |reason: String| MailConfigError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect)
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("holds no PEM certificate".into()));
        }
        for cert in certs {
            let cert = Certificate::from_der(cert.to_vec()).map_err(|e| ca_error(e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        // Each certificate is parsed as a trust anchor here, not at the first mail.
        return builder.build_rustls().map_err(|e| ca_error(e.to_string()));
    }
    builder
        .build_rustls()
        .map_err(|_| MailConfigError::SmtpUrl("the TLS settings cannot be built"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(url: &str) -> Result<SmtpServer, MailConfigError> {
        match MailSettings::new(Some(url), DEFAULT_MAIL_FROM, PathBuf::new(), None)?.delivery {
            Delivery::Smtp(server) => Ok(server),
            Delivery::Files(_) => panic!("{url} gave files"),
        }
    }

    #[test]
    fn each_scheme_has_its_security_and_default_port() {
        for (url, security, port) in [
            ("smtp://mail.example.com", SmtpSecurity::Opportunistic, 25),
            (
                "smtp+starttls://mail.example.com",
                SmtpSecurity::StartTls,
                587,
            ),
            ("smtps://mail.example.com/", SmtpSecurity::Implicit, 465),
            (
                "SMTPS://mail.example.com:2465",
                SmtpSecurity::Implicit,
                2465,
            ),
            ("smtp://127.0.0.1:2525", SmtpSecurity::Opportunistic, 2525),
        ] {
            let server = smtp(url).unwrap();
            assert_eq!(
                (server.security(), server.port()),
                (security, port),
                "{url}"
            );
            assert_eq!(server.user(), None);
        }
        assert_eq!(smtp("smtp://[::1]:25").unwrap().host(), "::1");
        assert_eq!(
            smtp("smtp://[::1]:25").unwrap().to_string(),
            "smtp://[::1]:25"
        );
    }

    #[test]
    fn credentials_are_percent_decoded_and_the_password_never_shown() {
        let server = smtp("smtps://me%40example.com:p%40ss%3Aw0rd@mail.example.com").unwrap();
        assert_eq!(server.credentials(), Some(("me@example.com", "p@ss:w0rd")));
        let shown = format!("{server} {server:?}");
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );
        assert!(
            shown.contains("smtps://me@example.com@mail.example.com:465"),
            "{shown}"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_their_password() {
        for url in [
            "mail.example.com:25",
            "http://u:hunter2@mail.example.com",
            "smtp://u:hunter2@:25",
            "smtp://u:hunter2@mail.example.com:0",
            "smtp://u:hunter2@mail.example.com:99999",
            "smtp://u:hunter2@mail.example.com/inbox",
            "smtp://u:hunter2@mail.example.com?tls=no",
            "smtp://:hunter2@mail.example.com",
            "smtp://u@mail.example.com",
            "smtp://u:hunter2%FF@mail.example.com",
            "smtp://u:hunter2@bad_host!",
        ] {
            let error = smtp(url).unwrap_err().to_string();
            assert!(error.starts_with("SMTP_URL"), "{url}: {error}");
            assert!(!error.contains("hunter2"), "{url}: {error}");
        }
    }

    #[test]
    fn no_url_means_files() {
        for url in [None, Some(""), Some("  ")] {
            let settings =
                MailSettings::new(url, DEFAULT_MAIL_FROM, PathBuf::from("data/mail"), None)
                    .unwrap();
            assert!(
                matches!(settings.delivery(), Delivery::Files(dir) if dir == Path::new("data/mail"))
            );
        }
    }

    #[test]
    fn mail_from_must_be_one_mailbox() {
        let from = MailSettings::new(None, DEFAULT_MAIL_FROM, PathBuf::new(), None).unwrap();
        assert_eq!(from.from().email.to_string(), "no-reply@localhost");
        assert_eq!(from.from().name.as_deref(), Some("authd"));
        for ok in ["no-reply@example.com", "\"Auth, Inc.\" <a@example.com>"] {
            assert!(
                MailSettings::new(None, ok, PathBuf::new(), None).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "",
            "authd",
            "a@",
            "authd <a@example.com>\r\nBcc: x@example.com",
            "a@b, c@d",
        ] {
            let error = MailSettings::new(None, bad, PathBuf::new(), None).unwrap_err();
            assert!(error.to_string().starts_with("MAIL_FROM"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_ca_file_must_hold_a_certificate() {
        let path = std::env::temp_dir().join(format!("authd-smtp-ca-{}.pem", uuid::Uuid::new_v4()));
        let with_ca = |path: &Path| {
            MailSettings::new(
                Some("smtps://u:hunter2@mail.example.com"),
                DEFAULT_MAIL_FROM,
                PathBuf::new(),
                Some(path.to_owned()),
            )
            .unwrap_err()
            .to_string()
        };
        let missing = with_ca(&path);
        assert!(missing.starts_with("SMTP_CA_FILE"), "{missing}");
        std::fs::write(&path, "not a certificate\n").unwrap();
        assert!(with_ca(&path).contains("holds no PEM certificate"));
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let bad = with_ca(&path);
        assert!(
            bad.starts_with("SMTP_CA_FILE") && !bad.contains("hunter2"),
            "{bad}"
        );
        std::fs::remove_file(&path).unwrap();
    }
}

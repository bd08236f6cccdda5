//! The mail adapter against a real SMTP server (`tests/clients/smtp_sink.py`,
//! Python's aiosmtpd): each `SMTP_URL` form, credentials, TLS trust, the
//! server's `4xx`/`5xx` answers, the server down then up; and the file
//! mailer used without `SMTP_URL`; and the settings' checks.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::mail::{DEFAULT_MAIL_FROM, MailSettings, mailer};
use application::ports::{DeliveryError, Mailer, OutgoingMail};
use integration_tests::process::temp_dir;
use integration_tests::smtp::{ReceivedMail, SinkOptions, SmtpSink};

const FROM: &str = "authd <no-reply@auth.example.com>";
const TOKEN: &str = "tok-3q2J9xV0aLr8";
const WAIT: Duration = Duration::from_secs(10);

fn mail() -> OutgoingMail {
    let id = format!("m-{}", uuid::Uuid::new_v4());
    OutgoingMail {
        id,
        to: "Bob@Example.org".into(),
        subject: "Réinitialisez votre mot de passe".into(),
        text: format!(
            "Open http://127.0.0.1:3000/?reset={TOKEN} to choose a new password.\n\nToken: {TOKEN}\n"
        ),
        html: format!("<p><a href=\"http://127.0.0.1:3000/?reset={TOKEN}\">Reset</a></p>"),
    }
}

fn smtp_mailer(url: &str, ca: Option<&Path>) -> Arc<dyn Mailer> {
    let settings = MailSettings::new(Some(url), FROM, PathBuf::new(), ca.map(Path::to_owned))
        .expect("valid mail settings");
    mailer(&settings).unwrap()
}

fn sink(options: SinkOptions) -> SmtpSink {
    SmtpSink::start(options).expect("the SMTP sink starts")
}

/// The one mail received, checked as sent: envelope, headers, both parts.
fn assert_is(received: &ReceivedMail, sent: &OutgoingMail) {
    assert_eq!(received.mail_from, "no-reply@auth.example.com");
    assert_eq!(received.rcpt_tos, ["Bob@Example.org"]);
    assert_eq!(received.header("From"), Some(FROM));
    assert_eq!(received.header("To"), Some("Bob@Example.org"));
    assert_eq!(received.header("Subject"), Some(sent.subject.as_str()));
    let message_id = format!("<{}@auth.example.com>", sent.id);
    assert_eq!(received.header("Message-ID"), Some(message_id.as_str()));
    assert!(received.header("Date").is_some(), "{:?}", received.headers);
    assert!(
        received
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("multipart/alternative")),
        "{:?}",
        received.headers
    );
    assert_eq!(received.text.as_deref(), Some(sent.text.as_str()));
    assert_eq!(received.html.as_deref(), Some(sent.html.as_str()));
    assert_eq!(received.token(), Some(TOKEN));
}

fn transient(result: Result<(), DeliveryError>) -> String {
    match result {
        Err(DeliveryError::Transient(why)) => why,
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

fn permanent(result: Result<(), DeliveryError>) -> String {
    match result {
        Err(DeliveryError::Permanent(why)) => why,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

/// `smtp://` to a server without STARTTLS: delivered in plain text, with
/// the envelope, the headers and both parts as sent; the log line names the
/// id and the recipient's domain, never the address or the token.
#[tokio::test]
#[cfg_attr(
    missing = "python-aiosmtpd",
    ignore = "needs Python aiosmtpd (pip install aiosmtpd)"
)]
async fn plain_smtp_delivers_the_whole_mail_and_logs_no_token() {
    use tracing_subscriber::util::SubscriberInitExt as _;

    let sink = sink(SinkOptions::plain());
    let log = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = Arc::clone(&log);
    let _guard = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || Capture(Arc::clone(&writer)))
        .finish()
        .set_default();

    let sent = mail();
    smtp_mailer(&sink.url("smtp"), None)
        .send(&sent)
        .await
        .unwrap();

    let received = sink.wait_for(1, WAIT).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_is(&received[0], &sent);
    assert!(!received[0].tls);
    assert_eq!(received[0].auth, None);

    let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let delivered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mail delivered"))
        .collect();
    assert_eq!(delivered.len(), 1, "{log}");
    assert!(delivered[0].contains(&sent.id), "{log}");
    assert!(delivered[0].contains("Example.org"), "{log}");
    assert!(!log.contains("Bob@") && !log.contains(TOKEN), "{log}");
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `smtp://` to a server that offers STARTTLS: the mail goes over TLS,
/// the server's certificate checked against `SMTP_CA_FILE`.
#[tokio::test]
#[cfg_attr(
    any(missing = "python-aiosmtpd", missing = "openssl"),
    ignore = "needs Python aiosmtpd (pip install aiosmtpd) and openssl"
)]
async fn smtp_upgrades_to_tls_when_starttls_is_offered() {
    let sink = sink(SinkOptions::starttls());
    let sent = mail();
    smtp_mailer(&sink.url("smtp"), sink.ca_file())
        .send(&sent)
        .await
        .unwrap();
    let received = sink.wait_for(1, WAIT).await.unwrap();
    assert_is(&received[0], &sent);
    assert!(received[0].tls, "delivered in plain text");
}

/// `smtp+starttls://` to a server without STARTTLS: not delivered, and
/// worth a retry (the server may be fixed); nothing reaches the server.
#[tokio::test]
#[cfg_attr(
    missing = "python-aiosmtpd",
    ignore = "needs Python aiosmtpd (pip install aiosmtpd)"
)]
async fn required_starttls_is_not_given_up_for_plain_text() {
    let sink = sink(SinkOptions::plain());
    let why = transient(
        smtp_mailer(&sink.url("smtp+starttls"), None)
            .send(&mail())
            .await,
    );
    assert!(why.contains("STARTTLS"), "{why}");
    assert!(!why.contains(TOKEN));
    assert!(sink.received().is_empty());
}

/// A certificate nobody trusts (no `SMTP_CA_FILE`, and not one of Mozilla's
/// roots): a transient TLS failure with STARTTLS and with implicit TLS,
/// nothing delivered.
#[tokio::test]
#[cfg_attr(
    any(missing = "python-aiosmtpd", missing = "openssl"),
    ignore = "needs Python aiosmtpd (pip install aiosmtpd) and openssl"
)]
async fn an_untrusted_certificate_is_a_transient_failure() {
    for (options, scheme) in [
        (SinkOptions::starttls(), "smtp"),
        (SinkOptions::starttls(), "smtp+starttls"),
        (SinkOptions::implicit_tls(), "smtps"),
    ] {
        let sink = sink(options);
        let why = transient(smtp_mailer(&sink.url(scheme), None).send(&mail()).await);
        assert!(
            why.to_lowercase().contains("certificate"),
            "{scheme}: {why}"
        );
        assert!(sink.received().is_empty(), "{scheme}");
    }
}

/// `smtps://`: TLS from the first byte.
#[tokio::test]
#[cfg_attr(
    any(missing = "python-aiosmtpd", missing = "openssl"),
    ignore = "needs Python aiosmtpd (pip install aiosmtpd) and openssl"
)]
async fn smtps_delivers_over_implicit_tls() {
    let sink = sink(SinkOptions::implicit_tls());
    let sent = mail();
    smtp_mailer(&sink.url("smtps"), sink.ca_file())
        .send(&sent)
        .await
        .unwrap();
    let received = sink.wait_for(1, WAIT).await.unwrap();
    assert_is(&received[0], &sent);
    assert!(received[0].tls);
}

/// Credentials in the URL (percent-encoded): the right ones authenticate,
/// over STARTTLS and over implicit TLS; wrong ones get the server's `535`,
/// which lettre reports as permanent (retrying cannot fix a password), and
/// the error does not hold the password.
#[tokio::test]
#[cfg_attr(
    any(missing = "python-aiosmtpd", missing = "openssl"),
    ignore = "needs Python aiosmtpd (pip install aiosmtpd) and openssl"
)]
async fn credentials_in_the_url_authenticate_and_wrong_ones_are_refused() {
    for (options, scheme) in [
        (SinkOptions::starttls(), "smtp+starttls"),
        (SinkOptions::implicit_tls(), "smtps"),
    ] {
        let sink = sink(options.with_auth("mailer@auth.example.com", "s3cret:p@ss"));
        let url = |password: &str| {
            format!(
                "{scheme}://mailer%40auth.example.com:{password}@127.0.0.1:{}",
                sink.port()
            )
        };
        let sent = mail();
        smtp_mailer(&url("s3cret%3Ap%40ss"), sink.ca_file())
            .send(&sent)
            .await
            .unwrap();
        let received = sink.wait_for(1, WAIT).await.unwrap();
        assert_is(&received[0], &sent);
        assert_eq!(
            received[0].auth.as_deref(),
            Some("mailer@auth.example.com"),
            "{scheme}"
        );

        let why = permanent(
            smtp_mailer(&url("wrong-horse"), sink.ca_file())
                .send(&mail())
                .await,
        );
        assert!(why.contains("535"), "{scheme}: {why}");
        assert!(!why.contains("wrong-horse"), "{why}");
        assert_eq!(sink.received().len(), 1, "{scheme}");
    }
}

/// The server answers `451` (try later): transient; `550`: permanent;
/// neither delivers anything. Once it accepts again, the mail goes through.
#[tokio::test]
#[cfg_attr(
    missing = "python-aiosmtpd",
    ignore = "needs Python aiosmtpd (pip install aiosmtpd)"
)]
async fn a_4xx_answer_is_transient_and_a_5xx_answer_permanent() {
    let sink = sink(SinkOptions::plain());
    let mailer = smtp_mailer(&sink.url("smtp"), None);
    let sent = mail();

    sink.answer_with(Some(451));
    let why = transient(mailer.send(&sent).await);
    assert!(why.contains("451"), "{why}");

    sink.answer_with(Some(550));
    let why = permanent(mailer.send(&sent).await);
    assert!(why.contains("550"), "{why}");
    assert!(!why.contains(TOKEN), "{why}");
    assert!(sink.received().is_empty());

    sink.answer_with(None);
    mailer.send(&sent).await.unwrap();
    assert_is(&sink.wait_for(1, WAIT).await.unwrap()[0], &sent);
}

/// The SMTP server down: a transient failure (connection refused); up again
/// on the same port: the same mailer delivers.
#[tokio::test]
#[cfg_attr(
    missing = "python-aiosmtpd",
    ignore = "needs Python aiosmtpd (pip install aiosmtpd)"
)]
async fn the_server_down_is_transient_and_up_again_delivers() {
    let mut sink = sink(SinkOptions::plain());
    let mailer = smtp_mailer(&sink.url("smtp"), None);
    let sent = mail();

    sink.stop();
    let why = transient(mailer.send(&sent).await);
    assert!(why.to_lowercase().contains("connection"), "{why}");

    sink.restart().unwrap();
    mailer.send(&sent).await.unwrap();
    let received = sink.wait_for(1, WAIT).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_is(&received[0], &sent);
}

/// Without `SMTP_URL`: one `.eml` file per mail, `<millis>-<id>.eml`, mode
/// 0600 in a directory created 0700, holding the message SMTP would carry
/// (headers, both parts), and no temporary file left behind.
#[tokio::test]
async fn without_smtp_url_each_mail_is_a_private_eml_file() {
    let root = temp_dir("authd-mail-files").unwrap();
    let dir = root.join("data/mail");
    let settings = MailSettings::new(None, FROM, dir.clone(), None).unwrap();
    let mailer = mailer(&settings).unwrap();
    assert_eq!(mode(&dir), 0o700);

    let sent = OutgoingMail {
        subject: "Verify your email address".into(),
        ..mail()
    };
    mailer.send(&sent).await.unwrap();

    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    let (millis, rest) = name.split_once('-').unwrap();
    assert!(millis.parse::<u64>().is_ok(), "{name}");
    assert_eq!(rest, format!("{}.eml", sent.id));
    assert_eq!(mode(&files[0]), 0o600);

    let eml = std::fs::read_to_string(&files[0]).unwrap();
    for part in [
        format!("From: {FROM}\r\n"),
        "To: Bob@Example.org\r\n".into(),
        "Subject: Verify your email address\r\n".into(),
        format!("Message-ID: <{}@auth.example.com>\r\n", sent.id),
        "Date: ".into(),
        "Content-Type: multipart/alternative;".into(),
        "Content-Type: text/plain; charset=utf-8".into(),
        "Content-Type: text/html; charset=utf-8".into(),
        format!("Token: {TOKEN}"),
        // (No `=` in what is looked for: quoted-printable would turn it into `=3D`.)
        format!("{TOKEN}\">Reset</a>"),
    ] {
        assert!(eml.contains(&part), "{part:?} missing in\n{eml}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `SMTP_URL` and `MAIL_FROM` are checked at start: each mistake is an error
/// naming the setting, and none holds the URL's password, nor does `Debug`.
#[test]
fn bad_settings_are_refused_at_start_without_the_password() {
    let check = |url: &str, from: &str| {
        MailSettings::new(Some(url), from, PathBuf::new(), None).map(|s| format!("{s:?}"))
    };
    let shown = check("smtps://mailer:hunter2@127.0.0.1:465", DEFAULT_MAIL_FROM).unwrap();
    assert!(!shown.contains("hunter2"), "{shown}");
    for url in [
        "127.0.0.1:25",
        "imap://mailer:hunter2@127.0.0.1",
        "smtp://mailer:hunter2@127.0.0.1:0",
        "smtp://mailer:hunter2@127.0.0.1:70000",
        "smtp://mailer:hunter2@127.0.0.1/path",
        "smtp://mailer:hunter2@:25",
        "smtp://:hunter2@127.0.0.1",
        "smtp://mailer@127.0.0.1",
    ] {
        let error = check(url, DEFAULT_MAIL_FROM).unwrap_err().to_string();
        assert!(error.starts_with("SMTP_URL"), "{url}: {error}");
        assert!(!error.contains("hunter2"), "{url}: {error}");
    }
    for from in [
        "",
        "authd",
        "authd <no-reply@>",
        "a@b.example\nBcc: c@d.example",
    ] {
        let error = check("smtp://127.0.0.1:25", from).unwrap_err().to_string();
        assert!(error.starts_with("MAIL_FROM"), "{from:?}: {error}");
    }
    let missing = MailSettings::new(
        Some("smtps://mailer:hunter2@127.0.0.1"),
        DEFAULT_MAIL_FROM,
        PathBuf::new(),
        Some(PathBuf::from("/nonexistent/smtp-ca.pem")),
    )
    .unwrap_err()
    .to_string();
    assert!(
        missing.starts_with("SMTP_CA_FILE /nonexistent/smtp-ca.pem"),
        "{missing}"
    );
}

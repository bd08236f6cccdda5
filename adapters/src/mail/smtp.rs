//! Delivery over SMTP (lettre's async transport on Tokio and rustls): a
//! connection per mail, STARTTLS or implicit TLS as `SMTP_URL` says, AUTH
//! PLAIN/LOGIN with the URL's credentials.

use std::time::Duration;

use application::ports::{DeliveryError, Mailer, OutgoingMail};
use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::settings::{SmtpSecurity, SmtpServer};

/// How long connecting to the SMTP server may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one whole delivery may take (connection, TLS, AUTH, envelope,
/// data): lettre bounds only the connection on Tokio, so a server that
/// stops answering mid-conversation is bounded here.
pub const SEND_DEADLINE: Duration = Duration::from_secs(30);

/// The [`Mailer`] on an SMTP server.
pub struct SmtpMailer {
    from: Mailbox,
    server: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    /// A mailer sending as `from` through `server`. Connects only when a
    /// mail is sent.
    #[must_use]
    pub fn new(from: Mailbox, server: &SmtpServer) -> Self {
        let tls = server.tls().clone();
        let tls = match server.security() {
            SmtpSecurity::Opportunistic => Tls::Opportunistic(tls),
            SmtpSecurity::StartTls => Tls::Required(tls),
            SmtpSecurity::Implicit => Tls::Wrapper(tls),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host())
            .port(server.port())
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some((user, password)) = server.credentials() {
            if server.security() == SmtpSecurity::Opportunistic {
                tracing::warn!(
                    smtp = %server,
                    "SMTP_URL is smtp:// with credentials: they go in plain text to a server \
                     that offers no STARTTLS (smtp+starttls:// or smtps:// refuse that)"
                );
            }
            builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
        }
        Self {
            from,
            server: server.to_string(),
            transport: builder.build(),
        }
    }

    async fn deliver(&self, mail: &OutgoingMail) -> Result<(), DeliveryError> {
        let message = super::message::build(&self.from, mail)?;
        match tokio::time::timeout(SEND_DEADLINE, self.transport.send(message)).await {
            Ok(Ok(_answer)) => Ok(()),
            Ok(Err(error)) => Err(classify(&error)),
            Err(_) => Err(DeliveryError::Transient(format!(
                "the SMTP server did not finish within {SEND_DEADLINE:?}"
            ))),
        }
    }
}

/// A `5xx` answer is permanent; everything else (a `4xx` answer, no
/// connection, a timeout, TLS, STARTTLS not offered) may work later. The
/// text is lettre's: the kind, the server's answer or the I/O error, never
/// what was sent.
fn classify(error: &lettre::transport::smtp::Error) -> DeliveryError {
    if error.is_permanent() {
        DeliveryError::Permanent(error.to_string())
    } else {
        DeliveryError::Transient(error.to_string())
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    #[tracing::instrument(name = "mail.smtp", skip_all, fields(mail.id = %mail.id))]
    async fn send(&self, mail: &OutgoingMail) -> Result<(), DeliveryError> {
        let result = self.deliver(mail).await;
        super::log_outcome(mail, &self.server, &result);
        result
    }
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

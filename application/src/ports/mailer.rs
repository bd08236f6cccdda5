//! The [`Mailer`] port: hands one mail to the mail system (an SMTP server,
//! or files for a developer to read).

use async_trait::async_trait;

/// A mail to one recipient. Its bodies hold a token, so its `Debug` shows
/// only the id and the subject: a mail never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// Unique and the same at every attempt: the `Message-ID`'s local part
    /// and the file name. ASCII letters, digits and `-` only.
    pub id: String,
    /// The recipient's address, as the user gave it.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a mail was not delivered. The message names the server's answer or
/// the failure, never the mail's bodies.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another attempt later: no connection, a timeout, a TLS
    /// failure, a `4xx` answer.
    #[error("mail not delivered yet: {0}")]
    Transient(String),
    /// Never going to work as it is: a `5xx` answer, an address the mail
    /// system cannot take.
    #[error("mail refused: {0}")]
    Permanent(String),
}

/// Delivers mail.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Hands `mail` over; `Ok` once the mail system has taken it.
    ///
    /// # Errors
    /// [`DeliveryError`].
    async fn send(&self, mail: &OutgoingMail) -> Result<(), DeliveryError>;
}

/// Seals a mail for the outbox, so that a copy of the database reads no
/// token from a mail not yet sent.
pub trait MailSeal: Send + Sync + 'static {
    /// `mail`, sealed; its id is authenticated with it.
    ///
    /// # Errors
    /// The seal failed.
    fn seal(&self, mail: &OutgoingMail) -> anyhow::Result<Vec<u8>>;

    /// The mail sealed as `id`.
    ///
    /// # Errors
    /// Not sealed by this deployment's key, or not as `id`.
    fn open(&self, id: &str, sealed: &[u8]) -> anyhow::Result<OutgoingMail>;
}

/// Tells this process's outbox sender that a mail was queued, so that it
/// goes at once rather than at the next poll.
pub trait OutboxSignal: Send + Sync + 'static {
    /// A mail is waiting.
    fn mail_queued(&self);
}

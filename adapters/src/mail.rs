//! Mail adapter: the [`Mailer`] port on an SMTP server (lettre), or, without
//! `SMTP_URL`, on `.eml` files a developer can read.
//!
//! - [`settings`]: `SMTP_URL`, `MAIL_FROM`, `SMTP_CA_FILE` checked once, at start.
//! - [`message`]: the RFC 5322 message built from an [`OutgoingMail`](application::ports::OutgoingMail).
//! - [`smtp`]: delivery over SMTP, and which failures are worth a retry.
//! - [`files`]: delivery into a private directory, one file per mail.

pub mod files;
pub mod message;
pub mod settings;
pub mod smtp;

use std::sync::Arc;

use application::ports::Mailer;

pub use files::FileMailer;
pub use settings::{
    DEFAULT_MAIL_FROM, Delivery, MailConfigError, MailSettings, SmtpSecurity, SmtpServer,
};
pub use smtp::SmtpMailer;

/// The mailer `settings` name: SMTP when `SMTP_URL` was given, files
/// otherwise (their directory created, mode 0700, if missing).
///
/// # Errors
/// The mail directory cannot be created.
pub fn mailer(settings: &MailSettings) -> anyhow::Result<Arc<dyn Mailer>> {
    Ok(match settings.delivery() {
        Delivery::Smtp(smtp) => Arc::new(SmtpMailer::new(settings.from().clone(), smtp)),
        Delivery::Files(dir) => Arc::new(FileMailer::new(settings.from().clone(), dir.clone())?),
    })
}

/// One line per attempt: `info` when `via` took the mail, `warn` with the
/// error otherwise. The id and the recipient's domain only: never the
/// address, a body or the token in it.
fn log_outcome(
    mail: &application::ports::OutgoingMail,
    via: &str,
    result: &Result<(), application::ports::DeliveryError>,
) {
    let to_domain = message::recipient_domain(&mail.to);
    match result {
        Ok(()) => tracing::info!(mail.id = %mail.id, to_domain, via, "mail delivered"),
        Err(error) => {
            tracing::warn!(mail.id = %mail.id, to_domain, via, %error, "mail not delivered");
        }
    }
}

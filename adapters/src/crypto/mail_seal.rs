//! Mails in the outbox, sealed: their bodies hold a token that works until
//! it is used, so a copy of the database must not read one.
//!
//! XChaCha20-Poly1305 (see [`super::key_seal`]) under a key derived from the
//! server secret with a label of its own, the mail's id authenticated with
//! it: a sealed mail moved to another row does not open.

use anyhow::Context as _;
use application::SealKey;
use application::ports::{MailSeal, OutgoingMail};
use serde::{Deserialize, Serialize};

use super::key_seal::SecretSeal;

const WRAP_LABEL: &[u8] = b"authd/mail-outbox-wrap/v1\0";
const AAD_LABEL: &[u8] = b"authd/mail-outbox/v1\0";

/// The [`MailSeal`] port on the deployment's server secret; `Debug` is
/// redacted.
#[derive(Debug, Clone)]
pub struct OutboxSeal {
    seal: SecretSeal,
}

impl OutboxSeal {
    /// The seal keyed from the server secret.
    pub fn new(secret: &SealKey) -> Self {
        Self {
            seal: SecretSeal::new(secret, WRAP_LABEL, AAD_LABEL),
        }
    }
}

/// What is sealed: the mail but its id, which is the associated data.
#[derive(Serialize, Deserialize)]
struct SealedMail {
    to: String,
    subject: String,
    text: String,
    html: String,
}

impl MailSeal for OutboxSeal {
    fn seal(&self, mail: &OutgoingMail) -> anyhow::Result<Vec<u8>> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&SealedMail {
                to: mail.to.clone(),
                subject: mail.subject.clone(),
                text: mail.text.clone(),
                html: mail.html.clone(),
            })
            .context("encoding a mail")?,
        );
        self.seal
            .seal(mail.id.as_bytes(), &plain)
            .context("sealing a mail")
    }

    fn open(&self, id: &str, sealed: &[u8]) -> anyhow::Result<OutgoingMail> {
        let plain = self.seal.open(id.as_bytes(), sealed).with_context(|| {
            format!("the mail {id} does not open: not sealed as it, or not with this server secret")
        })?;
        let mail: SealedMail = serde_json::from_slice(&plain).context("decoding a mail")?;
        Ok(OutgoingMail {
            id: id.to_owned(),
            to: mail.to,
            subject: mail.subject,
            text: mail.text,
            html: mail.html,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(byte: u8) -> OutboxSeal {
        OutboxSeal::new(&SealKey::from_bytes([byte; SealKey::LEN]))
    }

    fn mail() -> OutgoingMail {
        OutgoingMail {
            id: "m-1".into(),
            to: "Kim@Example.com".into(),
            subject: "Reset your password".into(),
            text: "Token: tok_abcdefghijklmnopqrstuvwxyz0123456789\n".into(),
            html: "<p>tok_abcdefghijklmnopqrstuvwxyz0123456789</p>".into(),
        }
    }

    #[test]
    fn a_sealed_mail_opens_as_it_was() {
        let sealed = seal(1).seal(&mail()).unwrap();
        assert_eq!(seal(1).open("m-1", &sealed).unwrap(), mail());
        assert_ne!(sealed, seal(1).seal(&mail()).unwrap(), "a fresh nonce");
    }

    #[test]
    fn a_sealed_mail_opens_only_as_its_id() {
        let sealed = seal(1).seal(&mail()).unwrap();
        assert!(seal(1).open("m-2", &sealed).is_err());
    }

    #[test]
    fn a_sealed_mail_opens_only_with_its_key() {
        let sealed = seal(1).seal(&mail()).unwrap();
        assert!(seal(2).open("m-1", &sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(seal(1).open("m-1", &altered).is_err(), "altered");
        assert!(seal(1).open("m-1", &sealed[..20]).is_err(), "short");
    }

    #[test]
    fn the_sealed_bytes_hold_no_body() {
        let sealed = seal(1).seal(&mail()).unwrap();
        let token = b"tok_abcdefghijklmnopqrstuvwxyz0123456789";
        assert!(!sealed.windows(8).any(|w| token.windows(8).any(|t| t == w)));
        assert!(!sealed.windows(7).any(|w| w == b"Example"));
    }
}

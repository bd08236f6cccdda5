//! The message both mailers hand over: RFC 5322 headers (`From`, `To`,
//! `Subject`, `Date`, `Message-ID`) and a `multipart/alternative` body with
//! the plain-text and the HTML part, UTF-8.

use application::ports::{DeliveryError, OutgoingMail};
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, Message};

/// The message for `mail`, sent by `from`. Its `Message-ID` is
/// `<{mail.id}@{from's domain}>`, the same at every attempt.
///
/// # Errors
/// [`DeliveryError::Permanent`]: the id is not letters, digits and `-`, or
/// the recipient is not an address SMTP can carry. The message says which,
/// without the address or the bodies.
pub fn build(from: &Mailbox, mail: &OutgoingMail) -> Result<Message, DeliveryError> {
    if !is_safe_id(&mail.id) {
        // The id becomes a file name and a header: nothing else gets in.
        return Err(DeliveryError::Permanent(
            "the mail id is not ASCII letters, digits and `-`".into(),
        ));
    }
    let to = mail.to.parse::<Address>().map_err(|_| {
        DeliveryError::Permanent("the recipient is not an address SMTP can carry".into())
    })?;
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(mail.subject.as_str())
        .date_now()
        .message_id(Some(format!("<{}@{}>", mail.id, from.email.domain())))
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| DeliveryError::Permanent(format!("the message cannot be built: {e}")))
}

/// The part of `to` after its last `@`: all of an address a log line may
/// show.
#[must_use]
pub fn recipient_domain(to: &str) -> &str {
    to.rsplit_once('@').map_or("", |(_, domain)| domain)
}

fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(id: &str, to: &str) -> OutgoingMail {
        OutgoingMail {
            id: id.into(),
            to: to.into(),
            subject: "Réinitialiser le mot de passe".into(),
            text: "Token: secret-token\n".into(),
            html: "<p>Token: secret-token</p>".into(),
        }
    }

    fn from() -> Mailbox {
        "authd <no-reply@auth.example.com>".parse().unwrap()
    }

    #[test]
    fn the_message_has_the_headers_and_both_parts() {
        let raw = build(&from(), &mail("m-1", "Bob@Example.org"))
            .unwrap()
            .formatted();
        let raw = String::from_utf8(raw).unwrap();
        for header in [
            "From: authd <no-reply@auth.example.com>\r\n",
            "To: Bob@Example.org\r\n",
            "Message-ID: <m-1@auth.example.com>\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/alternative;",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Type: text/html; charset=utf-8",
            "Date: ",
            "Subject: =?utf-8?",
        ] {
            assert!(raw.contains(header), "{header:?} missing in\n{raw}");
        }
    }

    #[test]
    fn unsafe_ids_and_unusable_recipients_are_permanent_and_say_no_more() {
        for (id, to) in [
            ("../x", "bob@example.org"),
            ("", "bob@example.org"),
            ("m-1", "bob"),
        ] {
            match build(&from(), &mail(id, to)) {
                Err(DeliveryError::Permanent(why)) => {
                    assert!(!why.contains("bob") && !why.contains("secret"), "{why}");
                }
                other => panic!("{id} {to}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_the_domain_is_shown() {
        assert_eq!(recipient_domain("bob@example.org"), "example.org");
        assert_eq!(recipient_domain("bob"), "");
    }
}

//! Delivery without an SMTP server: each mail becomes one RFC 5322 file,
//! `<unix-millis>-<id>.eml`, in a private directory (0700), mode 0600 from
//! its creation (its link holds a token). It is written under a hidden
//! temporary name and renamed, so a reader never sees half a mail.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use application::ports::{DeliveryError, Mailer, OutgoingMail};
use async_trait::async_trait;
use lettre::message::Mailbox;

use crate::private_files::{create_private_dir, write_new};

/// The mode of each mail file.
pub const MAIL_FILE_MODE: u32 = 0o600;

/// The [`Mailer`] that writes files.
#[derive(Debug, Clone)]
pub struct FileMailer {
    from: Mailbox,
    dir: PathBuf,
}

impl FileMailer {
    /// A mailer writing into `dir` as `from`; creates `dir` (0700) if missing.
    ///
    /// # Errors
    /// `dir` cannot be created.
    pub fn new(from: Mailbox, dir: PathBuf) -> anyhow::Result<Self> {
        create_private_dir(&dir)
            .with_context(|| format!("creating the mail directory {}", dir.display()))?;
        Ok(Self { from, dir })
    }

    /// Where the mails go.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn deliver(&self, mail: &OutgoingMail) -> Result<(), DeliveryError> {
        let bytes = super::message::build(&self.from, mail)?.formatted();
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        let name = format!("{millis}-{}.eml", mail.id);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_mail(&dir, &name, &bytes))
            .await
            .map_err(|e| DeliveryError::Transient(format!("the file writer stopped: {e}")))?
            .map_err(|e| DeliveryError::Transient(format!("{e:#}")))
    }
}

/// Writes `dir/name` whole or not at all, and syncs it and the directory
/// (the outbox forgets a mail once this returns).
fn write_mail(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    // Again here: the directory may have been removed since the start.
    create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let part = dir.join(format!(".{name}.part"));
    let done = dir.join(name);
    let written = write_new(&part, bytes, MAIL_FILE_MODE)
        .with_context(|| format!("writing {}", part.display()))
        .and_then(|()| {
            std::fs::rename(&part, &done).with_context(|| format!("renaming to {}", done.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

#[async_trait]
impl Mailer for FileMailer {
    #[tracing::instrument(name = "mail.file", skip_all, fields(mail.id = %mail.id))]
    async fn send(&self, mail: &OutgoingMail) -> Result<(), DeliveryError> {
        let result = self.deliver(mail).await;
        super::log_outcome(mail, &self.dir.display().to_string(), &result);
        result
    }
}

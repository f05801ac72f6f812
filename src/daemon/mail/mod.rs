//! Batch emails: one message to the source's admins after every batch, through a durable queue.
//!
//! - [`MailConfig`] is the `[mail]` table of the configuration (`config/rosterdrop.toml`).
//! - [`compose`] writes the message for one event of a batch (checked, failed, approved,
//!   discarded, rolled back) from that batch's record and `patch-summary.csv`: plain text and
//!   an HTML alternative with the same content, `patch-summary.csv` attached (zipped when
//!   large). [`batch_notice`] is the same for the pipeline's message.
//! - [`Mailer::enqueue`] writes the finished RFC 5322 message and its envelope into
//!   `<state_dir>/mail/queue/` (temporary file, fsync, rename) and returns; it never touches
//!   the network. [`Mailer::run`] delivers in the background, to `<state_dir>/outbox/` as
//!   `.eml` files or over SMTP (lettre, rustls), with exponential backoff on transient
//!   failures; a permanent refusal or an entry older than `give_up_after_hours` goes to
//!   `<state_dir>/mail/failed/`. Delivered keys are remembered in `<state_dir>/mail/sent/`, so
//!   enqueueing a key twice sends one message.
//!
//! Layout of `<state_dir>/mail/` (one entry per key):
//! ```text
//! queue/<key>.eml    the message, as it goes on the wire
//! queue/<key>.json   envelope, attempts, errors (the entry exists once this file does)
//! sent/<key>.json    the same metadata after delivery (keeps a key from being sent twice)
//! failed/<key>.eml   undeliverable messages, with failed/<key>.json holding every error
//! uploads/<batch>    the name the vendor gave the batch's upload (written by the daemon), for
//!                    the mails of a later approve, discard or rollback
//! ```

mod compose;
mod config;
mod queue;

pub use compose::{
    batch_notice, batch_subject, compose, is_marker, subject_of, BatchMail, CheckNotes, Event,
};
pub use config::{MailConfig, Security, TransportKind};
pub use queue::Mailer;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("[mail] config: {0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] crate::fsutil::IoError),
    #[error("mail: invalid address `{address}`: {message}")]
    Address { address: String, message: String },
    #[error("mail: the notice has no recipient")]
    NoRecipients,
    #[error(
        "mail: invalid key `{0}` (1 to 120 letters, digits, `.`, `_` or `-`, not starting with `.`)"
    )]
    InvalidKey(String),
    #[error("mail: cannot build the message: {0}")]
    Message(String),
    #[error("mail: cannot zip the attachment: {0}")]
    Zip(String),
}

/// One email to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Unique per message (e.g. `batch-42`): it names the queue entry, and a key that is
    /// queued, sent or failed already is not queued again.
    pub key: String,
    pub to: Vec<String>,
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// The same content as HTML, sent as a `multipart/alternative` beside the text.
    pub html: Option<String>,
    pub attachment: Option<Attachment>,
}

/// A file attached to a [`Notice`].
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// A MIME type, e.g. `text/csv; charset=utf-8` or `application/zip`.
    pub content_type: String,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Whether `key` can name a queue entry: a plain file name, no path, no hidden file.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 120
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::valid_key;

    #[test]
    fn keys_are_plain_file_names() {
        assert!(valid_key("batch-42"));
        assert!(valid_key("batch_42.retry-1"));
        for bad in ["", ".hidden", "a/b", "..", "a b", "é", &"x".repeat(121)] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}

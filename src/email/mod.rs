//! Outgoing mail: composing multipart messages with the list headers, and the transports
//! (SMTP, `.eml` files, or memory for tests) that carry them.

mod body;
pub mod newsletter;
mod smtp;
pub mod templates;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use lettre::address::Envelope;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;

pub use body::{BodyEncoder, BodyKind};
pub use smtp::{Handed, SmtpConfig, SmtpPool};
pub use templates::Templates;

use crate::domain::Language;

/// One rendered message to one subscriber.
#[derive(Clone, Debug)]
pub struct OutgoingMail {
    pub to_email: String,
    pub to_name: Option<String>,
    pub language: Language,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub unsubscribe_url: String,
    /// Newsletters only: their own From (else `ENLACE_FROM`), Reply-To, List-Id and a Message-ID
    /// fixed per delivery, so a copy sent twice after a crash is recognisably the same message.
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub list_id: Option<String>,
    pub message_id: Option<String>,
}

/// `text` as one header line: control characters and runs of white space become one space.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A message as handed to the transport.
#[derive(Clone, Debug)]
pub struct SentMessage {
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (4xx, network, timeout).
    #[error("transient: {0}")]
    Transient(String),
    /// The server or the address will not take it (5xx, invalid address).
    #[error("permanent: {0}")]
    Permanent(String),
}

pub enum Transport {
    Smtp(SmtpPool),
    Files(PathBuf),
    Memory(Arc<Mutex<Vec<SentMessage>>>),
}

impl Transport {
    /// Sends a message whose content goes out only once the gate `gate` makes passes (see
    /// `SmtpPool::send_gated`); the other transports make it and wait for it, then write.
    pub async fn send_gated<G, Gate>(
        &self,
        envelope: &Envelope,
        raw: Vec<u8>,
        mut gate: impl FnMut() -> Gate,
    ) -> Handed<G>
    where
        Gate: std::future::Future<Output = Option<G>>,
    {
        match self {
            Self::Smtp(pool) => pool.send_gated(envelope, &raw, gate).await,
            _ => match gate().await {
                Some(passed) => Handed::Sent(self.send(envelope, raw).await, passed),
                None => Handed::Withheld,
            },
        }
    }

    pub async fn send(&self, envelope: &Envelope, raw: Vec<u8>) -> Result<(), SendError> {
        match self {
            Self::Smtp(pool) => pool.send(envelope, &raw).await,
            Self::Files(dir) => {
                let recipient = envelope.to().first().map(ToString::to_string);
                let path = dir.join(outbox_file_name(recipient.as_deref()));
                write_outbox_file(dir, &path, &raw).await.map_err(|e| {
                    SendError::Transient(format!("writing {}: {e}", path.display()))
                })?;
                tracing::info!(file = %path.display(), "message written to the outbox folder");
                Ok(())
            }
            Self::Memory(sent) => {
                let recipients = envelope.to().iter().map(ToString::to_string).collect();
                sent.lock()
                    .expect("mail store lock")
                    .push(SentMessage { recipients, raw });
                Ok(())
            }
        }
    }
}

/// An outbox file's name: a digest of the recipient's address (never the address), then a
/// time-ordered id, so an erasure finds the person's files without the address being stored.
pub fn outbox_file_name(recipient: Option<&str>) -> String {
    let id = uuid::Uuid::now_v7();
    match recipient {
        Some(to) => format!("{}-{id}.eml", outbox_key(to)),
        None => format!("{id}.eml"),
    }
}

/// The part of an outbox file name that stands for its recipient: 64 bits of the SHA-256 of the
/// address as sent (its canonical form).
fn outbox_key(address: &str) -> String {
    crate::tokens::email_hash(address)[..16].to_owned()
}

/// Writes an outbox message readable by the owner alone (folder 0700, file 0600).
async fn write_outbox_file(
    dir: &std::path::Path,
    path: &std::path::Path,
    raw: &[u8],
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut folder = tokio::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    folder.mode(crate::files::FOLDER_MODE);
    folder.create(dir).await?;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(crate::files::FILE_MODE);
    let mut file = options.open(path).await?;
    file.write_all(raw).await?;
    file.flush().await
}

/// Whether an outbox file named by an earlier version (`<uuid>.eml`, no address digest) is
/// addressed to `address`: its header names it (addresses are written as stored).
fn old_outbox_file_is_to(path: &std::path::Path, address: &str) -> std::io::Result<bool> {
    let raw = std::fs::read(path)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let header = String::from_utf8_lossy(&raw[..end]).to_lowercase();
    Ok(header.contains(&format!("<{address}>")) || header.contains(&format!(" {address}\r\n")))
}

/// Removes every outbox message to `address` from `dir`; returns how many. Erasure calls it.
/// Files named by earlier versions, without the digest, are read to find the person's.
pub fn remove_outbox_mail(dir: &std::path::Path, address: &str) -> std::io::Result<usize> {
    let prefix = format!("{}-", outbox_key(address));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let old_style = name.len() == 40
            && name.ends_with(".eml")
            && uuid::Uuid::parse_str(&name[..36]).is_ok();
        let theirs = (name.starts_with(&prefix) && name.ends_with(".eml"))
            || (old_style && old_outbox_file_is_to(&entry.path(), address)?);
        if theirs {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

pub struct Mailer {
    pub transport: Transport,
    pub from: Mailbox,
    /// Signs every message when configured.
    pub dkim: Option<DkimConfig>,
}

impl Mailer {
    pub fn new(transport: Transport, from: &str) -> anyhow::Result<Self> {
        let from: Mailbox = from.parse().context("ENLACE_FROM is not a valid mailbox")?;
        Ok(Self {
            transport,
            from,
            dkim: None,
        })
    }

    /// DKIM signing (RFC 6376, relaxed/relaxed) of From, To, Subject, Date, Message-ID,
    /// MIME-Version, Reply-To, List-Id and the one-click unsubscribe headers, which receivers
    /// require to be signed.
    ///
    /// lettre hashes only the headers the `Message` holds when it is signed, yet writes every
    /// name listed here into `h=`; a verifier hashes what it finds on the wire under those names.
    /// So only headers the message holds may be listed. The top-level `Content-Type` (with its
    /// boundary) and `Content-Transfer-Encoding` are written by the MIME part at format time:
    /// listing them made every signature fail. `MIME-Version` is held (set by `.multipart()`).
    /// Reply-To and List-Id are absent from some messages; an absent header is hashed as nothing
    /// by lettre and by verifiers alike (RFC 6376 §5.4), and being listed, it cannot be added
    /// after signing without breaking the signature. Each name appears once: for a repeated name
    /// lettre hashes the same header again, where a verifier takes the next one up.
    pub fn with_dkim(
        mut self,
        selector: &str,
        domain: Option<&str>,
        key: &str,
    ) -> anyhow::Result<Self> {
        let key = key.trim();
        let algorithm = if key.starts_with("-----BEGIN") {
            DkimSigningAlgorithm::Rsa
        } else {
            DkimSigningAlgorithm::Ed25519
        };
        let signing_key = DkimSigningKey::new(key, algorithm)
            .map_err(|e| anyhow::anyhow!("the DKIM key cannot be read: {e}"))?;
        let domain = domain
            .map(str::to_owned)
            .unwrap_or_else(|| self.from.email.domain().to_owned());
        let headers = [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "MIME-Version",
            "Reply-To",
            "List-Id",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ]
        .into_iter()
        .map(HeaderName::new_from_ascii_str)
        .collect();
        self.dkim = Some(DkimConfig::new(
            selector.to_owned(),
            domain,
            signing_key,
            headers,
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        ));
        Ok(self)
    }

    /// Builds the message (`compose`, with `ENLACE_FROM` as the default From).
    pub fn compose(
        &self,
        mail: OutgoingMail,
        bodies: &mut BodyEncoder,
    ) -> Result<Message, SendError> {
        compose(&self.from, mail, bodies)
    }

    pub async fn send(&self, mail: OutgoingMail) -> Result<(), SendError> {
        let ready = self.prepare(mail, &mut BodyEncoder::new())?;
        self.send_prepared(ready).await
    }

    /// Builds, encodes and signs a message without sending it: the CPU-heavy half of `send`,
    /// which the newsletter engine does before it takes an in-flight slot.
    /// The mail is taken by value: its bodies move into the message instead of being copied.
    pub fn prepare(
        &self,
        mail: OutgoingMail,
        bodies: &mut BodyEncoder,
    ) -> Result<PreparedMail, SendError> {
        let mut message = self.compose(mail, bodies)?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        let raw = message.formatted();
        Ok(PreparedMail {
            envelope: message.envelope().clone(),
            raw,
        })
    }

    /// Erasure: removes the messages to `address` that the transport still holds on disk (the
    /// outbox folder); returns how many. Mail handed to an SMTP server is out of reach.
    pub fn forget_recipient(&self, address: &str) -> std::io::Result<usize> {
        match &self.transport {
            Transport::Files(dir) => remove_outbox_mail(dir, address),
            Transport::Smtp(_) | Transport::Memory(_) => Ok(0),
        }
    }

    /// Hands a prepared message to the transport.
    pub async fn send_prepared(&self, mail: PreparedMail) -> Result<(), SendError> {
        self.transport.send(&mail.envelope, mail.raw).await
    }

    /// Hands a prepared message to the transport, its content held back until the gate that
    /// `gate` makes when the exchange begins passes.
    pub async fn send_prepared_gated<G, Gate>(
        &self,
        mail: PreparedMail,
        gate: impl FnMut() -> Gate,
    ) -> Handed<G>
    where
        Gate: std::future::Future<Output = Option<G>>,
    {
        self.transport
            .send_gated(&mail.envelope, mail.raw, gate)
            .await
    }
}

/// Builds a message: multipart text + HTML, RFC 2369/8058 list headers, content language;
/// `default_from` is the From of a message that names none.
/// The bodies are encoded by `bodies`, which reuses what it encoded for the previous
/// message in the same language.
pub fn compose(
    default_from: &Mailbox,
    mail: OutgoingMail,
    bodies: &mut BodyEncoder,
) -> Result<Message, SendError> {
    let address = mail
        .to_email
        .parse()
        .map_err(|_| SendError::Permanent("the recipient address is not deliverable".into()))?;
    // lettre encodes names and subjects (RFC 2047), so no header can be injected through them;
    // it cannot write a line break or other control character at all, so those become spaces
    // (a name stored before names were checked, a subject made from merge fields).
    let to = Mailbox::new(
        mail.to_name
            .as_deref()
            .map(one_line)
            .filter(|n| !n.is_empty()),
        address,
    );
    let header = |name: &'static str, value: String| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
    };
    let language = mail.language.as_str();
    let mut builder = Message::builder()
        .from(mail.from.unwrap_or_else(|| default_from.clone()))
        .to(to)
        .subject(one_line(&mail.subject))
        .message_id(mail.message_id);
    if let Some(reply_to) = mail.reply_to {
        builder = builder.reply_to(reply_to);
    }
    if let Some(list_id) = mail.list_id {
        builder = builder.raw_header(header("List-Id", list_id));
    }
    // A message that is not list mail (a staff invitation) has no unsubscribe link.
    if !mail.unsubscribe_url.is_empty() {
        builder = builder
            .raw_header(header(
                "List-Unsubscribe",
                format!("<{}>", mail.unsubscribe_url),
            ))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    builder
        .raw_header(header("Content-Language", language.into()))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(bodies.encode(BodyKind(language, "text"), mail.text)),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(bodies.encode(BodyKind(language, "html"), mail.html)),
                ),
        )
        .map_err(|e| SendError::Permanent(format!("building the message: {e}")))
}

/// The main headers by name, with their values as written, and the whole block as on the wire.
pub type Headers = (Vec<(&'static str, String)>, String);

/// The headers of a message as `compose` writes them (the DKIM signature, added when sending,
/// aside), for a preview: the main ones by name with their values as written (before RFC 2047
/// encoding), and the whole block exactly as it goes on the wire.
pub fn headers_of(default_from: &Mailbox, mail: OutgoingMail) -> Result<Headers, SendError> {
    const SHOWN: [&str; 10] = [
        "From",
        "Reply-To",
        "To",
        "Subject",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Content-Language",
        "Message-ID",
        "Date",
    ];
    let message = compose(default_from, mail, &mut BodyEncoder::new())?;
    let headers = message.headers();
    let named = SHOWN
        .into_iter()
        .filter_map(|name| headers.get_raw(name).map(|v| (name, v.to_owned())))
        .collect();
    Ok((named, headers.to_string()))
}

/// A message ready for the wire: its envelope and its bytes (signed, when DKIM is on).
pub struct PreparedMail {
    envelope: Envelope,
    raw: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasure_finds_outbox_files_of_both_namings() {
        let dir = std::env::temp_dir().join(format!("enlace-outbox-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let message =
            |to: &str| format!("From: a@example.org\r\nTo: Ana <{to}>\r\n\r\nbody {to}\r\n");
        let write = |name: String, to: &str| std::fs::write(dir.join(name), message(to)).unwrap();
        write(outbox_file_name(Some("ana@example.org")), "ana@example.org");
        write(outbox_file_name(Some("ben@example.org")), "ben@example.org");
        write(format!("{}.eml", uuid::Uuid::now_v7()), "ana@example.org");
        write(format!("{}.eml", uuid::Uuid::now_v7()), "ben@example.org");
        assert_eq!(remove_outbox_mail(&dir, "ana@example.org").unwrap(), 2);
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|m| m.contains("ben@example.org")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

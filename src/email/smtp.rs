//! A small pool of SMTP connections with TCP_NODELAY set. lettre's own pooled transport leaves
//! Nagle's algorithm on, which holds each message's final "." for a delayed ACK (~40 ms a message).
//! Where the server offers PIPELINING (RFC 2920), a transaction's MAIL, RCPT and DATA go out
//! together and their replies are read together: one round trip instead of three.
//!
//! Tuned hot path: this code is measured by `bench/blast.sh` (messages a second and CPU per
//! message against a bare SMTP client in the same run, docs/benchmarks.md). It stays outside
//! the service layer and the shared job runner on purpose; measure before and after any change.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use tokio::sync::Mutex;

use super::SendError;

const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    None,
    Opportunistic,
    Required,
    Implicit,
}

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub credentials: Option<Credentials>,
}

impl SmtpConfig {
    /// Reads lettre's URL form: `smtp://[user:pass@]host[:port][?tls=required|opportunistic|none]`
    /// or `smtps://…` for implicit TLS.
    pub fn from_url(raw: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(raw).context("ENLACE_SMTP_URL is not a URL")?;
        let host = url
            .host_str()
            .context("ENLACE_SMTP_URL has no host")?
            .to_owned();
        let query_tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let tls = match (url.scheme(), query_tls.as_deref()) {
            ("smtps", _) => TlsMode::Implicit,
            ("smtp", None | Some("none")) => TlsMode::None,
            ("smtp", Some("opportunistic")) => TlsMode::Opportunistic,
            ("smtp", Some("required")) => TlsMode::Required,
            ("smtp", Some(other)) => bail!("ENLACE_SMTP_URL: unknown tls={other}"),
            (scheme, _) => bail!("ENLACE_SMTP_URL: unsupported scheme {scheme}"),
        };
        let port = url.port().unwrap_or(match tls {
            TlsMode::Implicit => 465,
            TlsMode::Required => 587,
            _ => 25,
        });
        let credentials = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_decode(s)
                    .context("ENLACE_SMTP_URL: credentials are not valid percent-encoding")
            };
            Some(Credentials::new(
                decode(url.username())?,
                decode(url.password().unwrap_or_default())?,
            ))
        };
        Ok(Self {
            host,
            port,
            tls,
            credentials,
        })
    }
}

fn percent_decode(s: &str) -> anyhow::Result<String> {
    Ok(
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default(),
    )
}

pub struct SmtpPool {
    config: SmtpConfig,
    hello: ClientId,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

/// An open connection, whether its server accepts pipelined commands, and since when it has
/// waited in the pool.
struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
    idle_since: Instant,
}

/// How long a connection may wait in the pool. Servers close idle sessions (Postfix after 300 s,
/// many after 60 s, announcing `421`); one kept longer than this is closed instead of used.
const MAX_IDLE: Duration = Duration::from_secs(30);

/// Whether a failure on a connection taken from the pool means the server had closed it: it
/// broke (no reply), or it answered `421` (closing the channel; RFC 5321 §3.8) before the
/// content went out. Either way nothing was delivered, and a new connection may try at once.
fn closed_meanwhile(failure: &Failure) -> bool {
    match failure {
        Failure::Smtp(e) if !e.is_permanent() && !e.is_transient() => true,
        Failure::Smtp(e) => e.status().is_some_and(|code| code.to_string() == "421"),
        _ => false,
    }
}

impl SmtpPool {
    pub fn new(config: SmtpConfig, max_idle: usize) -> Self {
        Self {
            config,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    async fn connect(&self) -> Result<Connection, SendError> {
        let cfg = &self.config;
        let tls = || TlsParameters::new(cfg.host.clone()).map_err(classify);
        let mut conn = if cfg.tls == TlsMode::Implicit {
            // lettre builds the TLS stream itself here, so TCP_NODELAY cannot be set.
            AsyncSmtpConnection::connect_tokio1(
                (cfg.host.as_str(), cfg.port),
                Some(TIMEOUT),
                &self.hello,
                Some(tls()?),
                None,
            )
            .await
            .map_err(classify)?
        } else {
            let io = |e: std::io::Error| {
                SendError::Transient(format!("connecting to the SMTP server: {e}"))
            };
            let stream = tokio::net::TcpStream::connect((cfg.host.as_str(), cfg.port))
                .await
                .map_err(io)?;
            stream.set_nodelay(true).map_err(io)?;
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(classify)?;
            match cfg.tls {
                TlsMode::Required => conn.starttls(tls()?, &self.hello).await.map_err(classify)?,
                TlsMode::Opportunistic if conn.can_starttls() => {
                    conn.starttls(tls()?, &self.hello).await.map_err(classify)?
                }
                _ => {}
            }
            conn
        };
        // lettre keeps only the extensions it uses from the server's EHLO reply. Asked again
        // (RFC 5321 §4.1.4 allows a later EHLO; no transaction is open yet, and authentication
        // comes after), the reply says whether commands may be pipelined. A server that refuses
        // the repeated EHLO keeps the session as it was, and is sent to without pipelining.
        let pipelining = match conn.command(Ehlo::new(self.hello.clone())).await {
            Ok(reply) => reply.message().any(|line| {
                line.split_whitespace()
                    .next()
                    .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
            }),
            Err(e) if e.is_permanent() || e.is_transient() => false,
            Err(e) => return Err(classify(e)),
        };
        if let Some(credentials) = &cfg.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(classify)?;
        }
        Ok(Connection {
            smtp: conn,
            pipelining,
            idle_since: Instant::now(),
        })
    }

    /// Sends one message on a pooled connection.
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        match self.send_gated(envelope, raw, || async { Some(()) }).await {
            Handed::Sent(result, ()) => result,
            Handed::NotSent(e) => Err(e),
            Handed::Withheld => Err(SendError::Transient("the message was withheld".into())),
        }
    }

    /// Sends one message, opening its transaction (MAIL, RCPT, DATA) first and awaiting its
    /// gate only before the content goes out. Until the content's final dot the server delivers
    /// nothing (RFC 5321 §4.1.1.4: a transaction cut off before it is discarded), so whatever
    /// the gate guards (the newsletter engine's in-flight slot) is held only from the content
    /// on. `gate` makes the gate at the moment the exchange begins, just before `MAIL FROM` is
    /// written (again if the exchange has to begin again on a new connection); what it starts
    /// then runs while the transaction opens. A gate that answers `None` withholds the message:
    /// the connection is closed, which abandons the transaction.
    pub async fn send_gated<G, Gate>(
        &self,
        envelope: &Envelope,
        raw: &[u8],
        mut gate: impl FnMut() -> Gate,
    ) -> Handed<G>
    where
        Gate: Future<Output = Option<G>>,
    {
        let reused = {
            let mut idle = self.idle.lock().await;
            // The newest is last; once one has waited too long, so have all before it.
            let fresh = idle.pop().filter(|c| c.idle_since.elapsed() < MAX_IDLE);
            if fresh.is_none() {
                idle.clear();
            }
            fresh
        };
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some(conn) => conn,
            None => match self.connect_with_timeout().await {
                Ok(conn) => conn,
                Err(e) => return Handed::NotSent(e),
            },
        };
        let mut begun = None;
        let mut opened = timed(open_transaction(&mut conn, envelope, raw, || {
            begun = Some(gate())
        }))
        .await;
        // An idle connection the server has since closed fails before the content goes out
        // (broken, or a `421`); one fresh attempt then is safe and saves a retry cycle.
        if was_reused && matches!(&opened, Err(failure) if closed_meanwhile(failure)) {
            conn = match self.connect_with_timeout().await {
                Ok(conn) => conn,
                Err(e) => return Handed::NotSent(e),
            };
            begun = None;
            opened = timed(open_transaction(&mut conn, envelope, raw, || {
                begun = Some(gate())
            }))
            .await;
        }
        if let Err(e) = opened {
            // Dropped, not quit: after a failed step the server's state is not known, and a
            // QUIT sent while it reads content would wait for an answer that never comes.
            drop(conn);
            return Handed::NotSent(e.into());
        }
        let gate = match begun {
            Some(made) => made,
            None => gate(),
        };
        let Some(passed) = gate.await else {
            // After DATA the server reads everything as content until the final dot, so the
            // transaction can only be abandoned by closing the connection: it then discards it.
            drop(conn);
            return Handed::Withheld;
        };
        let sent = match wire_content(raw) {
            Some(wire) => timed(conn.smtp.command(wire)).await,
            None => timed(conn.smtp.message(raw)).await,
        };
        let result = match sent {
            Ok(_) => {
                self.keep(conn).await;
                Ok(())
            }
            Err(e) => Err(e.into()),
        };
        Handed::Sent(result, passed)
    }

    /// Returns a connection to the pool, unless the pool is full or the connection broken.
    async fn keep(&self, conn: Connection) {
        let mut idle = self.idle.lock().await;
        if idle.len() < self.max_idle && !conn.smtp.has_broken() {
            idle.push(Connection {
                idle_since: Instant::now(),
                ..conn
            });
        }
    }

    async fn connect_with_timeout(&self) -> Result<Connection, SendError> {
        tokio::time::timeout(TIMEOUT, self.connect())
            .await
            .unwrap_or_else(|_| Err(SendError::Transient("SMTP connection timed out".into())))
    }
}

/// What a gated send did.
pub enum Handed<G> {
    /// Failed before the gate was reached: nothing was delivered.
    NotSent(SendError),
    /// The gate said no: the transaction was abandoned and nothing was delivered.
    Withheld,
    /// The content went out once the gate passed: the server's answer, and what the gate gave.
    /// An error here may still mean delivered (the reply to the final dot was lost, say).
    Sent(Result<(), SendError>, G),
}

/// Why opening a transaction or sending its content failed.
enum Failure {
    Smtp(lettre::transport::smtp::Error),
    Refused(SendError),
    TimedOut,
}

impl From<Failure> for SendError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Smtp(e) => classify(e),
            Failure::Refused(e) => e,
            Failure::TimedOut => SendError::Transient("SMTP send timed out".into()),
        }
    }
}

impl From<lettre::transport::smtp::Error> for Failure {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        Failure::Smtp(e)
    }
}

/// One step of the exchange, given up after `TIMEOUT`.
async fn timed<T, E: Into<Failure>>(
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(TIMEOUT, step).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(Failure::TimedOut),
    }
}

/// MAIL FROM, RCPT TO for each recipient, and DATA (`begins` is called just before the first
/// of them is written), with the parameters lettre's own `send`
/// gives them (SMTPUTF8 for non-ASCII addresses, 8BITMIME for non-ASCII content, each only if
/// the server offers it): afterwards the server waits for the content. Pipelined where the
/// server allows it (DATA last in the group, as RFC 2920 requires); either way every reply must
/// be positive, and after a refusal the caller drops the connection.
async fn open_transaction(
    conn: &mut Connection,
    envelope: &Envelope,
    raw: &[u8],
    begins: impl FnOnce(),
) -> Result<(), Failure> {
    let pipelining = conn.pipelining;
    let conn = &mut conn.smtp;
    let refused = |why: &str| {
        Failure::Refused(SendError::Permanent(format!(
            "message refused before sending: {why}"
        )))
    };
    let mut parameters = Vec::new();
    let non_ascii_addresses = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii_addresses {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(refused(
                "non-ASCII addresses, and the server does not offer SMTPUTF8",
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !raw.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(refused(
                "non-ASCII content, and the server does not offer 8BITMIME",
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(envelope.from().cloned(), parameters);
    begins();
    if pipelining {
        let mut commands = mail.to_string();
        for to in envelope.to() {
            commands.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
        }
        commands.push_str(&Data.to_string());
        // One write; then the reply to MAIL, one per RCPT, and DATA's.
        conn.command(commands).await?;
        for _ in 0..envelope.to().len() + 1 {
            conn.read_response().await?;
        }
        return Ok(());
    }
    conn.command(mail).await?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), Vec::new())).await?;
    }
    conn.command(Data).await?;
    Ok(())
}

/// The content as it goes out after DATA (RFC 5321 §4.5.2): a "." that starts a line doubled,
/// then the terminating `<CRLF>.<CRLF>`, by lettre's own rule, in one string written at once
/// (lettre's `message` writes the terminator on its own, a second packet the server wakes up
/// for). `None` for content that is not UTF-8, which lettre's `message` then sends.
fn wire_content(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut wire = String::with_capacity(text.len() + 16);
    if text.starts_with('.') {
        wire.push('.');
    }
    let mut rest = text;
    while let Some(at) = rest.find("\r\n.") {
        wire.push_str(&rest[..at + 3]);
        wire.push('.');
        rest = &rest[at + 3..];
    }
    wire.push_str(rest);
    wire.push_str("\r\n.\r\n");
    Some(wire)
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    // Servers quote the recipient in their replies ("550 <ana@…>: unknown user"); the error
    // text goes to logs and the job record, which never hold addresses.
    let text = crate::domain::redact_addresses(&e.to_string());
    if e.is_permanent() {
        SendError::Permanent(text)
    } else if e.is_client() {
        SendError::Permanent(format!("message refused before sending: {text}"))
    } else {
        SendError::Transient(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_goes_out_with_leading_dots_doubled_and_one_final_dot() {
        assert_eq!(
            wire_content(b".a\r\n.\r\nb.c\r\n..d\r\n\n.e").as_deref(),
            // A dot after a bare line feed is not at the start of a line (lettre's rule too).
            Some("..a\r\n..\r\nb.c\r\n...d\r\n\n.e\r\n.\r\n")
        );
        assert_eq!(wire_content(b"").as_deref(), Some("\r\n.\r\n"));
        assert_eq!(wire_content(b"caf\xe9"), None, "not UTF-8: lettre sends it");
    }

    #[test]
    fn parses_lettre_url_forms() {
        let c = SmtpConfig::from_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("127.0.0.1", 2525, TlsMode::None)
        );
        let c = SmtpConfig::from_url("smtp://user%40x.org:p%40ss@mail.example.org?tls=required")
            .unwrap();
        assert_eq!((c.port, c.tls), (587, TlsMode::Required));
        assert!(c.credentials.is_some());
        assert_eq!(
            SmtpConfig::from_url("smtps://mail.example.org")
                .unwrap()
                .port,
            465
        );
        assert!(SmtpConfig::from_url("http://x").is_err());
        assert!(SmtpConfig::from_url("smtp://x?tls=maybe").is_err());
    }
}

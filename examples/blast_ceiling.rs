//! The newsletter-blast ceiling: a bare lettre client with no database, no templates and no
//! bookkeeping. `concurrency` tokio tasks each open one SMTP connection the way Enlace does
//! (`AsyncSmtpConnection::connect_with_transport` over a `tokio::net::TcpStream` with
//! `TCP_NODELAY`, see src/email/smtp.rs) and send their share of `count` personalised multipart
//! messages (text + HTML, about 18 KB: a 10 KB HTML newsletter and its text part), each built with `lettre::Message::builder()` for its own
//! recipient. Prints one `RESULT` line with messages/s.
//!
//! With `--enlace-smtp` the same messages go through Enlace's own SMTP client instead of lettre's
//! `send` (`enlace::email::SmtpPool`: MAIL, RCPT and DATA pipelined where the server offers
//! PIPELINING, the content and its final dot in one write): the ceiling of Enlace's transport
//! alone, with still no database, templates or bookkeeping.
//!
//! `cargo run --release --example blast_ceiling -- --count 100000 --concurrency 16 --port 2525`

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use enlace::email::{SmtpConfig, SmtpPool};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;

#[derive(Parser)]
struct Args {
    /// Messages to send in all.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// Tasks, each with its own SMTP connection.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 2525)]
    port: u16,
    /// Approximate size of the HTML part in bytes; the text part (the same sections as plain
    /// text) comes to about two thirds of it. The default matches bench/blast.sh's newsletter.
    #[arg(long, default_value_t = 9_600)]
    html_bytes: usize,
    /// Send through Enlace's SMTP client rather than lettre's `send`.
    #[arg(long)]
    enlace_smtp: bool,
}

const CITIES: [&str; 8] = [
    "Phoenix",
    "Tucson",
    "Mesa",
    "Chandler",
    "Tempe",
    "Yuma",
    "Flagstaff",
    "Glendale",
];

const PARAGRAPH: &str = "This month our volunteers knocked on doors in every neighbourhood, \
    the food bank served more families than ever, and the youth program opened a second \
    classroom. Thank you for standing with us: none of it happens without supporters like you.";
/// The same paragraph as plain text, wrapped at 76 columns like Enlace's text part.
const PARAGRAPH_TEXT: &str =
    "This month our volunteers knocked on doors in every neighbourhood, the food\n\
    bank served more families than ever, and the youth program opened a second\n\
    classroom. Thank you for standing with us: none of it happens without\n\
    supporters like you.";

/// The parts of the newsletter every recipient shares, split where their own details go.
struct Template {
    html_body: String,
    text_body: String,
}

impl Template {
    fn new(html_bytes: usize) -> Self {
        let mut html_body = String::new();
        let mut text_body = String::new();
        let mut n = 0;
        while html_body.len() < html_bytes {
            n += 1;
            let _ = write!(
                html_body,
                "<h2 style=\"font-family:Georgia,serif;color:#1a3d5c\">Update {n}</h2>\n\
                 <p style=\"font-family:Arial,sans-serif;font-size:15px;line-height:1.5\">{PARAGRAPH}</p>\n"
            );
            let _ = write!(text_body, "## Update {n}\n\n{PARAGRAPH_TEXT}\n\n");
        }
        Self {
            html_body,
            text_body,
        }
    }

    fn message(&self, i: usize) -> anyhow::Result<Message> {
        let name = format!("Supporter {i}");
        let city = CITIES[i % CITIES.len()];
        let email = format!("user{i}@example.org");
        let unsubscribe = format!("https://lists.example.org/unsubscribe/{i:016x}");
        let html = format!(
            "<!DOCTYPE html><html><body>\n<p>Hello {name} from {city},</p>\n{}\
             <p><a href=\"{unsubscribe}\">Unsubscribe</a></p>\n</body></html>\n",
            self.html_body
        );
        let text = format!(
            "Hello {name} from {city},\n\n{}Unsubscribe: {unsubscribe}\n",
            self.text_body
        );
        let header = |name: &'static str, value: String| {
            HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
        };
        Ok(Message::builder()
            .from("News <news@example.org>".parse()?)
            .to(Mailbox::new(Some(name.clone()), email.parse()?))
            .subject(format!("News for {name}"))
            .message_id(Some(format!("<blast.{i}@example.org>")))
            .raw_header(header("List-Id", "News <newsletter.example.org>".into()))
            .raw_header(header("List-Unsubscribe", format!("<{unsubscribe}>")))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )?)
    }
}

/// How a task sends: lettre's `send` on a connection of its own, or Enlace's client.
enum Client {
    Lettre(Box<AsyncSmtpConnection>),
    Enlace(std::sync::Arc<SmtpPool>),
}

/// One task: one connection, messages `first`, `first + step`, … below `count`.
/// Returns (messages, bytes) sent.
async fn worker(
    args: std::sync::Arc<Args>,
    template: std::sync::Arc<Template>,
    first: usize,
    pool: Option<std::sync::Arc<SmtpPool>>,
) -> anyhow::Result<(usize, usize)> {
    let mut client = match pool {
        Some(pool) => Client::Enlace(pool),
        None => {
            let stream = tokio::net::TcpStream::connect((args.host.as_str(), args.port))
                .await
                .context("connecting to the SMTP server")?;
            stream.set_nodelay(true)?;
            let hello = ClientId::default();
            Client::Lettre(Box::new(
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello).await?,
            ))
        }
    };
    let (mut sent, mut bytes) = (0, 0);
    for i in (first..args.count).step_by(args.concurrency) {
        let message = template.message(i)?;
        let raw = message.formatted();
        let result = match &mut client {
            Client::Lettre(conn) => conn
                .send(message.envelope(), &raw)
                .await
                .map(drop)
                .map_err(anyhow::Error::from),
            Client::Enlace(pool) => pool
                .send(message.envelope(), &raw)
                .await
                .map_err(anyhow::Error::from),
        };
        result.with_context(|| format!("sending message {i}"))?;
        sent += 1;
        bytes += raw.len();
    }
    if let Client::Lettre(mut conn) = client {
        conn.quit().await?;
    }
    Ok((sent, bytes))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = std::sync::Arc::new(Args::parse());
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let template = std::sync::Arc::new(Template::new(args.html_bytes));
    // Enlace's client keeps each task's connection between messages, as its engine does.
    let pool = if args.enlace_smtp {
        let url = format!("smtp://{}:{}", args.host, args.port);
        Some(std::sync::Arc::new(SmtpPool::new(
            SmtpConfig::from_url(&url)?,
            args.concurrency,
        )))
    } else {
        None
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|first| tokio::spawn(worker(args.clone(), template.clone(), first, pool.clone())))
        .collect();
    let (mut sent, mut bytes) = (0, 0);
    for task in tasks {
        let (s, b) = task.await??;
        sent += s;
        bytes += b;
    }
    let elapsed = started
        .elapsed()
        .max(Duration::from_micros(1))
        .as_secs_f64();
    eprintln!(
        "blast ceiling: {sent} messages ({} bytes on average) in {elapsed:.2} s over {} connections",
        bytes / sent.max(1),
        args.concurrency
    );
    println!(
        "RESULT messages={sent} seconds={elapsed:.3} per_second={:.0} avg_bytes={}",
        sent as f64 / elapsed,
        bytes / sent.max(1)
    );
    Ok(())
}

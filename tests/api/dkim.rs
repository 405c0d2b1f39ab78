//! DKIM signatures as receivers check them: an independent verifier (viadkim, not lettre's signer)
//! verifies every kind of message Enlace sends, with an RSA and an Ed25519 key, from the memory
//! transport and as a real SMTP server received it; a message changed after signing fails.

use std::io;
use std::path::PathBuf;

use base64::Engine;
use enlace::auth::Role;
use enlace::config::Settings;
use serde_json::{json, Value};
use viadkim::verifier::LookupTxt;
use viadkim::{DkimResult, HeaderFields, VerificationStatus};

use crate::helpers::TestApp;
use crate::newsletters::{create, post, POSTAL};
use crate::smtp::scripted_server;

pub const SELECTOR: &str = "enlace2026";
pub const DOMAIN: &str = "casa.example.org";

/// An RSA 2048 key in PKCS#1 PEM: the test key the SNS tests sign with serves here too.
const RSA_KEY: &str = include_str!("../fixtures/sns-test-key.pem");
/// An Ed25519 key as the base64 of its 32 bytes (the secret key of RFC 8032's first test vector).
const ED25519_KEY: &str = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
/// Its public key, as the README derives it: the key in PKCS#8 DER through
/// `openssl pkey -pubout -outform DER | tail -c 32 | base64` (RFC 8032 gives the same).
const ED25519_PUBLIC: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

/// Headers every message's signature must cover.
const SIGNED: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];
/// A newsletter's signature covers these as well (the test gives it a Reply-To).
const NEWSLETTER_SIGNED: &[&str] = &["List-Id", "Reply-To"];

#[derive(Clone, Copy, Debug)]
pub enum Key {
    Rsa,
    Ed25519,
}

impl Key {
    /// The DNS TXT record a receiver finds at `SELECTOR._domainkey.DOMAIN`.
    pub fn record(self) -> String {
        match self {
            Key::Rsa => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                use rsa::pkcs8::EncodePublicKey;
                let public = rsa::RsaPrivateKey::from_pkcs1_pem(RSA_KEY)
                    .unwrap()
                    .to_public_key()
                    .to_public_key_der()
                    .unwrap();
                let p = base64::engine::general_purpose::STANDARD.encode(public.as_bytes());
                format!("v=DKIM1; k=rsa; p={p}")
            }
            Key::Ed25519 => format!("v=DKIM1; k=ed25519; p={ED25519_PUBLIC}"),
        }
    }
}

/// A key file for `ENLACE_DKIM_KEY_FILE`, removed with its folder when dropped.
pub struct KeyFile {
    dir: PathBuf,
    path: PathBuf,
}

impl KeyFile {
    pub fn new(key: Key) -> Self {
        let dir = std::env::temp_dir().join(format!("enlace-dkim-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dkim.key");
        let text = match key {
            Key::Rsa => RSA_KEY,
            Key::Ed25519 => ED25519_KEY,
        };
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }

    /// Signing with this key for `DOMAIN` under `SELECTOR`.
    pub fn configure(&self, s: &mut Settings) {
        s.dkim_selector = Some(SELECTOR.into());
        s.dkim_domain = Some(DOMAIN.into());
        s.dkim_key_file = Some(self.path.clone());
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// DNS as the test has it: one TXT record at one name.
#[derive(Clone)]
struct OneRecord {
    name: String,
    record: String,
}

impl LookupTxt for OneRecord {
    type Answer = Vec<io::Result<Vec<u8>>>;
    type Query<'a> = std::future::Ready<io::Result<Self::Answer>>;

    fn lookup_txt(&self, domain: &str) -> Self::Query<'_> {
        // viadkim asks for the absolute name, `selector._domainkey.domain.`.
        let answer = if domain
            .trim_end_matches('.')
            .eq_ignore_ascii_case(&self.name)
        {
            Ok(vec![Ok(self.record.clone().into_bytes())])
        } else {
            Err(io::ErrorKind::NotFound.into())
        };
        std::future::ready(answer)
    }
}

/// Verifies the one DKIM signature of `raw` (a message as received: CRLF lines, no dot-stuffing)
/// against `public_key_record` published at `selector._domainkey.domain`. On a pass, the names
/// of the headers the signature covers (lowercase); otherwise why it failed.
pub async fn verify_dkim(
    raw: &[u8],
    selector: &str,
    domain: &str,
    public_key_record: &str,
) -> Result<Vec<String>, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no blank line after the header")?;
    let header = std::str::from_utf8(&raw[..end]).map_err(|_| "the header is not UTF-8")?;
    let header: HeaderFields = header.parse().map_err(|_| "a malformed header")?;
    let dns = OneRecord {
        name: format!("{selector}._domainkey.{domain}"),
        record: public_key_record.to_owned(),
    };
    let results = viadkim::verify(&dns, &header, &raw[end + 4..], &Default::default()).await;
    let [result] = results.as_slice() else {
        return Err(format!("{} DKIM signatures, not one", results.len()));
    };
    if let VerificationStatus::Failure(e) = &result.status {
        return Err(format!("{e} ({e:?})"));
    }
    assert_eq!(result.status.to_dkim_result(), DkimResult::Pass);
    let signature = result.signature.as_ref().expect("a parsed signature");
    assert_eq!(
        (signature.domain.as_ref(), signature.selector.as_ref()),
        (domain, selector)
    );
    Ok(signature
        .signed_headers
        .iter()
        .map(|name| name.as_ref().to_ascii_lowercase())
        .collect())
}

/// Asserts that `raw` (a `what`) passes DKIM verification with `key`, and that its signature
/// covers each of `SIGNED` and `also`, all of which the message holds.
pub async fn assert_dkim_pass(raw: &[u8], key: Key, what: &str, also: &[&str]) {
    let signed = verify_dkim(raw, SELECTOR, DOMAIN, &key.record())
        .await
        .unwrap_or_else(|e| panic!("the {what} ({key:?}) fails DKIM verification: {e}"));
    let header = String::from_utf8_lossy(raw).to_ascii_lowercase();
    let header = &header[..header.find("\r\n\r\n").unwrap()];
    for name in SIGNED.iter().chain(also) {
        let name = name.to_ascii_lowercase();
        assert!(
            header.starts_with(&format!("{name}:")) || header.contains(&format!("\r\n{name}:")),
            "the {what} has a {name} header"
        );
        assert!(
            signed.contains(&name),
            "the {what}'s signature covers {name}: {signed:?}"
        );
    }
    // Receivers weigh a Message-ID at the sending domain, not at the machine's host name.
    let message = mail_parser::MessageParser::default().parse(raw).unwrap();
    let from = message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address());
    let from_domain = from
        .and_then(|a| a.rsplit_once('@'))
        .map(|(_, d)| d)
        .unwrap();
    let message_id = message.message_id().unwrap_or_default();
    assert!(
        message_id.ends_with(&format!("@{from_domain}")),
        "the {what}'s Message-ID {message_id:?} is at {from_domain}"
    );
}

/// The last message handed to the in-memory transport for `to`, as bytes.
fn last_raw(app: &TestApp, to: &str) -> Vec<u8> {
    let sent = app.sent.lock().unwrap();
    let message = sent
        .iter()
        .rev()
        .find(|m| m.recipients.iter().any(|r| r == to))
        .expect("a message to the recipient");
    message.raw.clone()
}

/// A newsletter in Spanish with a long subject in accented words (encoded and folded), its own
/// From and Reply-To, to everyone; returns its id.
async fn create_newsletter(app: &TestApp, token: &str, text: Option<&str>) -> String {
    let mut body = json!({
        "subject": "Boletín de otoño, {{ name }}: asambleas, talleres y la campaña por la vivienda digna en el barrio",
        "html": "<p>Hola {{ name }}, ¿cómo estás?</p><p>Nos vemos el sábado.</p>",
        "from": format!("Casa del Pueblo <boletin@{DOMAIN}>"),
        "reply_to": format!("Equipo de Organización <equipo@{DOMAIN}>"),
        "filter": {"not": {"email_domain": "nowhere.invalid"}},
    });
    if let Some(text) = text {
        body["text"] = Value::from(text);
    }
    create(app, token, body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Confirmation, welcome, already-subscribed notice, newsletter and newsletter test copy, to a
/// person named "José Núñez", each verified.
async fn every_kind_of_message_verifies(key: Key) {
    let file = KeyFile::new(key);
    let app = TestApp::builder()
        .settings(|s| {
            s.postal_address = Some(POSTAL.into());
            file.configure(s);
        })
        .spawn()
        .await;
    let person = "jose@example.org";
    app.subscribe(json!({"email": person, "name": "José Núñez", "language": "es"}))
        .await;
    let confirmation = app.deliver_one(person).await;
    assert_dkim_pass(&last_raw(&app, person), key, "confirmation", &[]).await;

    let confirm = app.link(&confirmation, "/confirm/");
    let res = app.client.post(app.url(&confirm)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let welcome = app.deliver_one(person).await;
    assert_eq!(
        welcome.to_name.as_deref(),
        Some("José Núñez"),
        "an encoded name in To"
    );
    assert_dkim_pass(&last_raw(&app, person), key, "welcome", &[]).await;

    app.age_jobs(11);
    app.subscribe(json!({"email": person, "language": "es"}))
        .await;
    app.deliver_one(person).await;
    assert_dkim_pass(
        &last_raw(&app, person),
        key,
        "already-subscribed notice",
        &[],
    )
    .await;

    let token = app.staff_token(Role::Editor).await;
    let id = create_newsletter(&app, &token, None).await;
    let (status, _) = post(&app, &token, &format!("/api/v1/newsletters/{id}/send")).await;
    assert_eq!(status, 202);
    app.run_sends().await;
    let newsletter = app.mails_to(person).pop().unwrap();
    assert!(
        newsletter
            .subject
            .starts_with("Boletín de otoño, José Núñez"),
        "{}",
        newsletter.subject
    );
    let raw = last_raw(&app, person);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text[header_field(&text, "Subject")].contains("\r\n =?utf-8?"),
        "the subject is encoded and folded"
    );
    assert!(
        header_field(&text, "List-Unsubscribe").len() > 78,
        "a List-Unsubscribe line longer than a folded line would be"
    );
    assert_dkim_pass(&raw, key, "newsletter", NEWSLETTER_SIGNED).await;

    let editor = format!("editor@{DOMAIN}");
    let res = app
        .send_as(
            &token,
            "POST",
            &format!("/api/v1/newsletters/{id}/test"),
            json!({"to": [editor], "language": "es"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    app.run_jobs().await;
    assert!(app.mails_to(&editor)[0].subject.starts_with("[TEST] "));
    // A test copy carries the newsletter's Reply-To, and no List-Id (it is not list mail).
    assert_dkim_pass(
        &last_raw(&app, &editor),
        key,
        "newsletter test copy",
        &["Reply-To"],
    )
    .await;
}

#[tokio::test]
async fn every_kind_of_message_verifies_with_an_rsa_key() {
    every_kind_of_message_verifies(Key::Rsa).await;
}

#[tokio::test]
async fn every_kind_of_message_verifies_with_an_ed25519_key() {
    every_kind_of_message_verifies(Key::Ed25519).await;
}

/// The bytes a real SMTP server received, dot-stuffing undone by the server, through the
/// pipelined writer: the body hash covers what was sent, dots included.
#[tokio::test]
async fn a_newsletter_with_leading_dots_verifies_as_an_smtp_server_received_it() {
    let (wire, port) = scripted_server(false).await;
    let file = KeyFile::new(Key::Rsa);
    let app = TestApp::builder()
        .settings(|s| {
            s.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
            s.postal_address = Some(POSTAL.into());
            file.configure(s);
        })
        .real_mail()
        .spawn()
        .await;
    app.add_subscriber("ana@example.org", "confirmed", "en", Some("Ana"), json!({}));
    let token = app.staff_token(Role::Editor).await;
    // In ASCII, so the text part goes out as it is written (7bit), leading dots and all.
    let text = "Agenda:\n.one dot\n..two dots\n.\nEnd of the agenda.";
    let id = create_newsletter(&app, &token, Some(text)).await;
    let (status, _) = post(&app, &token, &format!("/api/v1/newsletters/{id}/send")).await;
    assert_eq!(status, 202);
    app.run_sends().await;

    let packets = wire.packets.lock().unwrap().clone();
    assert!(
        packets
            .iter()
            .any(|p| p.contains("MAIL FROM:") && p.ends_with("DATA\r\n")),
        "MAIL, RCPT and DATA pipelined"
    );
    assert!(
        packets
            .concat()
            .contains("\r\n..one dot\r\n...two dots\r\n..\r\n"),
        "the lines went out dot-stuffed"
    );
    let messages = wire.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 1);
    let received = messages[0].as_bytes();
    assert!(
        messages[0].contains("\r\n.one dot\r\n..two dots\r\n.\r\n"),
        "the server undid the stuffing"
    );
    assert_dkim_pass(
        received,
        Key::Rsa,
        "newsletter received by SMTP",
        NEWSLETTER_SIGNED,
    )
    .await;
}

/// A header or body changed after signing fails verification: the check above can fail.
#[tokio::test]
async fn a_message_changed_after_signing_fails_verification() {
    let file = KeyFile::new(Key::Rsa);
    let app = TestApp::builder()
        .settings(|s| {
            s.postal_address = Some(POSTAL.into());
            file.configure(s);
        })
        .spawn()
        .await;
    let person = "ana@example.org";
    app.add_subscriber(person, "confirmed", "es", Some("Ana"), json!({}));
    let token = app.staff_token(Role::Editor).await;
    let id = create_newsletter(&app, &token, None).await;
    post(&app, &token, &format!("/api/v1/newsletters/{id}/send")).await;
    app.run_sends().await;
    let raw = String::from_utf8(last_raw(&app, person)).unwrap();
    let record = Key::Rsa.record();
    let verify = |raw: String| {
        let record = record.clone();
        async move { verify_dkim(raw.as_bytes(), SELECTOR, DOMAIN, &record).await }
    };
    if let Err(e) = verify(raw.clone()).await {
        panic!("as sent, it passes: {e}");
    }

    // Another unsubscribe link: a receiver's one-click would go elsewhere.
    let mut changed = raw.clone();
    changed.replace_range(
        header_field(&raw, "List-Unsubscribe"),
        "List-Unsubscribe: <https://elsewhere.example/u>",
    );
    let failure = verify(changed).await.unwrap_err();
    assert!(
        failure.contains("signature verification failed"),
        "{failure}"
    );

    // Another subject.
    let mut changed = raw.clone();
    changed.replace_range(header_field(&raw, "Subject"), "Subject: Gane un premio");
    let failure = verify(changed).await.unwrap_err();
    assert!(
        failure.contains("signature verification failed"),
        "{failure}"
    );

    // Another body: the signature over the header still holds, the body hash does not.
    let changed = raw.replacen("\r\n\r\n", "\r\n\r\nP.S. Un añadido.\r\n", 1);
    let failure = verify(changed).await.unwrap_err();
    assert!(failure.contains("body hash did not verify"), "{failure}");
}

/// Where the header field `name` lies in `raw`, its continuation lines included.
fn header_field(raw: &str, name: &str) -> std::ops::Range<usize> {
    let start = raw.find(&format!("\r\n{name}: ")).unwrap() + 2;
    let mut end = start;
    loop {
        end += raw[end..].find("\r\n").unwrap();
        if !raw[end + 2..].starts_with([' ', '\t']) {
            return start..end;
        }
        end += 2;
    }
}

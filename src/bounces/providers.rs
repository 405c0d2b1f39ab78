//! The reports of each provider, checked (signature or credentials) and read into `MailReport`s.
//! Events that are neither bounces nor complaints (deliveries, opens, deferrals) are ignored.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{MailReport, ReportKind};
use crate::domain::Email;

/// Why a provider's request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntakeError {
    /// The signature or credentials do not check out: nothing is read.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Authentic, but not in the provider's documented shape.
    #[error("{0}")]
    Malformed(String),
}

/// What a provider's request held.
#[derive(Debug)]
pub struct Parsed {
    pub reports: Vec<MailReport>,
    /// Events of other kinds, or about addresses that are not valid.
    pub ignored: usize,
    /// A one-time token the request's signature covers: refused if it comes again.
    pub replay_token: Option<String>,
    /// When the request arrived.
    now: NaiveDateTime,
}

impl Parsed {
    pub fn new(now: NaiveDateTime) -> Self {
        Self {
            reports: Vec::new(),
            ignored: 0,
            replay_token: None,
            now,
        }
    }

    pub(super) fn push(
        &mut self,
        provider: &'static str,
        id: &str,
        kind: Option<ReportKind>,
        email: Option<&str>,
        occurred_at: Option<NaiveDateTime>,
        detail: Option<&str>,
    ) {
        let now = self.now;
        let email = email.and_then(|e| Email::parse(e).ok());
        match (kind, email) {
            (Some(kind), Some(email)) if !id.is_empty() => self.reports.push(MailReport::new(
                provider,
                id,
                kind,
                email,
                occurred_at,
                detail,
                now,
            )),
            _ => self.ignored += 1,
        }
    }
}

fn rfc3339(raw: Option<&str>) -> Option<NaiveDateTime> {
    DateTime::parse_from_rfc3339(raw?)
        .ok()
        .map(|t| t.naive_utc())
}

fn unix(seconds: Option<f64>) -> Option<NaiveDateTime> {
    let s = seconds.filter(|s| s.is_finite() && *s >= 0.0 && *s < 253_402_300_799.0)?;
    DateTime::from_timestamp_millis((s * 1000.0) as i64).map(|t| t.naive_utc())
}

fn json(body: &[u8]) -> Result<Value, IntakeError> {
    serde_json::from_slice(body).map_err(|e| IntakeError::Malformed(format!("not JSON: {e}")))
}

/// Constant-time comparison of two secrets of any length.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == expected.len() && bool::from(given.ct_eq(expected))
}

/// Postmark's bounce and spam-complaint webhooks, authenticated by the HTTP Basic credentials
/// set on the webhook: any user name, the password being ENLACE_POSTMARK_WEBHOOK_TOKEN.
pub fn postmark(
    authorization: Option<&str>,
    token: &str,
    body: &[u8],
    now: NaiveDateTime,
) -> Result<Parsed, IntakeError> {
    let password = authorization
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|raw| {
            let split = raw.iter().position(|b| *b == b':')?;
            Some(raw[split + 1..].to_vec())
        });
    if !password.is_some_and(|p| same_secret(&p, token.as_bytes())) {
        return Err(IntakeError::Unauthenticated(
            "Postmark webhook credentials do not match",
        ));
    }
    let event = json(body)?;
    if !event.is_object() {
        return Err(IntakeError::Malformed(
            "a Postmark webhook record is a JSON object".into(),
        ));
    }
    let mut parsed = Parsed::new(now);
    let record = event
        .get("RecordType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = match (record, event.get("Type").and_then(Value::as_str)) {
        ("SpamComplaint", _) | ("Bounce", Some("SpamComplaint")) => Some(ReportKind::Complaint),
        ("Bounce", Some("HardBounce" | "BadEmailAddress")) => Some(ReportKind::HardBounce),
        // Blocked: the receiving provider refused the message (reputation, content); the
        // address itself may be fine, so it counts like a temporary failure.
        ("Bounce", Some("SoftBounce" | "Transient" | "DnsError" | "MailboxFull" | "Blocked")) => {
            Some(ReportKind::SoftBounce)
        }
        _ => None,
    };
    let id = match event.get("ID") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    parsed.push(
        "postmark",
        &id,
        kind,
        event.get("Email").and_then(Value::as_str),
        rfc3339(event.get("BouncedAt").and_then(Value::as_str)),
        event.get("Description").and_then(Value::as_str),
    );
    Ok(parsed)
}

/// SendGrid's Event Webhook with signature verification on: an ECDSA P-256 signature over the
/// timestamp header followed by the body, checked with the public key SendGrid shows
/// (ENLACE_SENDGRID_WEBHOOK_PUBLIC_KEY, base64 DER).
pub fn sendgrid(
    signature: Option<&str>,
    timestamp: Option<&str>,
    public_key: &p256::ecdsa::VerifyingKey,
    body: &[u8],
    now: NaiveDateTime,
) -> Result<Parsed, IntakeError> {
    use p256::ecdsa::signature::Verifier;
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(IntakeError::Unauthenticated(
            "the SendGrid signature headers are missing",
        ));
    };
    let signature = STANDARD
        .decode(signature.trim())
        .ok()
        .and_then(|der| p256::ecdsa::Signature::from_der(&der).ok())
        .ok_or(IntakeError::Unauthenticated(
            "the SendGrid signature is not valid",
        ))?;
    let mut signed = timestamp.as_bytes().to_vec();
    signed.extend_from_slice(body);
    public_key
        .verify(&signed, &signature)
        .map_err(|_| IntakeError::Unauthenticated("the SendGrid signature is not valid"))?;
    let events = json(body)?;
    let Some(events) = events.as_array() else {
        return Err(IntakeError::Malformed(
            "SendGrid sends an array of events".into(),
        ));
    };
    let mut parsed = Parsed::new(now);
    for event in events {
        let text = |key: &str| event.get(key).and_then(Value::as_str);
        let kind = match (text("event"), text("type")) {
            (Some("bounce"), Some("blocked")) => Some(ReportKind::SoftBounce),
            (Some("bounce"), _) => Some(ReportKind::HardBounce),
            (Some("spamreport"), _) => Some(ReportKind::Complaint),
            _ => None,
        };
        parsed.push(
            "sendgrid",
            text("sg_event_id").unwrap_or(""),
            kind,
            text("email"),
            unix(event.get("timestamp").and_then(Value::as_f64)),
            text("reason"),
        );
    }
    Ok(parsed)
}

/// Reads SendGrid's public key as its settings page shows it (base64 of the DER key).
pub fn sendgrid_key(base64_der: &str) -> anyhow::Result<p256::ecdsa::VerifyingKey> {
    use p256::pkcs8::DecodePublicKey;
    let der = STANDARD.decode(base64_der.trim())?;
    p256::ecdsa::VerifyingKey::from_public_key_der(&der)
        .map_err(|e| anyhow::anyhow!("ENLACE_SENDGRID_WEBHOOK_PUBLIC_KEY is not a P-256 key: {e}"))
}

/// How far a Mailgun signature's timestamp may be from now.
pub const MAILGUN_MAX_AGE_MINUTES: i64 = 15;

/// Mailgun's webhooks: an HMAC-SHA256 of timestamp and token with the webhook signing key
/// (ENLACE_MAILGUN_SIGNING_KEY), inside the JSON body. The signature does not cover the event,
/// so a request is accepted only while its timestamp is fresh, and its token only once (the
/// caller records `replay_token`).
pub fn mailgun(signing_key: &str, body: &[u8], now: NaiveDateTime) -> Result<Parsed, IntakeError> {
    let payload = json(body)?;
    let signature = &payload["signature"];
    let (Some(timestamp), Some(token), Some(given)) = (
        signature["timestamp"].as_str(),
        signature["token"].as_str(),
        signature["signature"].as_str(),
    ) else {
        return Err(IntakeError::Unauthenticated(
            "the Mailgun signature is missing",
        ));
    };
    let given = decode_hex(given).ok_or(IntakeError::Unauthenticated(
        "the Mailgun signature is not valid",
    ))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    mac.verify_slice(&given)
        .map_err(|_| IntakeError::Unauthenticated("the Mailgun signature is not valid"))?;
    let signed_at = timestamp
        .parse::<i64>()
        .ok()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .map(|t| t.naive_utc());
    let fresh = signed_at.is_some_and(|t| (now - t).num_minutes().abs() <= MAILGUN_MAX_AGE_MINUTES);
    if !fresh {
        return Err(IntakeError::Unauthenticated(
            "the Mailgun signature is too old (or from the future)",
        ));
    }
    let event = &payload["event-data"];
    let text = |key: &str| event[key].as_str();
    let kind = match (text("event"), text("severity")) {
        (Some("failed"), Some("permanent")) => Some(ReportKind::HardBounce),
        (Some("failed"), Some("temporary")) => Some(ReportKind::SoftBounce),
        (Some("complained"), _) => Some(ReportKind::Complaint),
        _ => None,
    };
    let detail = event["delivery-status"]["message"]
        .as_str()
        .or_else(|| event["delivery-status"]["description"].as_str())
        .or(text("reason"));
    let mut parsed = Parsed::new(now);
    parsed.replay_token = Some(format!(
        "mailgun:{}",
        token.chars().take(200).collect::<String>()
    ));
    parsed.push(
        "mailgun",
        text("id").unwrap_or(""),
        kind,
        text("recipient"),
        unix(event["timestamp"].as_f64()),
        detail,
    );
    Ok(parsed)
}

fn decode_hex(raw: &str) -> Option<Vec<u8>> {
    if raw.len() % 2 != 0 || !raw.is_ascii() {
        return None;
    }
    (0..raw.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&raw[i..i + 2], 16).ok())
        .collect()
}

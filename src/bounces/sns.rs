//! Amazon SES bounce and complaint notifications, delivered by SNS. Every SNS message is
//! signed; the signature is checked against the certificate named in the message, which must
//! come from an SNS host over https, and only topics the operator listed are accepted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::providers::{IntakeError, Parsed};
use super::ReportKind;
use crate::domain::Email;

/// The fields of an SNS message (notification or subscription confirmation).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    #[serde(rename = "Type")]
    pub kind: String,
    pub message_id: String,
    pub topic_arn: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: String,
    pub signature_version: String,
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default, rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
}

impl SnsMessage {
    /// The text SNS signs: chosen fields as `name\nvalue\n`, in this order.
    pub fn string_to_sign(&self) -> String {
        let mut out = String::new();
        let mut field = |name: &str, value: &str| {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        field("Message", &self.message);
        field("MessageId", &self.message_id);
        if self.kind == "Notification" {
            if let Some(subject) = &self.subject {
                field("Subject", subject);
            }
        } else {
            field("SubscribeURL", self.subscribe_url.as_deref().unwrap_or(""));
        }
        field("Timestamp", &self.timestamp);
        if self.kind != "Notification" {
            field("Token", self.token.as_deref().unwrap_or(""));
        }
        field("TopicArn", &self.topic_arn);
        field("Type", &self.kind);
        out
    }
}

/// Whether `raw` is an https URL on an SNS host (`sns.<region>.amazonaws.com[.cn]`).
pub fn is_sns_url(raw: &str) -> bool {
    let Ok(url) = Url::parse(raw) else {
        return false;
    };
    let host_ok = url.host_str().is_some_and(|host| {
        let rest = host
            .strip_suffix(".amazonaws.com")
            .or_else(|| host.strip_suffix(".amazonaws.com.cn"));
        rest.and_then(|r| r.strip_prefix("sns."))
            .is_some_and(|region| {
                !region.is_empty()
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    });
    url.scheme() == "https"
        && host_ok
        && url.port().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

/// Signing certificates kept at most.
const MAX_CERTIFICATES: usize = 64;

/// Checks SNS messages: topic allow-list, certificate source, signature. Certificates are
/// fetched once per URL and kept.
pub struct SnsVerifier {
    topics: Vec<String>,
    certificates: Mutex<HashMap<String, RsaPublicKey>>,
    client: reqwest::Client,
}

impl SnsVerifier {
    pub fn new(topics: Vec<String>) -> anyhow::Result<Self> {
        Ok(Self {
            topics,
            certificates: Mutex::new(HashMap::new()),
            client: reqwest::Client::builder()
                .timeout(StdDuration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        })
    }

    /// Trusts `pem` as the certificate at `url` without fetching it.
    pub fn add_certificate(&self, url: &str, pem: &str) -> anyhow::Result<()> {
        let key = public_key(pem)?;
        self.certificates
            .lock()
            .expect("certificate cache")
            .insert(url.to_owned(), key);
        Ok(())
    }

    /// Verifies the message; Ok means it is authentic and for one of our topics.
    pub async fn verify(self: &Arc<Self>, message: &SnsMessage) -> Result<(), IntakeError> {
        if !self.topics.iter().any(|t| t == &message.topic_arn) {
            return Err(IntakeError::Unauthenticated(
                "this SNS topic is not one Enlace accepts (ENLACE_SES_TOPIC_ARNS)",
            ));
        }
        let cached = self
            .certificates
            .lock()
            .expect("certificate cache")
            .get(&message.signing_cert_url)
            .cloned();
        let key = match cached {
            Some(key) => key,
            None => {
                if !is_sns_url(&message.signing_cert_url)
                    || !message.signing_cert_url.ends_with(".pem")
                {
                    return Err(IntakeError::Unauthenticated(
                        "the signing certificate is not on an SNS host",
                    ));
                }
                // AWS signs with a handful of certificates; a flood of distinct URLs (each one
                // fetched) means someone is probing, not SNS.
                if self.certificates.lock().expect("certificate cache").len() >= MAX_CERTIFICATES {
                    return Err(IntakeError::Unauthenticated(
                        "too many distinct signing certificates",
                    ));
                }
                let key = self.fetch(&message.signing_cert_url).await.map_err(|e| {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not fetch an SNS signing certificate"
                    );
                    IntakeError::Unauthenticated("the signing certificate could not be fetched")
                })?;
                self.certificates
                    .lock()
                    .expect("certificate cache")
                    .insert(message.signing_cert_url.clone(), key.clone());
                key
            }
        };
        let signature = STANDARD
            .decode(message.signature.trim())
            .ok()
            .and_then(|raw| Signature::try_from(raw.as_slice()).ok())
            .ok_or(IntakeError::Unauthenticated(
                "the SNS signature is not valid",
            ))?;
        let signed = message.string_to_sign();
        let valid = match message.signature_version.as_str() {
            "1" => VerifyingKey::<sha1::Sha1>::new(key)
                .verify(signed.as_bytes(), &signature)
                .is_ok(),
            "2" => VerifyingKey::<sha2::Sha256>::new(key)
                .verify(signed.as_bytes(), &signature)
                .is_ok(),
            _ => false,
        };
        if valid {
            Ok(())
        } else {
            Err(IntakeError::Unauthenticated(
                "the SNS signature is not valid",
            ))
        }
    }

    async fn fetch(&self, url: &str) -> anyhow::Result<RsaPublicKey> {
        let response = self.client.get(url).send().await?.error_for_status()?;
        let body = response.bytes().await?;
        anyhow::ensure!(body.len() < 64 * 1024, "certificate too large");
        public_key(std::str::from_utf8(&body)?)
    }

    /// Confirms a subscription by visiting its SubscribeURL (an SNS host only).
    pub async fn confirm_subscription(&self, message: &SnsMessage) -> Result<(), IntakeError> {
        let url = message
            .subscribe_url
            .as_deref()
            .filter(|u| is_sns_url(u))
            .ok_or_else(|| IntakeError::Malformed("SubscribeURL is not an SNS URL".into()))?;
        self.client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| {
                tracing::warn!(error = %e, "could not confirm the SNS subscription");
                IntakeError::Malformed("the subscription could not be confirmed".into())
            })?;
        Ok(())
    }
}

/// The RSA public key of a PEM certificate.
fn public_key(pem: &str) -> anyhow::Result<RsaPublicKey> {
    use x509_cert::der::DecodePem;
    let certificate = x509_cert::Certificate::from_pem(pem.as_bytes())?;
    let spki = certificate.tbs_certificate.subject_public_key_info;
    let der = x509_cert::der::Encode::to_der(&spki)?;
    use rsa::pkcs8::DecodePublicKey;
    Ok(RsaPublicKey::from_public_key_der(&der)?)
}

/// The bounces and complaints in an SES notification (both the notification format and the
/// event-publishing format).
pub fn ses_reports(message: &SnsMessage, now: NaiveDateTime) -> Result<Parsed, IntakeError> {
    let body: Value = serde_json::from_str(&message.message)
        .map_err(|e| IntakeError::Malformed(format!("the SES notification is not JSON: {e}")))?;
    let kind = body["notificationType"]
        .as_str()
        .or_else(|| body["eventType"].as_str())
        .unwrap_or("");
    let mut parsed = Parsed::new(now);
    let (report, recipients, report_kind) = match kind {
        "Bounce" => {
            let bounce = &body["bounce"];
            let kind = match bounce["bounceType"].as_str() {
                Some("Permanent") => Some(ReportKind::HardBounce),
                Some("Transient" | "Undetermined") => Some(ReportKind::SoftBounce),
                _ => None,
            };
            (bounce, &bounce["bouncedRecipients"], kind)
        }
        "Complaint" => {
            let complaint = &body["complaint"];
            let kind = match complaint["complaintFeedbackType"].as_str() {
                Some("not-spam") => None,
                _ => Some(ReportKind::Complaint),
            };
            (complaint, &complaint["complainedRecipients"], kind)
        }
        _ => {
            parsed.ignored += 1;
            return Ok(parsed);
        }
    };
    let feedback = report["feedbackId"].as_str().unwrap_or(&message.message_id);
    let at = report["timestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.naive_utc());
    for (i, recipient) in recipients.as_array().into_iter().flatten().enumerate() {
        let email = recipient["emailAddress"]
            .as_str()
            .and_then(|e| Email::parse(e).ok());
        match (report_kind, email) {
            (Some(kind), Some(email)) => parsed.reports.push(super::MailReport::new(
                "ses",
                &format!("{feedback}:{i}"),
                kind,
                email,
                at,
                recipient["diagnosticCode"].as_str(),
                now,
            )),
            _ => parsed.ignored += 1,
        }
    }
    Ok(parsed)
}

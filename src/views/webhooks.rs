//! Webhooks on the wire: the events Enlace sends (the envelope and the `data` of each type), and
//! the endpoints and delivery log staff manage them with.

use serde::Serialize;
use serde_json::Value;

use super::time;
use crate::db::deliveries::Progress;
use crate::db::newsletters::Newsletter;
use crate::db::webhooks::{Attempt, Endpoint, Message};

/// One event as its receiver gets it: `{"data": ..., "timestamp": ..., "type": ...}`, signed
/// over exactly these bytes.
#[derive(Serialize)]
pub struct EventView<'a, D> {
    pub data: D,
    pub timestamp: String,
    #[serde(rename = "type")]
    pub event_type: &'a str,
}

/// The `data` of `subscriber.erased`: the id and when, nothing else about the person.
#[derive(Serialize)]
pub struct ErasedEvent<'a> {
    pub erased_at: String,
    pub id: &'a str,
}

/// The `data` of `newsletter.started` and `newsletter.finished`: the newsletter and its counts
/// (and, when it finished, its results as the results API gives them).
#[derive(Serialize)]
pub struct NewsletterEvent<'a> {
    pub failed: i64,
    pub finished_at: Option<String>,
    pub id: &'a str,
    pub recipients: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<serde_json::Value>,
    pub segment_id: Option<&'a str>,
    pub sent: i64,
    pub skipped: i64,
    pub started_at: Option<String>,
    pub status: &'a str,
    pub subject: &'a str,
}

impl<'a> NewsletterEvent<'a> {
    pub fn new(n: &'a Newsletter, progress: &Progress) -> Self {
        Self {
            failed: progress.failed,
            finished_at: n.finished_at.map(time),
            id: &n.id,
            recipients: progress.total,
            results: None,
            segment_id: n.segment_id.as_deref(),
            sent: progress.sent,
            skipped: progress.skipped,
            started_at: n.started_at.map(time),
            status: n.status.as_str(),
            subject: &n.subject,
        }
    }
}

/// The `data` of `webhook.test`.
#[derive(Serialize)]
pub struct TestEvent<'a> {
    pub endpoint_id: &'a str,
    pub message: &'static str,
}

/// A webhook endpoint as staff read it (never its secret).
#[derive(Serialize)]
pub struct EndpointView<'a> {
    pub created_at: String,
    pub description: &'a str,
    pub disabled_reason: Option<&'a str>,
    pub enabled: bool,
    pub events: Vec<String>,
    pub id: &'a str,
    pub updated_at: String,
    pub url: &'a str,
}

impl<'a> From<&'a Endpoint> for EndpointView<'a> {
    fn from(e: &'a Endpoint) -> Self {
        Self {
            created_at: time(e.created_at),
            description: &e.description,
            disabled_reason: e.disabled_reason.as_deref(),
            enabled: e.enabled,
            events: e.events(),
            id: &e.id,
            updated_at: time(e.updated_at),
            url: &e.url,
        }
    }
}

/// A new endpoint with its signing secret, shown this once: receivers need it to verify
/// signatures, and it is never listed again.
#[derive(Serialize)]
pub struct CreatedEndpointView<'a> {
    #[serde(flatten)]
    pub endpoint: EndpointView<'a>,
    pub secret: &'a str,
}

impl<'a> From<&'a Endpoint> for CreatedEndpointView<'a> {
    fn from(e: &'a Endpoint) -> Self {
        Self {
            endpoint: e.into(),
            secret: &e.secret,
        }
    }
}

/// A rotated secret, shown once, and until when the previous one still signs.
#[derive(Serialize)]
pub struct RotatedSecretView<'a> {
    pub previous_secret_valid_until: String,
    pub secret: &'a str,
}

/// The id of a queued test message.
#[derive(Serialize)]
pub struct QueuedTestView {
    pub message_id: String,
}

/// One message in an endpoint's delivery log, with every attempt at it.
#[derive(Serialize)]
pub struct MessageView<'a> {
    pub attempts: i32,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub event_type: &'a str,
    pub id: &'a str,
    pub last_error: Option<&'a str>,
    pub last_status: Option<i32>,
    pub log: Vec<AttemptView<'a>>,
    pub payload: Value,
    pub state: &'a str,
    pub updated_at: String,
}

impl<'a> MessageView<'a> {
    pub fn new(m: &'a Message, attempts: &'a [Attempt]) -> Self {
        Self {
            attempts: m.attempts,
            created_at: time(m.created_at),
            delivered_at: m.delivered_at.map(time),
            event_type: &m.event_type,
            id: &m.id,
            last_error: m.last_error.as_deref(),
            last_status: m.last_status,
            log: attempts.iter().map(Into::into).collect(),
            payload: serde_json::from_str(&m.payload).unwrap_or(Value::Null),
            state: m.state.as_str(),
            updated_at: time(m.updated_at),
        }
    }
}

/// One attempt at delivering a message: when, the receiver's status and answer, how long.
#[derive(Serialize)]
pub struct AttemptView<'a> {
    pub at: String,
    pub attempt: i32,
    pub duration_ms: i32,
    pub error: Option<&'a str>,
    pub response: Option<&'a str>,
    pub status_code: Option<i32>,
}

impl<'a> From<&'a Attempt> for AttemptView<'a> {
    fn from(a: &'a Attempt) -> Self {
        Self {
            at: time(a.attempted_at),
            attempt: a.attempt,
            duration_ms: a.duration_ms,
            error: a.error.as_deref(),
            response: a.response.as_deref(),
            status_code: a.status_code,
        }
    }
}

/// A page of an endpoint's delivery log.
#[derive(Serialize)]
pub struct MessagePageView<'a> {
    pub data: Vec<MessageView<'a>>,
    pub next_cursor: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Receivers verify the signature over these bytes: the envelope keeps its keys in
    /// alphabetical order, as it always has.
    #[test]
    fn an_event_is_written_data_timestamp_type() {
        let event = EventView {
            data: ErasedEvent {
                erased_at: "2026-01-02T03:04:05.000000Z".into(),
                id: "0b7e",
            },
            timestamp: "2026-01-02T03:04:05.000001Z".into(),
            event_type: "subscriber.erased",
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"data":{"erased_at":"2026-01-02T03:04:05.000000Z","id":"0b7e"},"#.to_owned()
                + r#""timestamp":"2026-01-02T03:04:05.000001Z","type":"subscriber.erased"}"#
        );
    }
}

//! How stored records look on the wire: the staff API's answers, webhook payloads and export
//! lines are serialised from the structs here, one shape for one record wherever it goes out.
//!
//! Fields are declared in alphabetical order, the order in which the API has always written its
//! keys, so the bytes of a webhook payload or an export line stay what integrations have seen.
//! A key whose value may be unknown is written as `null`; `skip_serializing_if` marks the few
//! keys that are left out instead.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::Value;

pub mod catalog;
pub mod events;
pub mod imports;
pub mod newsletters;
pub mod segments;
pub mod staff;
pub mod subscribers;
pub mod webhooks;

pub use subscribers::SubscriberView;

/// A stored time as the API writes it: RFC 3339, UTC, microseconds.
pub fn time(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A stored time as newsletters and segments write it: RFC 3339 with the offset `+00:00` and
/// only the fractional digits it needs.
pub fn offset_time(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339()
}

/// A JSON document stored as text (attributes, variants, interest lists), or `fallback` when
/// the text does not parse.
pub(crate) fn stored_json(text: &str, fallback: fn() -> Value) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| fallback())
}

/// An empty JSON object.
pub(crate) fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A list answer with nothing more than its items: `{"data": [...]}`.
#[derive(Serialize)]
pub struct List<T> {
    pub data: Vec<T>,
}

impl<T> List<T> {
    pub fn new(data: impl IntoIterator<Item = T>) -> Self {
        Self {
            data: data.into_iter().collect(),
        }
    }
}

/// A list page whose `next` is the `before` of the next page (imports, the audit log).
#[derive(Serialize)]
pub struct BeforePage<'a, T> {
    pub data: Vec<T>,
    pub next: Option<&'a str>,
}

/// A one-word answer: `{"status": "pending"}` for a signup, `confirmed` or `already_confirmed`
/// for a confirmation, `ok` and `ready` for the health checks.
#[derive(Serialize)]
pub struct StatusView {
    pub status: &'static str,
}

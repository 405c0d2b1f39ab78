//! How stored records look on the wire, shared by the staff API and webhook payloads (one shape
//! for one record, wherever it goes out); exports write times the same way.

use chrono::NaiveDateTime;
use serde_json::{json, Value};

use crate::db::subscribers::Subscriber;

/// A stored time as the API writes it: RFC 3339, UTC, microseconds.
pub fn time(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A subscriber as staff answers and webhook payloads show them.
pub fn subscriber(s: &Subscriber, interests: &[String]) -> Value {
    json!({
        "id": s.id,
        "email": s.email,
        "name": s.name,
        "language": s.language,
        "status": s.status,
        "interests": interests,
        "attributes": serde_json::from_str::<Value>(&s.attributes).unwrap_or_else(|_| json!({})),
        "source": s.source,
        "created_at": time(s.created_at),
        "updated_at": time(s.updated_at),
        "confirmed_at": s.confirmed_at.map(time),
        "unsubscribed_at": s.unsubscribed_at.map(time),
    })
}

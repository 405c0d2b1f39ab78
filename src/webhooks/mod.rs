//! Outbound webhooks: the events Enlace announces, and their emission into the outbox. An event
//! is written inside the transaction that makes the change it reports: one message and one
//! delivery job per enabled endpoint that subscribed to its type. Delivery (signed, retried with
//! the same id) happens later, in the task worker.

pub mod delivery;
pub mod signing;
pub mod target;

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::ids::NewsletterId;
use crate::db::jobs::{JobState, NewJob};
use crate::db::subscribers::Subscriber;
use crate::db::webhooks::{self as store, Message, DELIVER_KIND};
use crate::db::{self, AnyConnection};
use crate::views::time;
use crate::views::webhooks::{ErasedEvent, EventView, NewsletterEvent, TestEvent};
use crate::views::SubscriberView;

pub use delivery::Deliverer;

/// Attempts at one message before it is recorded as failed: with the queue's backoff (30 s
/// doubling up to an hour between attempts), about a day.
pub const MAX_ATTEMPTS: i32 = 30;

/// Every event type an endpoint may subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    SubscriberCreated,
    SubscriberConfirmed,
    SubscriberUpdated,
    SubscriberUnsubscribed,
    SubscriberErased,
    SubscriberBounced,
    SubscriberComplained,
    NewsletterStarted,
    NewsletterFinished,
    /// Sent only by the "send test" action, to one endpoint, whatever it subscribed to.
    WebhookTest,
}

impl EventType {
    /// The types an endpoint can subscribe to (the test event needs no subscription).
    pub const SUBSCRIBABLE: [EventType; 9] = [
        Self::SubscriberCreated,
        Self::SubscriberConfirmed,
        Self::SubscriberUpdated,
        Self::SubscriberUnsubscribed,
        Self::SubscriberErased,
        Self::SubscriberBounced,
        Self::SubscriberComplained,
        Self::NewsletterStarted,
        Self::NewsletterFinished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubscriberCreated => "subscriber.created",
            Self::SubscriberConfirmed => "subscriber.confirmed",
            Self::SubscriberUpdated => "subscriber.updated",
            Self::SubscriberUnsubscribed => "subscriber.unsubscribed",
            Self::SubscriberErased => "subscriber.erased",
            Self::SubscriberBounced => "subscriber.bounced",
            Self::SubscriberComplained => "subscriber.complained",
            Self::NewsletterStarted => "newsletter.started",
            Self::NewsletterFinished => "newsletter.finished",
            Self::WebhookTest => "webhook.test",
        }
    }

    /// A subscribable type by name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::SUBSCRIBABLE.into_iter().find(|t| t.as_str() == raw)
    }
}

/// The enabled endpoints and what each subscribed to, read once per transaction (or per batch
/// of signups). With no endpoint, emitting costs nothing more than this one SELECT.
pub struct Outbox {
    endpoints: Vec<(String, Vec<String>)>,
}

impl Outbox {
    pub fn load(conn: &mut AnyConnection) -> QueryResult<Self> {
        let endpoints = store::list_enabled_subscriptions(conn)?
            .into_iter()
            .map(|(id, types)| (id, serde_json::from_str(&types).unwrap_or_default()))
            .collect();
        Ok(Self { endpoints })
    }

    /// Whether any endpoint wants events of this type.
    pub fn wants(&self, event: EventType) -> bool {
        self.endpoints
            .iter()
            .any(|(_, types)| types.iter().any(|t| t == event.as_str()))
    }

    /// Queues one event for every endpoint that subscribed to its type. `subscriber_id` links the
    /// messages to the person the data describes, so erasing them scrubs the messages too.
    pub fn emit(
        &self,
        conn: &mut AnyConnection,
        event: EventType,
        subscriber_id: Option<&str>,
        data: impl Serialize,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        let targets: Vec<&str> = self
            .endpoints
            .iter()
            .filter(|(_, types)| types.iter().any(|t| t == event.as_str()))
            .map(|(id, _)| id.as_str())
            .collect();
        if targets.is_empty() {
            return Ok(0);
        }
        let payload = payload(event, data, now);
        insert_messages(conn, &targets, event, subscriber_id, &payload, now).map(|ids| ids.len())
    }

    /// Queues a subscriber event for each of `ids`, with the staff API's view of the person as
    /// it is now (read in one go, and only when some endpoint wants the event).
    pub fn emit_subscribers(
        &self,
        conn: &mut AnyConnection,
        event: EventType,
        ids: &[&str],
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        if ids.is_empty() || !self.wants(event) {
            return Ok(0);
        }
        let mut total = 0;
        for (s, interests) in subscribers_with_interests(conn, ids)? {
            let view = SubscriberView::new(&s, &interests);
            total += self.emit(conn, event, Some(&s.id), view, now)?;
        }
        Ok(total)
    }
}

/// Queues a subscriber event (created, confirmed, updated, unsubscribed, bounced, complained)
/// carrying the person's record as the staff API shows it. Call inside the transaction that
/// made the change. This is the entry point for code outside this module, such as bounce and
/// complaint intake: `webhooks::emit_subscriber(conn, EventType::SubscriberComplained, id, now)`.
pub fn emit_subscriber(
    conn: &mut AnyConnection,
    event: EventType,
    subscriber_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    Outbox::load(conn)?.emit_subscribers(conn, event, &[subscriber_id], now)
}

/// Queues an event with data of the caller's making (no personal data: it is not scrubbed on
/// erasure). Call inside the transaction that made the change.
pub fn emit(
    conn: &mut AnyConnection,
    event: EventType,
    data: impl Serialize,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    Outbox::load(conn)?.emit(conn, event, None, data, now)
}

/// Erasure, inside its transaction: messages about the person that were not delivered are
/// dropped, delivered ones keep nothing but the id, and `subscriber.erased` (id and time only)
/// is queued.
pub fn emit_erased(
    conn: &mut AnyConnection,
    subscriber_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    store::forget_subscriber(conn, subscriber_id, now)?;
    emit(
        conn,
        EventType::SubscriberErased,
        ErasedEvent {
            erased_at: time(now),
            id: subscriber_id,
        },
        now,
    )
}

/// Queues `newsletter.started` or `newsletter.finished` for each of `ids`.
/// A newsletter's results as an event carries them (the caller knows how they are read).
pub type Summary =
    dyn Fn(&mut AnyConnection, &db::newsletters::Newsletter) -> QueryResult<serde_json::Value>;

pub fn emit_newsletters(
    conn: &mut AnyConnection,
    event: EventType,
    ids: &[String],
    now: NaiveDateTime,
    results: Option<&Summary>,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let outbox = Outbox::load(conn)?;
    if !outbox.wants(event) {
        return Ok(0);
    }
    let mut total = 0;
    for id in ids {
        let Some(newsletter) = NewsletterId::parse(id)
            .map(|id| db::newsletters::find_newsletter(conn, &id))
            .transpose()?
            .flatten()
        else {
            continue;
        };
        let progress = db::deliveries::progress(conn, id, now)?;
        let mut data = NewsletterEvent::new(&newsletter, &progress);
        if let Some(summarize) = results {
            data.results = Some(summarize(conn, &newsletter)?);
        }
        total += outbox.emit(conn, event, None, data, now)?;
    }
    Ok(total)
}

/// Queues a `webhook.test` message to one endpoint; returns its id.
pub fn queue_test(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    now: NaiveDateTime,
) -> QueryResult<String> {
    let data = TestEvent {
        endpoint_id,
        message: "A test event from Enlace: this endpoint is reachable and can verify signatures.",
    };
    let payload = payload(EventType::WebhookTest, data, now);
    let ids = insert_messages(
        conn,
        &[endpoint_id],
        EventType::WebhookTest,
        None,
        &payload,
        now,
    )?;
    Ok(ids.into_iter().next().unwrap_or_default())
}

/// The bytes a message carries (and its signature covers): the event's envelope around `data`.
fn payload(event: EventType, data: impl Serialize, now: NaiveDateTime) -> String {
    let envelope = EventView {
        data,
        timestamp: time(now),
        event_type: event.as_str(),
    };
    // The views have string keys and infallible fields, which serde_json always writes.
    serde_json::to_string(&envelope).expect("an event view serialises")
}

fn insert_messages(
    conn: &mut AnyConnection,
    endpoints: &[&str],
    event: EventType,
    subscriber_id: Option<&str>,
    payload: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let messages: Vec<Message> = endpoints
        .iter()
        .map(|endpoint_id| Message {
            id: new_message_id(),
            endpoint_id: (*endpoint_id).to_owned(),
            event_type: event.as_str().to_owned(),
            subscriber_id: subscriber_id.map(str::to_owned),
            payload: payload.to_owned(),
            state: store::WebhookMessageState::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            delivered_at: None,
        })
        .collect();
    store::insert_messages(conn, &messages)?;
    // The job is not linked to the subscriber: an unsubscribe drops the person's queued mail,
    // but the integration must still hear about it.
    for message in &messages {
        db::jobs::insert_job(
            conn,
            &NewJob {
                id: db::new_id(),
                kind: DELIVER_KIND,
                payload: message.id.clone(),
                subscriber_id: None,
                state: JobState::Queued,
                attempts: 0,
                max_attempts: MAX_ATTEMPTS,
                run_at: now,
                created_at: now,
            },
        )?;
    }
    Ok(messages.into_iter().map(|m| m.id).collect())
}

/// `msg_` and a time-ordered UUID: the `webhook-id`, sortable newest first.
fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// Days the delivery log keeps settled messages.
pub const LOG_RETENTION_DAYS: i64 = 30;

/// Trims the delivery log of every endpoint (a disabled or always failing one too) to
/// `LOG_RETENTION_DAYS`; messages still waiting to be delivered stay.
pub fn prune_log(conn: &mut AnyConnection, now: NaiveDateTime) -> diesel::QueryResult<usize> {
    let cutoff = now - chrono::Duration::days(LOG_RETENTION_DAYS);
    crate::db::webhooks::prune_settled(conn, &first_message_id_at(cutoff))
}

/// The smallest message id created at `at`: every older message sorts before it (a UUIDv7
/// starts with its Unix time in milliseconds, as 12 hex digits).
pub fn first_message_id_at(at: NaiveDateTime) -> String {
    let millis = at.and_utc().timestamp_millis().max(0);
    format!("msg_{millis:012x}{}", "0".repeat(20))
}

/// Each of these subscribers that exists, with the slugs of their interests, read with two
/// queries per 500.
fn subscribers_with_interests(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> QueryResult<Vec<(Subscriber, Vec<String>)>> {
    let mut interests: HashMap<String, Vec<String>> = HashMap::new();
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let rows: Vec<Subscriber> = db::subscribers::find_subscribers(conn, chunk)?;
        for (id, interest) in db::subscribers::list_interests_of(conn, chunk)? {
            interests.entry(id).or_default().push(interest.slug);
        }
        let mut by_id: HashMap<String, Subscriber> =
            rows.into_iter().map(|s| (s.id.to_string(), s)).collect();
        for id in chunk {
            if let Some(s) = by_id.remove(*id) {
                let held = interests.get(s.id.as_str()).cloned().unwrap_or_default();
                found.push((s, held));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_sort_by_creation_time() {
        let now = db::now();
        let id = new_message_id();
        assert!(first_message_id_at(now - chrono::Duration::seconds(1)) < id);
        assert!(id < first_message_id_at(now + chrono::Duration::seconds(1)));
        assert!(is_webhook_id(&id));
    }

    fn is_webhook_id(id: &str) -> bool {
        id.len() == 36 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }
}

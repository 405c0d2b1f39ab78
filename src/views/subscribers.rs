//! Subscribers on the wire: the record staff read (`GET /api/v1/subscribers/{id}`), which is also
//! the `data` of subscriber webhook events and one line of an NDJSON export; the change feed and
//! its tombstones; the answer to an upsert; and everything held about a person.

use serde::Serialize;
use serde_json::Value;

use super::{empty_object, stored_json, time};
use crate::db::consent::ConsentEvent;
use crate::db::deliveries::DeliveryRecord;
use crate::db::jobs::MailRecord;
use crate::db::mail_events::MailEventRow;
use crate::db::subscribers::{Subscriber, Tombstone};

/// A subscriber as staff answers, webhook payloads and NDJSON exports show them.
#[derive(Serialize)]
pub struct SubscriberView<'a> {
    pub attributes: Value,
    pub confirmed_at: Option<String>,
    pub created_at: String,
    pub email: &'a str,
    pub id: &'a str,
    pub interests: &'a [String],
    pub language: &'a str,
    pub name: Option<&'a str>,
    pub source: Option<&'a str>,
    pub status: &'a str,
    pub unsubscribed_at: Option<String>,
    pub updated_at: String,
}

impl<'a> SubscriberView<'a> {
    /// The person in `s`, who holds `interests` (their slugs).
    pub fn new(s: &'a Subscriber, interests: &'a [String]) -> Self {
        Self {
            attributes: stored_json(&s.attributes, empty_object),
            confirmed_at: s.confirmed_at.map(time),
            created_at: time(s.created_at),
            email: &s.email,
            id: &s.id,
            interests,
            language: &s.language,
            name: s.name.as_deref(),
            source: s.source.as_deref(),
            status: s.status.as_str(),
            unsubscribed_at: s.unsubscribed_at.map(time),
            updated_at: time(s.updated_at),
        }
    }
}

/// One entry of the change feed: a person as they are now, or the tombstone of an erasure.
#[derive(Serialize)]
#[serde(untagged)]
pub enum ChangeView<'a> {
    Subscriber(SubscriberView<'a>),
    Erased(ErasedView<'a>),
}

/// An erased person in the change feed: the id and when, nothing else.
#[derive(Serialize)]
pub struct ErasedView<'a> {
    pub erased: bool,
    pub erased_at: String,
    pub id: &'a str,
}

impl<'a> From<&'a Tombstone> for ErasedView<'a> {
    fn from(t: &'a Tombstone) -> Self {
        Self {
            erased: true,
            erased_at: time(t.erased_at),
            id: &t.subscriber_id,
        }
    }
}

/// A page of the change feed (`GET /api/v1/subscribers`).
#[derive(Serialize)]
pub struct ChangePageView<'a> {
    pub data: Vec<ChangeView<'a>>,
    pub has_more: bool,
    pub next_cursor: String,
}

/// What an upsert answers: the record (or, for a key that may write but not read, only the id
/// and status) and whether a confirmation mail went out.
#[derive(Serialize)]
pub struct UpsertedView<'a> {
    #[serde(flatten)]
    pub subscriber: UpsertedSubscriber<'a>,
    pub confirmation_sent: bool,
}

/// The person an upsert wrote, as much of them as the caller may read.
#[derive(Serialize)]
#[serde(untagged)]
pub enum UpsertedSubscriber<'a> {
    Record(Box<SubscriberView<'a>>),
    Written { id: &'a str, status: &'a str },
}

/// Everything held about a person, for an access request (GDPR Art. 15).
#[derive(Serialize)]
pub struct PersonalDataView<'a> {
    pub consent: Vec<ConsentView<'a>>,
    pub mail_reports: Vec<MailReportView<'a>>,
    pub mails: Vec<MailView<'a>>,
    pub newsletters: Vec<NewsletterDeliveryView<'a>>,
    pub subscriber: SubscriberView<'a>,
}

/// One consent event: what the person agreed to or withdrew, in which words, from where.
#[derive(Serialize)]
pub struct ConsentView<'a> {
    pub action: &'a str,
    pub at: String,
    pub interests: Value,
    pub ip: Option<&'a str>,
    pub language: &'a str,
    pub source: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub wording: &'a str,
    pub wording_version: &'a str,
}

impl<'a> From<&'a ConsentEvent> for ConsentView<'a> {
    fn from(c: &'a ConsentEvent) -> Self {
        Self {
            action: c.action.as_str(),
            at: time(c.created_at),
            interests: stored_json(&c.interests, || Value::Array(Vec::new())),
            ip: c.ip.as_deref(),
            language: &c.language,
            source: c.source.as_deref(),
            user_agent: c.user_agent.as_deref(),
            wording: &c.wording,
            wording_version: &c.wording_version,
        }
    }
}

/// A mail queued for the person (confirmation, welcome …).
#[derive(Serialize)]
pub struct MailView<'a> {
    pub finished_at: Option<String>,
    pub kind: &'a str,
    pub queued_at: String,
    pub state: &'a str,
}

impl<'a> From<&'a MailRecord> for MailView<'a> {
    fn from((kind, state, created, finished): &'a MailRecord) -> Self {
        Self {
            finished_at: finished.map(time),
            kind: kind.trim_start_matches("mail."),
            queued_at: time(*created),
            state,
        }
    }
}

/// A newsletter addressed to the person and what became of it.
#[derive(Serialize)]
pub struct NewsletterDeliveryView<'a> {
    pub newsletter_id: &'a str,
    pub outcome: Option<&'a str>,
    pub sent_at: Option<String>,
    pub state: &'a str,
}

impl<'a> From<&'a DeliveryRecord> for NewsletterDeliveryView<'a> {
    fn from((newsletter_id, state, outcome, sent_at): &'a DeliveryRecord) -> Self {
        Self {
            newsletter_id,
            outcome: outcome.as_deref(),
            sent_at: sent_at.map(time),
            state,
        }
    }
}

/// A bounce or complaint a mail provider reported about the person's address.
#[derive(Serialize)]
pub struct MailReportView<'a> {
    pub detail: Option<&'a str>,
    pub kind: &'a str,
    pub occurred_at: String,
    pub outcome: &'a str,
    pub provider: &'a str,
}

impl<'a> From<&'a MailEventRow> for MailReportView<'a> {
    fn from(r: &'a MailEventRow) -> Self {
        Self {
            detail: r.detail.as_deref(),
            kind: &r.kind,
            occurred_at: time(r.occurred_at),
            outcome: &r.outcome,
            provider: &r.provider,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    /// Webhook receivers verify signatures over these bytes and export readers parse these
    /// lines: the keys stay in alphabetical order, with `null` for what is unknown.
    #[test]
    fn a_subscriber_is_written_with_the_keys_in_alphabetical_order() {
        let at = |s| {
            NaiveDate::from_ymd_opt(2026, 1, 2)
                .unwrap()
                .and_hms_micro_opt(3, 4, 5, s)
        };
        let s = Subscriber {
            id: "0194f3a2-7b1c-7d4e-8a5b-2c3d4e5f6a7b".parse().unwrap(),
            email: "ana@example.com".into(),
            name: None,
            language: "es".into(),
            status: crate::domain::SubscriberStatus::Confirmed,
            attributes: r#"{"plan":"pro"}"#.into(),
            source: Some("form".into()),
            created_at: at(1).unwrap(),
            updated_at: at(2).unwrap(),
            confirmed_at: at(3),
            unsubscribed_at: None,
        };
        let interests = ["news".to_owned()];
        let text = serde_json::to_string(&SubscriberView::new(&s, &interests)).unwrap();
        assert_eq!(
            text,
            r#"{"attributes":{"plan":"pro"},"confirmed_at":"2026-01-02T03:04:05.000003Z","#
                .to_owned()
                + r#""created_at":"2026-01-02T03:04:05.000001Z","email":"ana@example.com","#
                + r#""id":"0194f3a2-7b1c-7d4e-8a5b-2c3d4e5f6a7b","interests":["news"],"language":"es","name":null,"#
                + r#""source":"form","status":"confirmed","unsubscribed_at":null,"#
                + r#""updated_at":"2026-01-02T03:04:05.000002Z"}"#
        );
    }
}

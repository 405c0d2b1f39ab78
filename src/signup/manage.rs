//! Unsubscribing and changing preferences through the signed link every mail carries.

use chrono::NaiveDateTime;

use super::Evidence;
use crate::db::consent::{insert_consent_event, ConsentEvent};
use crate::db::ids::SubscriberId;
use crate::db::{self, subscribers, AnyConnection};
use crate::domain::{InterestSlug, Language, Name, SubscriberStatus};
use crate::email::Templates;

/// Unsubscribes from everything. Idempotent: a repeat (or an erased subscriber) changes nothing.
/// Returns whether this call changed the status. Call inside a write transaction.
pub fn unsubscribe(
    conn: &mut AnyConnection,
    templates: &Templates,
    subscriber_id: &str,
    evidence: &Evidence,
    now: NaiveDateTime,
) -> diesel::QueryResult<bool> {
    let Some(subscriber) = SubscriberId::parse(subscriber_id)
        .map(|id| subscribers::find_subscriber(conn, &id))
        .transpose()?
        .flatten()
    else {
        return Ok(false);
    };
    if !matches!(
        subscriber.status,
        SubscriberStatus::Pending | SubscriberStatus::Confirmed
    ) {
        return Ok(false);
    }
    let from = [SubscriberStatus::Pending, SubscriberStatus::Confirmed];
    if !subscribers::set_status(
        conn,
        &subscriber.id,
        &from,
        SubscriberStatus::Unsubscribed,
        now,
    )? {
        return Ok(false);
    }
    // Nothing queued for them goes out any more (a confirmation waiting for a retry, say),
    // and links from earlier confirmation mails no longer subscribe them: saying yes again
    // takes a new signup.
    db::jobs::drop_queued_for_subscriber(conn, subscriber_id, "unsubscribed", now)?;
    db::confirmations::use_confirmation_tokens(conn, subscriber_id, now)?;
    let language = Language::parse(&subscriber.language).unwrap_or_default();
    insert_consent_event(
        conn,
        &ConsentEvent::unsubscribed(templates, subscriber_id, language, evidence, now),
    )?;
    crate::webhooks::emit_subscriber(
        conn,
        crate::webhooks::EventType::SubscriberUnsubscribed,
        subscriber_id,
        now,
    )?;
    Ok(true)
}

/// A preferences change, parsed.
pub struct PreferencesChange {
    pub name: Option<Name>,
    pub language: Language,
    pub interests: Vec<InterestSlug>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PreferencesOutcome {
    Saved,
    UnknownInterest(String),
    NotFound,
}

/// Saves name, language and interests; interest changes are recorded in the consent ledger.
/// Only public interests, or ones the person already has, may be chosen. Call inside a write
/// transaction.
pub fn update_preferences(
    conn: &mut AnyConnection,
    templates: &Templates,
    subscriber_id: &str,
    change: &PreferencesChange,
    evidence: &Evidence,
    now: NaiveDateTime,
) -> diesel::QueryResult<PreferencesOutcome> {
    let Some(subscriber) = SubscriberId::parse(subscriber_id)
        .map(|id| subscribers::find_subscriber(conn, &id))
        .transpose()?
        .flatten()
    else {
        return Ok(PreferencesOutcome::NotFound);
    };
    let current: Vec<String> = subscribers::list_subscriber_interests(conn, subscriber_id)?
        .into_iter()
        .map(|i| i.slug)
        .collect();
    let public: Vec<String> = db::interests::list_public_interests(conn)?
        .into_iter()
        .map(|i| i.slug)
        .collect();
    for slug in &change.interests {
        if !public.iter().chain(&current).any(|s| s == slug.as_str()) {
            return Ok(PreferencesOutcome::UnknownInterest(
                slug.as_str().to_owned(),
            ));
        }
    }
    subscribers::update_profile(
        conn,
        subscriber_id,
        &subscribers::ProfileChanges {
            name: Some(change.name.as_ref().map(Name::as_str)),
            language: Some(change.language.as_str()),
            attributes: None,
            source: None,
            updated_at: now,
        },
    )?;
    let mut chosen: Vec<&str> = change.interests.iter().map(InterestSlug::as_str).collect();
    chosen.sort_unstable();
    chosen.dedup();
    let mut before: Vec<&str> = current.iter().map(String::as_str).collect();
    before.sort_unstable();
    if chosen != before {
        subscribers::replace_interests(conn, subscriber_id, &chosen, now)?;
        let consent = ConsentEvent::preferences_changed(
            templates,
            &subscriber.id,
            change.language,
            &chosen,
            evidence,
            now,
        );
        insert_consent_event(conn, &consent)?;
    }
    crate::webhooks::emit_subscriber(
        conn,
        crate::webhooks::EventType::SubscriberUpdated,
        subscriber_id,
        now,
    )?;
    Ok(PreferencesOutcome::Saved)
}

/// A hard bounce: the address does not exist. The subscriber is marked bounced, the address is
/// suppressed (so no later signup or import mails it again), and nothing queued for them goes out.
/// Returns whether the subscriber's status changed. Call inside a write transaction.
pub fn record_hard_bounce(
    conn: &mut AnyConnection,
    subscriber_id: &SubscriberId,
    email_hash: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<bool> {
    let from = [
        SubscriberStatus::Pending,
        SubscriberStatus::Confirmed,
        SubscriberStatus::Unsubscribed,
    ];
    let bounced =
        subscribers::set_status(conn, subscriber_id, &from, SubscriberStatus::Bounced, now)?;
    db::jobs::drop_queued_for_subscriber(conn, subscriber_id, "address bounced", now)?;
    if bounced {
        crate::webhooks::emit_subscriber(
            conn,
            crate::webhooks::EventType::SubscriberBounced,
            subscriber_id,
            now,
        )?;
    }
    if db::suppressions::find_suppression(conn, email_hash)?.is_none() {
        db::suppressions::insert_suppression(
            conn,
            email_hash,
            crate::domain::SuppressionReason::HardBounce,
            now,
        )?;
    }
    Ok(bounced)
}

/// A spam complaint: the person told their mailbox provider they do not want this mail. They
/// are unsubscribed from everything (status `complained`, recorded in the consent ledger with
/// who reported it), the address is suppressed, and nothing queued for them goes out.
/// Returns whether the subscriber's status changed. Call inside a write transaction.
pub fn record_complaint(
    conn: &mut AnyConnection,
    subscriber: &subscribers::Subscriber,
    email_hash: &str,
    reported_by: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<bool> {
    let from = [
        SubscriberStatus::Pending,
        SubscriberStatus::Confirmed,
        SubscriberStatus::Unsubscribed,
        SubscriberStatus::Bounced,
    ];
    let changed = subscribers::set_status(
        conn,
        &subscriber.id,
        &from,
        SubscriberStatus::Complained,
        now,
    )?;
    db::jobs::drop_queued_for_subscriber(conn, &subscriber.id, "spam complaint", now)?;
    db::confirmations::use_confirmation_tokens(conn, &subscriber.id, now)?;
    if changed {
        let consent =
            ConsentEvent::complained(&subscriber.id, &subscriber.language, reported_by, now);
        insert_consent_event(conn, &consent)?;
        crate::webhooks::emit_subscriber(
            conn,
            crate::webhooks::EventType::SubscriberComplained,
            &subscriber.id,
            now,
        )?;
    }
    match db::suppressions::find_suppression(conn, email_hash)? {
        Some(crate::domain::SuppressionReason::Complaint) => {}
        Some(other) => {
            // A complaint outranks the earlier reason: it is the person's own "no".
            db::suppressions::delete_suppression(conn, email_hash, other)?;
            db::suppressions::insert_suppression(
                conn,
                email_hash,
                crate::domain::SuppressionReason::Complaint,
                now,
            )?;
        }
        None => db::suppressions::insert_suppression(
            conn,
            email_hash,
            crate::domain::SuppressionReason::Complaint,
            now,
        )?,
    }
    Ok(changed)
}

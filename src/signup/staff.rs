//! Staff adding or updating a person by address: either a confirmation mail goes out (the person
//! confirms, as on the website), or staff record consent given elsewhere, with its evidence.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::{queue_confirmation, throttled, PublicCatalog, Signup, SignupPolicy};
use crate::db::batch::{Inserts, SubscriberRow};
use crate::db::consent::{insert_consent_event, ConsentEvent};
use crate::db::{self, subscribers, suppressions, AnyConnection};
use crate::domain::{InterestSlug, Name, SubscriberStatus, SuppressionReason};
use crate::email::Templates;
use crate::error::FieldErrors;
use crate::tokens;

pub enum ConsentMode {
    /// Send a confirmation mail; the person becomes confirmed when they confirm.
    Confirmation,
    /// Consent was given elsewhere; `source` and `note` are the evidence kept in the ledger.
    Recorded { source: String, note: String },
}

pub struct StaffUpsert {
    pub signup: Signup,
    pub consent: ConsentMode,
    /// Which optional fields the request named (absent ones keep their current values).
    pub interests_given: bool,
    pub name_given: bool,
    pub language_given: bool,
    pub staff_label: String,
}

pub struct UpsertOutcome {
    pub subscriber_id: String,
    pub created: bool,
    pub confirmation_sent: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UpsertError {
    #[error("invalid fields")]
    Validation(FieldErrors),
    #[error("{0}")]
    Conflict(&'static str),
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Creates or updates by address, inside the caller's write transaction.
pub fn upsert_by_staff(
    conn: &mut AnyConnection,
    templates: &Templates,
    policy: &SignupPolicy,
    input: &StaffUpsert,
    now: NaiveDateTime,
) -> Result<UpsertOutcome, UpsertError> {
    let signup = &input.signup;
    let catalog = PublicCatalog::load_for_staff(conn)?;
    let attributes = catalog.check(signup).map_err(UpsertError::Validation)?;
    let email = signup.email.as_str();
    match suppressions::find_suppression(conn, &tokens::email_hash(email))?.and_then(|r| SuppressionReason::parse(&r)) {
        Some(SuppressionReason::Erased) if matches!(input.consent, ConsentMode::Recorded { .. }) => {
            return Err(UpsertError::Conflict(
                "this address was erased on request: only the person's own confirmation can add it again (use consent mode \"confirmation\")",
            ))
        }
        Some(SuppressionReason::Erased) | None => {}
        Some(_) => return Err(UpsertError::Conflict("this address is suppressed (bounce, complaint or manual)")),
    }
    let slugs: Vec<&str> = signup.interests.iter().map(InterestSlug::as_str).collect();
    let existing = subscribers::find_subscriber_by_email(conn, email)?;
    let (id, created, status) = match existing {
        None => {
            let id = db::new_id();
            let mut row = Inserts::default();
            row.subscribers.push(SubscriberRow {
                id: id.clone(),
                email: email.to_owned(),
                name: signup.name.as_ref().map(|n| n.as_str().to_owned()),
                language: signup.language.as_str(),
                status: SubscriberStatus::Pending.as_str(),
                attributes: Value::Object(attributes).to_string(),
                source: signup.source.clone(),
                created_at: now,
                updated_at: now,
            });
            row.write(conn)?;
            subscribers::add_interests(conn, &id, &slugs, now)?;
            crate::webhooks::emit_subscriber(
                conn,
                crate::webhooks::EventType::SubscriberCreated,
                &id,
                now,
            )?;
            (id, true, SubscriberStatus::Pending)
        }
        Some(row) => {
            let status = SubscriberStatus::parse(&row.status).unwrap_or(SubscriberStatus::Pending);
            if matches!(
                status,
                SubscriberStatus::Bounced | SubscriberStatus::Complained
            ) {
                return Err(UpsertError::Conflict(
                    "this address bounced or complained; it is not mailed",
                ));
            }
            let mut merged: Map<String, Value> =
                serde_json::from_str(&row.attributes).unwrap_or_default();
            merged.extend(attributes);
            let merged = Value::Object(merged).to_string();
            subscribers::update_profile(
                conn,
                &row.id,
                &subscribers::ProfileChanges {
                    name: input
                        .name_given
                        .then(|| signup.name.as_ref().map(Name::as_str)),
                    language: input.language_given.then(|| signup.language.as_str()),
                    attributes: Some(&merged),
                    source: None,
                    updated_at: now,
                },
            )?;
            if input.interests_given {
                subscribers::replace_interests(conn, &row.id, &slugs, now)?;
            }
            crate::webhooks::emit_subscriber(
                conn,
                crate::webhooks::EventType::SubscriberUpdated,
                &row.id,
                now,
            )?;
            (row.id, false, status)
        }
    };
    // The ledger records the interests the person ends up with, not only those just named.
    let held: Vec<String> = subscribers::list_subscriber_interests(conn, &id)?
        .into_iter()
        .map(|i| i.slug)
        .collect();
    let event =
        |action: &str, wording: String, version: String, source: Option<String>| ConsentEvent {
            id: db::new_id(),
            subscriber_id: id.clone(),
            action: action.into(),
            interests: serde_json::to_string(&held).unwrap_or_else(|_| "[]".into()),
            wording,
            wording_version: version,
            language: signup.language.as_str().into(),
            source,
            ip: signup.evidence.ip.clone(),
            user_agent: Some(input.staff_label.clone()),
            created_at: now,
        };
    let mut confirmation_sent = false;
    match (&input.consent, status) {
        // Already confirmed: nothing changes, but evidence given is still kept.
        (ConsentMode::Recorded { source, note }, SubscriberStatus::Confirmed) => {
            insert_consent_event(
                conn,
                &event("staff_recorded", note.clone(), "staff-recorded".into(), Some(source.clone())),
            )?;
        }
        (ConsentMode::Confirmation, SubscriberStatus::Confirmed) => {}
        (ConsentMode::Confirmation, _) => {
            if created || !throttled(conn, &id, now)? {
                insert_consent_event(
                    conn,
                    &event(
                        "signup",
                        templates.text(signup.language, "consent.signup"),
                        templates.text(signup.language, "consent_wording_version"),
                        signup.source.clone().or_else(|| Some("staff".into())),
                    ),
                )?;
                queue_confirmation(conn, &id, policy, None, now)?;
                confirmation_sent = true;
            }
        }
        (ConsentMode::Recorded { .. }, SubscriberStatus::Unsubscribed) => {
            return Err(UpsertError::Conflict(
                "this person unsubscribed: only their own confirmation subscribes them again (use consent mode \"confirmation\")",
            ))
        }
        (ConsentMode::Recorded { source, note }, _) => {
            let from = [SubscriberStatus::Pending.as_str()];
            if subscribers::set_status(conn, &id, &from, SubscriberStatus::Confirmed.as_str(), now)? {
                crate::webhooks::emit_subscriber(conn, crate::webhooks::EventType::SubscriberConfirmed, &id, now)?;
            }
            insert_consent_event(conn, &event("staff_recorded", note.clone(), "staff-recorded".into(), Some(source.clone())))?;
        }
    }
    Ok(UpsertOutcome {
        subscriber_id: id,
        created,
        confirmation_sent,
    })
}

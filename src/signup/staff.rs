//! Staff adding or updating a person by address: either a confirmation mail goes out (the person
//! confirms, as on the website), or staff record consent given elsewhere, with its evidence.

use chrono::NaiveDateTime;

use super::{
    merge_attributes, request_confirmation, throttled, Evidence, Merge, NewPerson, PublicCatalog,
    Signup, SignupPolicy,
};
use crate::db::batch::Inserts;
use crate::db::consent::{insert_consent_event, ConsentEvent};
use crate::db::ids::SubscriberId;
use crate::db::{subscribers, suppressions, AnyConnection};
use crate::domain::{FieldErrors, InterestSlug, Name, SubscriberStatus, SuppressionReason};
use crate::email::Templates;
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
}

pub struct UpsertOutcome {
    pub subscriber_id: SubscriberId,
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

/// Creates or updates by address, inside the caller's write transaction. `recorded_by` names
/// the staff member or key in the consent ledger (`staff:<id>`, `api_key:<id>`).
pub fn upsert_by_staff(
    conn: &mut AnyConnection,
    templates: &Templates,
    policy: &SignupPolicy,
    input: &StaffUpsert,
    recorded_by: &str,
    now: NaiveDateTime,
) -> Result<UpsertOutcome, UpsertError> {
    let signup = &input.signup;
    let catalog = PublicCatalog::load_for_staff(conn)?;
    let attributes = catalog.check(signup).map_err(UpsertError::Validation)?;
    let email = signup.email.as_str();
    match suppressions::find_suppression(conn, &tokens::email_hash(email))? {
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
            let id = SubscriberId::new();
            let mut row = Inserts::default();
            row.subscribers.push(
                NewPerson {
                    email: &signup.email,
                    name: signup.name.as_ref(),
                    language: signup.language,
                    status: SubscriberStatus::Pending,
                    attributes,
                    source: signup.source.clone(),
                }
                .row(id.to_string(), now),
            );
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
            let status = row.status;
            if matches!(
                status,
                SubscriberStatus::Bounced | SubscriberStatus::Complained
            ) {
                return Err(UpsertError::Conflict(
                    "this address bounced or complained; it is not mailed",
                ));
            }
            let (merged, _) = merge_attributes(&row.attributes, &attributes, Merge::Overwrite);
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
    let evidence = Evidence {
        ip: signup.evidence.ip.clone(),
        user_agent: Some(recorded_by.to_owned()),
    };
    let recorded = |note: &str, source: &str| {
        ConsentEvent::staff_recorded(
            &id,
            signup.language,
            &held,
            note.to_owned(),
            Some(source.to_owned()),
            &evidence,
            now,
        )
    };
    let mut confirmation_sent = false;
    match (&input.consent, status) {
        // Already confirmed: nothing changes, but evidence given is still kept.
        (ConsentMode::Recorded { source, note }, SubscriberStatus::Confirmed) => {
            insert_consent_event(conn, &recorded(note, source))?;
        }
        (ConsentMode::Confirmation, SubscriberStatus::Confirmed) => {}
        (ConsentMode::Confirmation, _) => {
            if created || !throttled(conn, &id, now)? {
                let source = signup.source.clone().or_else(|| Some("staff".into()));
                let consent = ConsentEvent::signup(
                    templates,
                    &id,
                    signup.language,
                    &held,
                    source,
                    &evidence,
                    now,
                );
                let mut inserts = Inserts::default();
                request_confirmation(&mut inserts, policy, consent, None, now);
                inserts.write(conn)?;
                confirmation_sent = true;
            }
        }
        (ConsentMode::Recorded { .. }, SubscriberStatus::Unsubscribed) => {
            return Err(UpsertError::Conflict(
                "this person unsubscribed: only their own confirmation subscribes them again (use consent mode \"confirmation\")",
            ))
        }
        (ConsentMode::Recorded { source, note }, _) => {
            let from = [SubscriberStatus::Pending];
            if subscribers::set_status(conn, &id, &from, SubscriberStatus::Confirmed, now)? {
                crate::webhooks::emit_subscriber(conn, crate::webhooks::EventType::SubscriberConfirmed, &id, now)?;
            }
            insert_consent_event(conn, &recorded(note, source))?;
        }
    }
    Ok(UpsertOutcome {
        subscriber_id: id,
        created,
        confirmation_sent,
    })
}

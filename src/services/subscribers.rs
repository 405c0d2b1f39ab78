//! Subscribers as staff see and change them: add or update a person by address (with a
//! confirmation mail, or consent recorded elsewhere), change their profile, read one record or
//! the change feed, answer an access request, and erase a person on request.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDateTime;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::auth::{Actor, Principal};
use crate::db::consent::{list_consent_events, ConsentEvent};
use crate::db::deliveries::DeliveryRecord;
use crate::db::jobs::MailRecord;
use crate::db::mail_events::MailEventRow;
use crate::db::subscribers::{self as store, Subscriber, SubscriberQuery, Tombstone};
use crate::db::{self, AnyConnection, Db, DbError};
use crate::domain::{FieldErrors, InterestSlug, Language, Name, SuppressionReason};
use crate::email::{Mailer, Templates};
use crate::signup::staff::{upsert_by_staff, StaffUpsert, UpsertError};
use crate::signup::{merge_attributes, Merge, PublicCatalog, SignupPolicy};
use crate::tokens;

/// A subscriber with the interests they hold.
pub struct SubscriberRecord {
    pub subscriber: Subscriber,
    pub interests: Vec<String>,
}

fn load_record(conn: &mut AnyConnection, id: &str) -> Result<Option<SubscriberRecord>, DbError> {
    let Some(subscriber) = store::find_subscriber(conn, id)? else {
        return Ok(None);
    };
    let interests = store::list_subscriber_interests(conn, id)?
        .into_iter()
        .map(|i| i.slug)
        .collect();
    Ok(Some(SubscriberRecord {
        subscriber,
        interests,
    }))
}

/// How the consent ledger names staff acting: `staff:<id>` or `api_key:<id>`.
fn ledger_name(actor: &Principal) -> String {
    match actor {
        Principal::Staff { id, .. } => format!("staff:{id}"),
        Principal::ApiKey { id, .. } => format!("api_key:{id}"),
    }
}

/// A line in the audit log for a change staff make; inside the transaction making it.
fn audit(
    conn: &mut AnyConnection,
    actor: &Principal,
    client_ip: Option<&str>,
    action: &str,
    subscriber_id: &str,
) -> diesel::QueryResult<()> {
    let (actor_type, actor_id) = match actor {
        Principal::Staff { id, .. } => ("staff", id.as_str()),
        Principal::ApiKey { id, .. } => ("api_key", id.as_str()),
    };
    Actor {
        actor_type,
        actor_id: Some(actor_id),
        ip: client_ip,
    }
    .record(conn, action, "subscriber", Some(subscriber_id))
}

#[derive(Debug, thiserror::Error)]
pub enum GetSubscriberError {
    #[error("no such subscriber")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// One subscriber, with their interests.
pub async fn get(db: &Db, id: &str) -> Result<SubscriberRecord, GetSubscriberError> {
    let id = id.to_owned();
    db.run(move |conn| load_record(conn, &id))
        .await?
        .ok_or(GetSubscriberError::NotFound)
}

/// Which changes the feed gives, after parsing.
pub struct ChangeFilter {
    pub status: Option<String>,
    pub language: Option<String>,
    pub interest: Option<String>,
    /// Lowercase.
    pub email_contains: Option<String>,
    pub updated_since: Option<NaiveDateTime>,
    /// The change number the client has seen up to (0: from the start).
    pub after: i64,
    pub limit: i64,
}

/// One entry of the change feed: a subscriber as they are now, or the tombstone of one erased.
pub enum Change {
    Subscriber(SubscriberRecord),
    Erased(Tombstone),
}

pub struct ChangePage {
    pub changes: Vec<Change>,
    /// Where the next poll continues.
    pub next: i64,
    pub has_more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ListChangesError {
    /// The client has seen changes this database never made: it was restored from a backup,
    /// or the cursor is from another list.
    #[error("the cursor is ahead of every change")]
    CursorAhead,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Every change in commit order (erasures as tombstones), filtered, from one snapshot.
pub async fn list_changes(db: &Db, filter: ChangeFilter) -> Result<ChangePage, ListChangesError> {
    let (after, limit) = (filter.after, filter.limit);
    let query = SubscriberQuery {
        status: filter.status,
        language: filter.language,
        interest: filter.interest,
        email_contains: filter.email_contains,
        updated_since: filter.updated_since,
        after,
        // One more than asked, to tell whether more is waiting.
        limit: limit + 1,
    };
    let (mut changes, more, latest, mut interests) = db
        .run(move |conn| {
            db::read_snapshot(conn, |conn| -> Result<_, DbError> {
                let people = store::list_changed_subscribers(conn, &query)?;
                let erased =
                    store::list_tombstones_after(conn, after, query.updated_since, query.limit)?;
                let available = people.len() + erased.len();
                // Merge the two ordered lists by change number.
                let mut changes: Vec<(i64, Change)> = people
                    .into_iter()
                    .map(|(s, seq)| {
                        let record = SubscriberRecord {
                            subscriber: s,
                            interests: Vec::new(),
                        };
                        (seq, Change::Subscriber(record))
                    })
                    .chain(
                        erased
                            .into_iter()
                            .map(|t| (t.change_seq, Change::Erased(t))),
                    )
                    .collect();
                changes.sort_unstable_by_key(|(seq, _)| *seq);
                changes.truncate(limit as usize);
                let more = available > changes.len();
                let latest = store::latest_change(conn)?;
                let ids: Vec<&str> = changes
                    .iter()
                    .filter_map(|(_, c)| match c {
                        Change::Subscriber(r) => Some(r.subscriber.id.as_str()),
                        Change::Erased(_) => None,
                    })
                    .collect();
                let mut interests: HashMap<String, Vec<String>> = HashMap::new();
                for (id, interest) in store::list_interests_of(conn, &ids)? {
                    interests.entry(id).or_default().push(interest.slug);
                }
                Ok((changes, more, latest, interests))
            })
        })
        .await?;
    if after > latest {
        return Err(ListChangesError::CursorAhead);
    }
    for (_, change) in &mut changes {
        if let Change::Subscriber(record) = change {
            record.interests = interests.remove(&record.subscriber.id).unwrap_or_default();
        }
    }
    // More waiting: continue after the last change given. Otherwise every change in this
    // snapshot has been seen (filtered or not), so the next poll starts after the newest one.
    let next = match changes.last() {
        Some((seq, _)) if more => *seq,
        last => latest.max(after).max(last.map_or(0, |(seq, _)| *seq)),
    };
    Ok(ChangePage {
        changes: changes.into_iter().map(|(_, c)| c).collect(),
        next,
        has_more: more,
    })
}

/// Everything held about one person, for an access request (GDPR Art. 15).
pub struct PersonalData {
    pub record: SubscriberRecord,
    pub consent: Vec<ConsentEvent>,
    pub mails: Vec<MailRecord>,
    pub newsletters: Vec<DeliveryRecord>,
    pub mail_reports: Vec<MailEventRow>,
}

/// Reads everything held about the person; the reading itself goes in the audit log.
pub async fn personal_data(
    db: &Db,
    actor: &Principal,
    client_ip: Option<String>,
    id: &str,
) -> Result<PersonalData, GetSubscriberError> {
    let (actor, id) = (actor.clone(), id.to_owned());
    db.transaction(move |conn| -> Result<_, GetSubscriberError> {
        let record = load_record(conn, &id)?.ok_or(GetSubscriberError::NotFound)?;
        let consent = list_consent_events(conn, &id)?;
        let mails = db::jobs::list_mail_for_subscriber(conn, &id)?;
        let newsletters = db::deliveries::list_for_subscriber(conn, &id)?;
        let hash = tokens::email_hash(&record.subscriber.email);
        let mail_reports = db::mail_events::list_mail_events_for_address(conn, &hash)?;
        // Reading someone's whole record is itself worth a line in the audit log.
        audit(
            conn,
            &actor,
            client_ip.as_deref(),
            "subscriber.data_access",
            &id,
        )?;
        Ok(PersonalData {
            record,
            consent,
            mails,
            newsletters,
            mail_reports,
        })
    })
    .await
}

impl From<diesel::result::Error> for GetSubscriberError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("no such subscriber")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for EraseError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Erasure: personal data goes at once (profile, interests, consent ledger, queued mail and
/// tokens, the text of bounce reports and delivery outcomes about them, their records in
/// imports still running); a hash of the address stays suppressed and a tombstone keeps only
/// the id and time. Once committed, the copies outside the live rows go too (`purge_erased`).
/// The address comes back only through the person's own new confirmation.
pub async fn erase(
    db: &Db,
    actor: &Principal,
    client_ip: Option<String>,
    mailer: &Arc<Mailer>,
    id: &str,
) -> Result<(), EraseError> {
    let (actor, target) = (actor.clone(), id.to_owned());
    let address = db
        .transaction(move |conn| -> Result<_, EraseError> {
            let id = target;
            let subscriber = store::find_subscriber(conn, &id)?.ok_or(EraseError::NotFound)?;
            // Delete first: of two erasures at once, the second finds nothing to delete.
            if !store::delete_subscriber(conn, &id)? {
                return Err(EraseError::NotFound);
            }
            let now = db::now();
            let hash = tokens::email_hash(&subscriber.email);
            db::mail_events::forget_details(conn, &hash)?;
            db::deliveries::forget_outcomes(conn, &id)?;
            crate::imports::forget_address(conn, &subscriber.email)?;
            if db::suppressions::find_suppression(conn, &hash)?.is_none() {
                db::suppressions::insert_suppression(
                    conn,
                    &hash,
                    SuppressionReason::Erased.as_str(),
                    now,
                )?;
            }
            store::insert_tombstone(conn, &id, now)?;
            crate::webhooks::emit_erased(conn, &id, now)?;
            audit(conn, &actor, client_ip.as_deref(), "subscriber.erase", &id)?;
            Ok(subscriber.email)
        })
        .await?;
    tracing::info!(subscriber_id = %id, "subscriber erased");
    purge_erased(db, mailer, id, address).await;
    Ok(())
}

/// After an erasure commits: the messages to the person still in the outbox folder are removed,
/// and the database drops its other copies of the deleted rows (`Db::purge_deleted`: on SQLite
/// the WAL, on PostgreSQL the planner's samples) before the erasure is answered. A checkpoint
/// held up by a long reader (an export, say) is tried again in the background until it passes.
/// Failures are logged; the erasure itself stands.
async fn purge_erased(db: &Db, mailer: &Arc<Mailer>, subscriber_id: &str, address: String) {
    let mailer = mailer.clone();
    match tokio::task::spawn_blocking(move || mailer.forget_recipient(&address)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(removed)) => {
            tracing::info!(
                subscriber_id,
                removed,
                "erased person's outbox messages removed"
            )
        }
        Ok(Err(e)) => tracing::error!(
            subscriber_id,
            error = %e,
            "could not remove the erased person's outbox messages"
        ),
        Err(e) => tracing::error!(subscriber_id, error = %e, "outbox clean-up task failed"),
    }
    let purging = db.clone();
    let purged = tokio::task::spawn_blocking(move || purging.purge_deleted()).await;
    match purged {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            tracing::warn!(
                subscriber_id,
                "readers held up the checkpoint after an erasure; retrying"
            );
            let db = db.clone();
            let subscriber_id = subscriber_id.to_owned();
            tokio::spawn(async move {
                for _ in 0..60 {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    let db = db.clone();
                    if let Ok(Ok(true)) =
                        tokio::task::spawn_blocking(move || db.purge_deleted()).await
                    {
                        tracing::info!(%subscriber_id, "checkpoint after an erasure done");
                        return;
                    }
                }
                tracing::error!(%subscriber_id, "no checkpoint after an erasure for five minutes; the WAL still holds erased rows until the next one");
            });
        }
        Ok(Err(e)) => tracing::error!(subscriber_id, error = %e, "purging after an erasure failed"),
        Err(e) => tracing::error!(subscriber_id, error = %e, "purging after an erasure failed"),
    }
}

/// What an upsert did.
pub struct Upserted {
    pub record: SubscriberRecord,
    pub created: bool,
    pub confirmation_sent: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UpsertSubscriberError {
    #[error("invalid fields")]
    Invalid(FieldErrors),
    /// The address or the person's state does not allow it (suppressed, unsubscribed…).
    #[error("{0}")]
    Conflict(&'static str),
    /// A signup for the same new address kept committing first.
    #[error("the address changed meanwhile")]
    ChangedMeanwhile,
    #[error("no such subscriber")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for UpsertSubscriberError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

impl From<UpsertError> for UpsertSubscriberError {
    fn from(e: UpsertError) -> Self {
        match e {
            UpsertError::Validation(errors) => Self::Invalid(errors),
            UpsertError::Conflict(why) => Self::Conflict(why),
            UpsertError::Db(e) => e.into(),
        }
    }
}

/// Creates or updates a person by address, on staff's word: a confirmation mail goes out, or
/// consent given elsewhere is recorded with its evidence (`signup::staff`). The mail worker is
/// woken once the change has committed.
pub async fn upsert(
    db: &Db,
    actor: &Principal,
    client_ip: Option<String>,
    templates: &Arc<Templates>,
    policy: &SignupPolicy,
    mail_ready: &Notify,
    input: StaffUpsert,
) -> Result<Upserted, UpsertSubscriberError> {
    let input = Arc::new(input);
    let mut attempt = 0;
    let (outcome, record) = loop {
        attempt += 1;
        let (templates, policy, input) = (templates.clone(), policy.clone(), input.clone());
        let (actor, client_ip) = (actor.clone(), client_ip.clone());
        let result = db
            .transaction(move |conn| -> Result<_, UpsertSubscriberError> {
                let recorded_by = ledger_name(&actor);
                let outcome =
                    upsert_by_staff(conn, &templates, &policy, &input, &recorded_by, db::now())?;
                let action = if outcome.created {
                    "subscriber.create"
                } else {
                    "subscriber.update"
                };
                audit(
                    conn,
                    &actor,
                    client_ip.as_deref(),
                    action,
                    &outcome.subscriber_id,
                )?;
                let record = load_record(conn, &outcome.subscriber_id)?;
                Ok((outcome, record))
            })
            .await;
        match result {
            // A signup for the same new address committed first: once more, as an update.
            Err(UpsertSubscriberError::Db(e)) if e.is_unique_violation() && attempt < 2 => continue,
            Err(UpsertSubscriberError::Db(e)) if e.is_unique_violation() => {
                return Err(UpsertSubscriberError::ChangedMeanwhile)
            }
            result => break result?,
        }
    };
    if outcome.confirmation_sent {
        mail_ready.notify_one();
    }
    Ok(Upserted {
        record: record.ok_or(UpsertSubscriberError::NotFound)?,
        created: outcome.created,
        confirmation_sent: outcome.confirmation_sent,
    })
}

/// A change to a subscriber's profile; what is `None` stays as it is.
pub struct SubscriberChange {
    /// `Some(None)` clears the name.
    pub name: Option<Option<Name>>,
    pub language: Option<Language>,
    /// The interests they hold from now on.
    pub interests: Option<Vec<InterestSlug>>,
    /// Field values to set; a null removes the field.
    pub attributes: Option<Map<String, Value>>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateSubscriberError {
    #[error("invalid fields")]
    Invalid(FieldErrors),
    #[error("no such subscriber")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for UpdateSubscriberError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Changes a subscriber's name, language, interests or field values. Status is not for staff to
/// change: people confirm and unsubscribe themselves.
pub async fn update(
    db: &Db,
    actor: &Principal,
    client_ip: Option<String>,
    id: &str,
    change: SubscriberChange,
) -> Result<SubscriberRecord, UpdateSubscriberError> {
    let (actor, id) = (actor.clone(), id.to_owned());
    db.transaction(move |conn| -> Result<_, UpdateSubscriberError> {
        let current = store::find_subscriber(conn, &id)?.ok_or(UpdateSubscriberError::NotFound)?;
        // Interests and non-null values are checked against every declaration, private or not.
        let catalog = PublicCatalog::load_for_staff(conn)?;
        let given = change.attributes.unwrap_or_default();
        let setting: Map<String, Value> = given
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let interests = change.interests.as_deref().unwrap_or_default();
        let mut checked = catalog
            .check_fields(interests, &setting)
            .map_err(UpdateSubscriberError::Invalid)?;
        let mut removals: Map<String, Value> =
            given.into_iter().filter(|(_, v)| v.is_null()).collect();
        removals.append(&mut checked);
        let (attributes, _) = merge_attributes(&current.attributes, &removals, Merge::Overwrite);
        let now = db::now();
        store::update_profile(
            conn,
            &id,
            &store::ProfileChanges {
                name: change.name.as_ref().map(|n| n.as_ref().map(Name::as_str)),
                language: change.language.map(Language::as_str),
                attributes: Some(&attributes),
                source: None,
                updated_at: now,
            },
        )?;
        if let Some(interests) = &change.interests {
            let slugs: Vec<&str> = interests.iter().map(InterestSlug::as_str).collect();
            store::replace_interests(conn, &id, &slugs, now)?;
        }
        crate::webhooks::emit_subscriber(
            conn,
            crate::webhooks::EventType::SubscriberUpdated,
            &id,
            now,
        )?;
        audit(conn, &actor, client_ip.as_deref(), "subscriber.update", &id)?;
        load_record(conn, &id)?.ok_or(UpdateSubscriberError::NotFound)
    })
    .await
}

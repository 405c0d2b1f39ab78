//! Subscribers as staff see and change them: add or update a person by address (with a
//! confirmation mail, or consent recorded elsewhere), change their profile, read one record or
//! the change feed, answer an access request, and erase a person on request.

mod feed;
mod privacy;
mod search;

pub use feed::{list_changes, Change, ChangeFilter, ChangePage, ListChangesError};
pub use privacy::{erase, personal_data, EraseError, PersonalData};
pub use search::{history, search, PeoplePage, PeopleSearch, PersonHistory, SearchError, MAX_PAGE};

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::auth::{Actor, Principal};
use crate::db::ids::SubscriberId;
use crate::db::subscribers::{self as store, Subscriber};
use crate::db::{self, AnyConnection, Db, DbError};
use crate::domain::{FieldErrors, InterestSlug, Language, Name};
use crate::email::Templates;
use crate::signup::staff::{upsert_by_staff, StaffUpsert, UpsertError};
use crate::signup::{merge_attributes, Merge, PublicCatalog, SignupPolicy};

/// A subscriber with the interests they hold.
pub struct SubscriberRecord {
    pub subscriber: Subscriber,
    pub interests: Vec<String>,
}

fn load_record(
    conn: &mut AnyConnection,
    id: &SubscriberId,
) -> Result<Option<SubscriberRecord>, DbError> {
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

impl From<diesel::result::Error> for GetSubscriberError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// One subscriber, with their interests.
pub async fn get(db: &Db, id: &SubscriberId) -> Result<SubscriberRecord, GetSubscriberError> {
    let id = id.clone();
    db.run(move |conn| load_record(conn, &id))
        .await?
        .ok_or(GetSubscriberError::NotFound)
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
    id: &SubscriberId,
    change: SubscriberChange,
) -> Result<SubscriberRecord, UpdateSubscriberError> {
    let (actor, id) = (actor.clone(), id.clone());
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

#[derive(Debug, thiserror::Error)]
pub enum StaffUnsubscribeError {
    /// Only someone pending or subscribed can be unsubscribed.
    #[error("not subscribed")]
    NotSubscribed,
    #[error("no such subscriber")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for StaffUnsubscribeError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Unsubscribes a person from everything on their word given to staff (by phone, in person):
/// the same change as the link in every mail, recorded in the consent ledger without the
/// person's address or browser (staff made it) and in the audit log with who did.
pub async fn unsubscribe(
    db: &Db,
    actor: &Principal,
    client_ip: Option<String>,
    templates: &Arc<Templates>,
    id: &SubscriberId,
) -> Result<(), StaffUnsubscribeError> {
    let (actor, id, templates) = (actor.clone(), id.clone(), templates.clone());
    db.transaction(move |conn| -> Result<_, StaffUnsubscribeError> {
        store::find_subscriber(conn, &id)?.ok_or(StaffUnsubscribeError::NotFound)?;
        let evidence = crate::signup::Evidence {
            ip: None,
            user_agent: None,
        };
        let changed =
            crate::signup::manage::unsubscribe(conn, &templates, &id, &evidence, db::now())?;
        if !changed {
            return Err(StaffUnsubscribeError::NotSubscribed);
        }
        audit(
            conn,
            &actor,
            client_ip.as_deref(),
            "subscriber.unsubscribe",
            &id,
        )?;
        Ok(())
    })
    .await
}

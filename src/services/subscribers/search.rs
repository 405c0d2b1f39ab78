//! Finding people on the list (by address, name, status, interest, language or a field's
//! value, a page at a time) and what staff see of one person: their record, consent history,
//! the mail sent to them and the audit trail.

use std::collections::HashMap;

use super::{load_record, GetSubscriberError, SubscriberRecord};
use crate::db::audit::{list_audit_entries_about, AuditEntry};
use crate::db::consent::{list_consent_events, ConsentEvent};
use crate::db::deliveries::DeliveryRecord;
use crate::db::ids::{NewsletterId, StaffId, SubscriberId};
use crate::db::jobs::MailRecord;
use crate::db::subscribers::{self as store, AddressMatch, PeopleFilter, PeopleQuery};
use crate::db::{self, Db, DbError};
use crate::domain::{FieldErrors, InterestSlug, Language, SubscriberStatus};

/// The most people one page may hold.
pub const MAX_PAGE: i64 = 500;

/// A search as typed: every part optional, blank parts ignored.
#[derive(Default, Clone, Debug)]
pub struct PeopleSearch {
    pub email: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub interest: Option<String>,
    pub language: Option<String>,
    pub field: Option<String>,
    pub value: Option<String>,
    /// The id of the last person on the previous page.
    pub after: Option<String>,
    pub limit: i64,
}

/// One page of people, newest first.
pub struct PeoplePage {
    pub people: Vec<SubscriberRecord>,
    /// Where the next page starts, when there is one.
    pub next: Option<String>,
}

fn given(raw: &Option<String>) -> Option<String> {
    raw.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn text_ok(s: &str) -> bool {
    s.chars().count() <= 254 && !s.chars().any(char::is_control)
}

/// The search, checked; each problem is reported under the part it is about.
fn people_query(search: &PeopleSearch) -> Result<PeopleQuery, FieldErrors> {
    let mut errors = FieldErrors::new();
    let email = given(&search.email).map(|e| e.to_lowercase());
    if email.as_deref().is_some_and(|e| !text_ok(e)) {
        errors.add("email", "must be 1 to 254 characters of text");
    }
    let name = given(&search.name).map(|n| n.to_lowercase());
    if name.as_deref().is_some_and(|n| !text_ok(n)) {
        errors.add("name", "must be 1 to 254 characters of text");
    }
    let status = given(&search.status);
    if status
        .as_deref()
        .is_some_and(|s| SubscriberStatus::parse(s).is_none())
    {
        errors.add(
            "status",
            "must be pending, confirmed, unsubscribed, bounced or complained",
        );
    }
    let language = given(&search.language);
    if language
        .as_deref()
        .is_some_and(|l| Language::parse(l).is_err())
    {
        errors.add("language", "must be en or es");
    }
    let interest = given(&search.interest);
    if interest
        .as_deref()
        .is_some_and(|i| InterestSlug::parse(i).is_err())
    {
        errors.add("interest", "is not a valid interest");
    }
    let field = given(&search.field);
    let value = given(&search.value);
    if field.as_deref().is_some_and(|f| !text_ok(f)) {
        errors.add("field", "must be 1 to 254 characters of text");
    }
    if value.as_deref().is_some_and(|v| !text_ok(v)) {
        errors.add("value", "must be 1 to 254 characters of text");
    }
    if field.is_some() != value.is_some() {
        let missing = if field.is_some() { "value" } else { "field" };
        errors.add(missing, "give a field and the value to look for");
    }
    let before = given(&search.after);
    if before
        .as_deref()
        .is_some_and(|a| SubscriberId::parse(a).is_none())
    {
        errors.add("after", "is not a page this list gave out");
    }
    if !(1..=MAX_PAGE).contains(&search.limit) {
        errors.add("limit", "must be between 1 and 500");
    }
    errors.into_result()?;
    // An address is looked for from its start (through the index on addresses), or, given as
    // `@domain`, by its end.
    let address = email.map(|e| match e.strip_prefix('@') {
        Some(_) => AddressMatch::EndsWith(e),
        None => AddressMatch::StartsWith(e),
    });
    Ok(PeopleQuery {
        filter: PeopleFilter {
            status: status.as_deref().and_then(SubscriberStatus::parse),
            language,
            interest,
            address,
            name_contains: name,
            attribute: field.zip(value),
            updated_since: None,
        },
        before,
        limit: search.limit,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("invalid search")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// People matching the search, a page at a time, newest first. Each page is a walk down the
/// primary key from where the last one ended, so any page is as quick as the first.
pub async fn search(db: &Db, search: &PeopleSearch) -> Result<PeoplePage, SearchError> {
    let mut query = people_query(search).map_err(SearchError::Invalid)?;
    let limit = query.limit;
    // One more than asked, to tell whether another page follows.
    query.limit += 1;
    let (mut people, interests) = db
        .run(move |conn| -> Result<_, DbError> {
            let people = store::search_people(conn, &query)?;
            let ids: Vec<&str> = people.iter().map(|s| s.id.as_str()).collect();
            let interests = store::list_interests_of(conn, &ids)?;
            Ok((people, interests))
        })
        .await?;
    let more = people.len() as i64 > limit;
    people.truncate(limit as usize);
    let mut held: HashMap<String, Vec<String>> = HashMap::new();
    for (id, interest) in interests {
        held.entry(id).or_default().push(interest.slug);
    }
    let next = more
        .then(|| people.last().map(|s| s.id.as_str().to_owned()))
        .flatten();
    let people = people
        .into_iter()
        .map(|subscriber| SubscriberRecord {
            interests: held.remove(subscriber.id.as_str()).unwrap_or_default(),
            subscriber,
        })
        .collect();
    Ok(PeoplePage { people, next })
}

/// What staff see of one person.
pub struct PersonHistory {
    pub record: SubscriberRecord,
    pub consent: Vec<ConsentEvent>,
    pub mails: Vec<MailRecord>,
    pub newsletters: Vec<DeliveryRecord>,
    /// The newest entries of the audit log about them, newest first.
    pub audit: Vec<AuditEntry>,
    /// The subject of each newsletter in `newsletters`, by id.
    pub subjects: HashMap<String, String>,
    /// The address of each staff member in `audit` still on the staff, by id.
    pub staff: HashMap<String, String>,
}

/// How many audit entries a person's page shows.
const AUDIT_SHOWN: i64 = 50;

/// One person's record and history, read from one snapshot.
pub async fn history(db: &Db, id: &SubscriberId) -> Result<PersonHistory, GetSubscriberError> {
    let id = id.clone();
    db.run(move |conn| {
        db::read_snapshot(conn, |conn| -> Result<_, GetSubscriberError> {
            let record = load_record(conn, &id)?.ok_or(GetSubscriberError::NotFound)?;
            let newsletters = db::deliveries::list_for_subscriber(conn, &id)?;
            let audit = list_audit_entries_about(conn, "subscriber", &id, AUDIT_SHOWN)?;
            let mut subjects = HashMap::new();
            for (newsletter, ..) in &newsletters {
                let Some(nid) = NewsletterId::parse(newsletter) else {
                    continue;
                };
                if let Some(n) = db::newsletters::find_newsletter(conn, &nid)? {
                    subjects.insert(newsletter.clone(), n.subject);
                }
            }
            let mut staff = HashMap::new();
            for entry in audit.iter().filter(|e| e.actor_type == "staff") {
                let Some(sid) = entry.actor_id.as_deref().and_then(StaffId::parse) else {
                    continue;
                };
                if let Some(member) = db::staff::find_staff(conn, &sid)? {
                    staff.insert(sid.as_str().to_owned(), member.email);
                }
            }
            Ok(PersonHistory {
                record,
                consent: list_consent_events(conn, &id)?,
                mails: db::jobs::list_mail_for_subscriber(conn, &id)?,
                newsletters,
                audit,
                subjects,
                staff,
            })
        })
    })
    .await
}

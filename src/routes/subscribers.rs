//! Subscribers for staff: the change feed (every change in commit order, erasures as tombstones,
//! with filters), one record, everything held about a person (access requests), adding or
//! changing a person, and erasure. The use cases are `services::subscribers`.

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::DateTime;
use serde::Deserialize;
use serde_json::Value;

use super::HandlerResult;
use crate::auth::{Authorized, ExportContacts, Principal, ReadContacts, WriteContacts};
use crate::db::ids::SubscriberId;
use crate::domain::{Email, FieldErrors, InterestSlug, Language, Name, SubscriberStatus};
use crate::error::ApiError;
use crate::services::subscribers::{
    self as service, Change, ChangeFilter, EraseError, GetSubscriberError, ListChangesError,
    PersonalData, SubscriberChange, SubscriberRecord, UpdateSubscriberError, UpsertSubscriberError,
    Upserted,
};
use crate::signup::staff::{ConsentMode, StaffUpsert};
use crate::signup::Signup;
use crate::state::AppState;

use crate::views::subscribers::{
    ChangePageView, ChangeView, PersonalDataView, SubscriberView, UpsertedSubscriber, UpsertedView,
};

/// Cursors are opaque to clients: a change number, base64url-encoded with a version tag.
pub(crate) fn encode_cursor(change_seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("c1:{change_seq}"))
}

fn decode_cursor(raw: &str) -> Option<i64> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let seq: i64 = text.strip_prefix("c1:")?.parse().ok()?;
    (seq >= 0).then_some(seq)
}

fn record_view(r: &SubscriberRecord) -> SubscriberView<'_> {
    SubscriberView::new(&r.subscriber, &r.interests)
}

impl From<GetSubscriberError> for ApiError {
    fn from(e: GetSubscriberError) -> Self {
        match e {
            GetSubscriberError::NotFound => Self::NotFound,
            GetSubscriberError::Db(e) => e.into(),
        }
    }
}

impl From<ListChangesError> for ApiError {
    fn from(e: ListChangesError) -> Self {
        match e {
            ListChangesError::CursorAhead => Self::field(
                "cursor",
                "is ahead of every change this database has made (was it restored from a backup?): \
                 start again with an export or without a cursor",
            ),
            ListChangesError::Db(e) => e.into(),
        }
    }
}

impl From<EraseError> for ApiError {
    fn from(e: EraseError) -> Self {
        match e {
            EraseError::NotFound => Self::NotFound,
            EraseError::Db(e) => e.into(),
        }
    }
}

impl From<UpsertSubscriberError> for ApiError {
    fn from(e: UpsertSubscriberError) -> Self {
        match e {
            UpsertSubscriberError::Invalid(errors) => Self::Validation(errors),
            UpsertSubscriberError::Conflict(why) => Self::Conflict(why.into()),
            UpsertSubscriberError::ChangedMeanwhile => {
                Self::Conflict("the address changed meanwhile; try again".into())
            }
            UpsertSubscriberError::NotFound => Self::NotFound,
            UpsertSubscriberError::Db(e) => e.into(),
        }
    }
}

impl From<UpdateSubscriberError> for ApiError {
    fn from(e: UpdateSubscriberError) -> Self {
        match e {
            UpdateSubscriberError::Invalid(errors) => Self::Validation(errors),
            UpdateSubscriberError::NotFound => Self::NotFound,
            UpdateSubscriberError::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    interest: Option<String>,
    language: Option<String>,
    email_contains: Option<String>,
    updated_since: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// The feed's query string, parsed.
fn change_filter(q: ListQuery) -> Result<ChangeFilter, FieldErrors> {
    let mut errors = FieldErrors::new();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        errors.add("limit", "must be between 1 and 1000");
    }
    if q.status
        .as_deref()
        .is_some_and(|s| SubscriberStatus::parse(s).is_none())
    {
        errors.add(
            "status",
            "must be pending, confirmed, unsubscribed, bounced or complained",
        );
    }
    if q.language
        .as_deref()
        .is_some_and(|l| Language::parse(l).is_err())
    {
        errors.add("language", "must be en or es");
    }
    if q.interest
        .as_deref()
        .is_some_and(|i| InterestSlug::parse(i).is_err())
    {
        errors.add("interest", "is not a valid interest");
    }
    if q.email_contains
        .as_deref()
        .is_some_and(|e| e.is_empty() || e.len() > 254 || e.chars().any(char::is_control))
    {
        errors.add("email_contains", "must be 1 to 254 characters of text");
    }
    let updated_since = match q.updated_since.as_deref() {
        None => None,
        Some(raw) => match DateTime::parse_from_rfc3339(raw) {
            Ok(t) => Some(t.naive_utc()),
            Err(_) => {
                errors.add(
                    "updated_since",
                    "must be an RFC 3339 time like 2026-01-01T00:00:00Z",
                );
                None
            }
        },
    };
    let after = match q.cursor.as_deref() {
        None => 0,
        Some(raw) => decode_cursor(raw).unwrap_or_else(|| {
            errors.add("cursor", "is not a cursor this API gave out");
            0
        }),
    };
    errors.into_result()?;
    Ok(ChangeFilter {
        status: q.status.as_deref().and_then(SubscriberStatus::parse),
        language: q.language,
        interest: q.interest,
        email_contains: q.email_contains.map(|e| e.to_lowercase()),
        updated_since,
        after,
        limit,
    })
}

pub async fn list_subscribers(
    _auth: Authorized<ReadContacts>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let q = query.map_err(ApiError::from_extractor)?.into_inner();
    let filter = change_filter(q).map_err(ApiError::Validation)?;
    let page = service::list_changes(&state.db, filter).await?;
    let data = page
        .changes
        .iter()
        .map(|change| match change {
            Change::Subscriber(r) => ChangeView::Subscriber(record_view(r)),
            Change::Erased(t) => ChangeView::Erased(t.into()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ChangePageView {
        data,
        has_more: page.has_more,
        next_cursor: encode_cursor(page.next),
    }))
}

pub async fn get_subscriber(
    _auth: Authorized<ReadContacts>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let record = service::get(&state.db, &SubscriberId::from(id.into_inner())).await?;
    Ok(HttpResponse::Ok().json(record_view(&record)))
}

/// Everything held about the person, for an access request (GDPR Art. 15).
pub async fn subscriber_data(
    auth: Authorized<ExportContacts>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = SubscriberId::from(id.into_inner());
    let data = service::personal_data(&state.db, &auth.principal, auth.ip.clone(), &id).await?;
    Ok(HttpResponse::Ok().json(data_view(&data)))
}

pub(crate) fn data_view(d: &PersonalData) -> PersonalDataView<'_> {
    PersonalDataView {
        consent: d.consent.iter().map(Into::into).collect(),
        mail_reports: d.mail_reports.iter().map(Into::into).collect(),
        mails: d.mails.iter().map(Into::into).collect(),
        newsletters: d.newsletters.iter().map(Into::into).collect(),
        subscriber: record_view(&d.record),
    }
}

/// Erasure on request (`services::subscribers::erase`): answered once the person's data is gone.
pub async fn erase_subscriber(
    auth: Authorized<WriteContacts>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = SubscriberId::from(id.into_inner());
    let mailer = &state.engine.mailer;
    service::erase(&state.db, &auth.principal, auth.ip.clone(), mailer, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConsentBody {
    // A struct variant, so that deny_unknown_fields applies to it as well.
    Confirmation {},
    Recorded { source: String, note: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertBody {
    email: String,
    /// Null keeps the current name, as leaving it out does.
    #[serde(default, deserialize_with = "super::json::nullable")]
    name: Option<Option<String>>,
    language: Option<String>,
    interests: Option<Vec<String>>,
    attributes: Option<serde_json::Map<String, Value>>,
    source: Option<String>,
    consent: ConsentBody,
}

/// The upsert body, parsed.
pub(crate) fn staff_upsert(
    body: UpsertBody,
    evidence: crate::signup::Evidence,
) -> Result<StaffUpsert, FieldErrors> {
    let mut errors = FieldErrors::new();
    let email = Email::parse(&body.email)
        .map_err(|e| errors.add("email", e))
        .ok();
    let name = Name::parse(body.name.clone().flatten().as_deref().unwrap_or_default())
        .map_err(|e| errors.add("name", e))
        .ok()
        .flatten();
    let language = match body.language.as_deref() {
        None => Language::En,
        Some(raw) => Language::parse(raw).unwrap_or_else(|e| {
            errors.add("language", e);
            Language::En
        }),
    };
    let interests = interest_slugs(body.interests.as_deref(), &mut errors);
    let text_ok = |s: &str| {
        !s.trim().is_empty() && s.chars().count() <= 500 && !s.chars().any(char::is_control)
    };
    let consent = match body.consent {
        ConsentBody::Confirmation {} => ConsentMode::Confirmation,
        ConsentBody::Recorded { source, note } => {
            if !text_ok(&source) {
                errors.add(
                    "consent.source",
                    "say where consent was given (1 to 500 characters)",
                );
            }
            if !text_ok(&note) {
                errors.add(
                    "consent.note",
                    "describe the consent given (1 to 500 characters)",
                );
            }
            ConsentMode::Recorded {
                source: source.trim().to_owned(),
                note: note.trim().to_owned(),
            }
        }
    };
    if body
        .source
        .as_deref()
        .is_some_and(|s| s.chars().count() > 200 || s.chars().any(char::is_control))
    {
        errors.add("source", "at most 200 characters");
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(errors);
    };
    Ok(StaffUpsert {
        signup: Signup {
            email,
            name,
            language,
            interests,
            source: body.source,
            attributes: body.attributes.unwrap_or_default(),
            evidence,
        },
        consent,
        interests_given: body.interests.is_some(),
        name_given: matches!(body.name, Some(Some(_))),
        language_given: body.language.is_some(),
    })
}

/// Interest slugs as given, each once; a malformed one is reported under `interests`.
fn interest_slugs(raw: Option<&[String]>, errors: &mut FieldErrors) -> Vec<InterestSlug> {
    let mut interests = Vec::new();
    for raw in raw.into_iter().flatten() {
        match InterestSlug::parse(raw) {
            Ok(slug) if !interests.contains(&slug) => interests.push(slug),
            Ok(_) => {}
            Err(e) => errors.add("interests", e),
        }
    }
    interests
}

/// Creates or updates a subscriber by address (201 created, 200 updated).
pub async fn upsert_subscriber(
    auth: Authorized<WriteContacts>,
    req: actix_web::HttpRequest,
    body: Result<super::json::Json<UpsertBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let input = staff_upsert(body, super::evidence(&state, &req)).map_err(ApiError::Validation)?;
    let (db, templates, policy) = (&state.db, &state.templates, &state.signup_policy());
    let (actor, ip, mail_ready) = (&auth.principal, auth.ip.clone(), &state.mail_ready);
    let done = service::upsert(db, actor, ip, templates, policy, mail_ready, input).await?;
    let mut answer = if done.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(answer.json(upserted_view(actor, &done)))
}

/// What an upsert answers. A key that may write but not read learns only what its write did.
fn upserted_view<'a>(actor: &Principal, done: &'a Upserted) -> UpsertedView<'a> {
    let subscriber = &done.record.subscriber;
    UpsertedView {
        subscriber: if actor.may_read_contacts() {
            UpsertedSubscriber::Record(Box::new(record_view(&done.record)))
        } else {
            UpsertedSubscriber::Written {
                id: &subscriber.id,
                status: subscriber.status.as_str(),
            }
        },
        confirmation_sent: done.confirmation_sent,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default, deserialize_with = "super::json::nullable")]
    name: Option<Option<String>>,
    language: Option<String>,
    interests: Option<Vec<String>>,
    attributes: Option<serde_json::Map<String, Value>>,
}

/// The patch body, parsed.
fn subscriber_change(body: PatchBody) -> Result<SubscriberChange, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = body.name.as_ref().map(|raw| {
        Name::parse(raw.as_deref().unwrap_or_default())
            .map_err(|e| errors.add("name", e))
            .ok()
            .flatten()
    });
    let language = body.language.as_deref().and_then(|raw| {
        Language::parse(raw)
            .map_err(|e| errors.add("language", e))
            .ok()
    });
    let interests = interest_slugs(body.interests.as_deref(), &mut errors);
    errors.into_result()?;
    Ok(SubscriberChange {
        name,
        language,
        interests: body.interests.is_some().then_some(interests),
        attributes: body.attributes,
    })
}

/// Changes a subscriber's name, language, interests or attributes (an attribute set to null is
/// removed). Status is not for staff to change: people confirm and unsubscribe themselves.
pub async fn update_subscriber(
    auth: Authorized<WriteContacts>,
    id: web::Path<uuid::Uuid>,
    body: Result<super::json::Json<PatchBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let change = subscriber_change(body).map_err(ApiError::Validation)?;
    let id = SubscriberId::from(id.into_inner());
    let record = service::update(&state.db, &auth.principal, auth.ip.clone(), &id, change).await?;
    Ok(HttpResponse::Ok().json(record_view(&record)))
}

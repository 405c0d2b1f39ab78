//! Subscribers for staff: the change feed (every change in commit order, erasures as tombstones,
//! with filters), one record, everything held about a person (access requests), and erasure.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{json, Value};

use super::HandlerResult;
use crate::auth::{Authorized, ExportContacts, ReadContacts, WriteContacts};
use crate::db::subscribers::{self as store, Subscriber, SubscriberQuery};
use crate::db::{self, DbError};
use crate::domain::{InterestSlug, Language, SubscriberStatus, SuppressionReason};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::tokens;

pub(crate) use crate::views::{subscriber as view, time};

/// The staff view of one subscriber, with their interests; `None` when there is no such person.
fn load_view(conn: &mut db::AnyConnection, id: &str) -> Result<Option<Value>, DbError> {
    let Some(subscriber) = store::find_subscriber(conn, id)? else {
        return Ok(None);
    };
    let interests: Vec<String> = store::list_subscriber_interests(conn, id)?
        .into_iter()
        .map(|i| i.slug)
        .collect();
    Ok(Some(view(&subscriber, &interests)))
}

/// Cursors are opaque to clients: a change number, base64url-encoded with a version tag.
pub(crate) fn encode_cursor(change_seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("c1:{change_seq}"))
}

fn decode_cursor(raw: &str) -> Option<i64> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
    let seq: i64 = text.strip_prefix("c1:")?.parse().ok()?;
    (seq >= 0).then_some(seq)
}

/// One entry of the change feed: a subscriber as they are now, or the tombstone of one erased.
enum Change {
    Subscriber(Subscriber),
    Erased(store::Tombstone),
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

pub async fn list_subscribers(
    _auth: Authorized<ReadContacts>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let q = query.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = crate::error::FieldErrors::new();
    let mut bad =
        |field: &str, message: &str| errors.entry(field.into()).or_default().push(message.into());
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        bad("limit", "must be between 1 and 1000");
    }
    if q.status
        .as_deref()
        .is_some_and(|s| SubscriberStatus::parse(s).is_none())
    {
        bad(
            "status",
            "must be pending, confirmed, unsubscribed, bounced or complained",
        );
    }
    if q.language
        .as_deref()
        .is_some_and(|l| Language::parse(l).is_err())
    {
        bad("language", "must be en or es");
    }
    if q.interest
        .as_deref()
        .is_some_and(|i| InterestSlug::parse(i).is_err())
    {
        bad("interest", "is not a valid interest");
    }
    if q.email_contains
        .as_deref()
        .is_some_and(|e| e.is_empty() || e.len() > 254 || e.chars().any(char::is_control))
    {
        bad("email_contains", "must be 1 to 254 characters of text");
    }
    let updated_since = match q.updated_since.as_deref() {
        None => None,
        Some(raw) => match DateTime::parse_from_rfc3339(raw) {
            Ok(t) => Some(t.naive_utc()),
            Err(_) => {
                bad(
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
            bad("cursor", "is not a cursor this API gave out");
            0
        }),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let filter = SubscriberQuery {
        status: q.status,
        language: q.language,
        interest: q.interest,
        email_contains: q.email_contains.map(|e| e.to_lowercase()),
        updated_since,
        after,
        // One more than asked, to tell whether more is waiting.
        limit: limit + 1,
    };
    let (changes, more, latest, interests) = state
        .db
        .run(move |conn| {
            db::read_snapshot(conn, |conn| -> Result<_, DbError> {
                let people = store::list_changed_subscribers(conn, &filter)?;
                let erased =
                    store::list_tombstones_after(conn, after, filter.updated_since, filter.limit)?;
                let available = people.len() + erased.len();
                // Merge the two ordered lists by change number.
                let mut changes: Vec<(i64, Change)> = people
                    .into_iter()
                    .map(|(s, seq)| (seq, Change::Subscriber(s)))
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
                        Change::Subscriber(s) => Some(s.id.as_str()),
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
        return Err(ApiError::field(
            "cursor",
            "is ahead of every change this database has made (was it restored from a backup?): \
             start again with an export or without a cursor",
        ));
    }
    // More waiting: continue after the last change given. Otherwise every change in this
    // snapshot has been seen (filtered or not), so the next poll starts after the newest one.
    let next = match changes.last() {
        Some((seq, _)) if more => *seq,
        last => latest.max(after).max(last.map_or(0, |(seq, _)| *seq)),
    };
    let data: Vec<Value> = changes
        .iter()
        .map(|(_, change)| match change {
            Change::Subscriber(s) => view(
                s,
                interests.get(&s.id).map(Vec::as_slice).unwrap_or_default(),
            ),
            Change::Erased(t) => json!({
                "id": t.subscriber_id,
                "erased": true,
                "erased_at": time(t.erased_at),
            }),
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "data": data,
        "next_cursor": encode_cursor(next),
        "has_more": more,
    })))
}

pub async fn get_subscriber(
    _auth: Authorized<ReadContacts>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = id.into_inner().to_string();
    let found = state.db.run(move |conn| load_view(conn, &id)).await?;
    found
        .map(|v| HttpResponse::Ok().json(v))
        .ok_or(ApiError::NotFound)
}

/// Everything held about the person, for an access request (GDPR Art. 15).
pub async fn subscriber_data(
    auth: Authorized<ExportContacts>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = id.into_inner().to_string();
    let found = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            let Some(subscriber) = load_view(conn, &id)? else { return Ok(None) };
            let consent = db::consent::list_consent_events(conn, &id)?;
            let mails = db::jobs::list_mail_for_subscriber(conn, &id)?;
            let newsletters = db::deliveries::list_for_subscriber(conn, &id)?;
            let address = subscriber["email"].as_str().unwrap_or_default();
            let reports = db::mail_events::list_mail_events_for_address(
                conn,
                &tokens::email_hash(address),
            )?;
            // Reading someone's whole record is itself worth a line in the audit log.
            auth.audit(conn, "subscriber.data_access", "subscriber", Some(&id))?;
            Ok(Some(json!({
                "subscriber": subscriber,
                "consent": consent.iter().map(|c| json!({
                    "action": c.action,
                    "interests": serde_json::from_str::<Value>(&c.interests).unwrap_or_else(|_| json!([])),
                    "wording": c.wording,
                    "wording_version": c.wording_version,
                    "language": c.language,
                    "source": c.source,
                    "ip": c.ip,
                    "user_agent": c.user_agent,
                    "at": time(c.created_at),
                })).collect::<Vec<_>>(),
                "mails": mails.iter().map(|(kind, state, created, finished)| json!({
                    "kind": kind.trim_start_matches("mail."),
                    "state": state,
                    "queued_at": time(*created),
                    "finished_at": finished.map(time),
                })).collect::<Vec<_>>(),
                "newsletters": newsletters.iter().map(|(newsletter_id, state, outcome, sent_at)| json!({
                    "newsletter_id": newsletter_id,
                    "state": state,
                    "outcome": outcome,
                    "sent_at": sent_at.map(time),
                })).collect::<Vec<_>>(),
                "mail_reports": reports.iter().map(|r| json!({
                    "kind": r.kind,
                    "outcome": r.outcome,
                    "provider": r.provider,
                    "detail": r.detail,
                    "occurred_at": time(r.occurred_at),
                })).collect::<Vec<_>>(),
            })))
        })
        .await?;
    found
        .map(|v| HttpResponse::Ok().json(v))
        .ok_or(ApiError::NotFound)
}

/// Erasure: personal data goes at once (profile, interests, consent ledger, queued mail and
/// tokens, the text of bounce reports and delivery outcomes about them, their records in
/// imports still running); a hash of the address
/// stays suppressed and a tombstone keeps only the id and time. Once committed, the copies
/// outside the live rows go too (`purge_erased`). The address comes back only through the
/// person's own new confirmation.
pub async fn erase_subscriber(
    auth: Authorized<WriteContacts>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = id.into_inner().to_string();
    let logged = id.clone();
    let erased = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            let Some(subscriber) = store::find_subscriber(conn, &id)? else {
                return Ok(None);
            };
            // Delete first: of two erasures at once, the second finds nothing to delete.
            if !store::delete_subscriber(conn, &id)? {
                return Ok(None);
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
            auth.audit(conn, "subscriber.erase", "subscriber", Some(&id))?;
            Ok(Some(subscriber.email))
        })
        .await?;
    let Some(address) = erased else {
        return Err(ApiError::NotFound);
    };
    tracing::info!(subscriber_id = %logged, "subscriber erased");
    purge_erased(&state, &logged, address).await;
    Ok(HttpResponse::NoContent().finish())
}

/// After an erasure commits: the messages to the person still in the outbox folder are removed,
/// and the database drops its other copies of the deleted rows (`Db::purge_deleted`: on SQLite
/// the WAL, on PostgreSQL the planner's samples) before the erasure is answered. A checkpoint
/// held up by a long reader (an export, say) is tried again in the background until it passes.
/// Failures are logged; the erasure itself stands.
async fn purge_erased(state: &AppState, subscriber_id: &str, address: String) {
    let mailer = state.engine.mailer.clone();
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
    let db = state.db.clone();
    let purged = tokio::task::spawn_blocking(move || db.purge_deleted()).await;
    match purged {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            tracing::warn!(
                subscriber_id,
                "readers held up the checkpoint after an erasure; retrying"
            );
            let db = state.db.clone();
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

/// Creates or updates a subscriber by address (201 created, 200 updated).
pub async fn upsert_subscriber(
    auth: Authorized<WriteContacts>,
    req: actix_web::HttpRequest,
    body: Result<super::json::Json<UpsertBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    use crate::domain::{Email, Name};
    use crate::signup::staff::{upsert_by_staff, ConsentMode, StaffUpsert, UpsertError};
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = crate::error::FieldErrors::new();
    let mut bad =
        |field: &str, message: &str| errors.entry(field.into()).or_default().push(message.into());
    let email = Email::parse(&body.email).map_err(|e| bad("email", e)).ok();
    let name = Name::parse(body.name.clone().flatten().as_deref().unwrap_or_default())
        .map_err(|e| bad("name", e))
        .ok()
        .flatten();
    let language = match body.language.as_deref() {
        None => Language::En,
        Some(raw) => Language::parse(raw).unwrap_or_else(|e| {
            bad("language", e);
            Language::En
        }),
    };
    let mut interests = Vec::new();
    for raw in body.interests.iter().flatten() {
        match InterestSlug::parse(raw) {
            Ok(slug) if !interests.contains(&slug) => interests.push(slug),
            Ok(_) => {}
            Err(e) => bad("interests", e),
        }
    }
    let text_ok = |s: &str| {
        !s.trim().is_empty() && s.chars().count() <= 500 && !s.chars().any(char::is_control)
    };
    let consent = match body.consent {
        ConsentBody::Confirmation {} => ConsentMode::Confirmation,
        ConsentBody::Recorded { source, note } => {
            if !text_ok(&source) {
                bad(
                    "consent.source",
                    "say where consent was given (1 to 500 characters)",
                );
            }
            if !text_ok(&note) {
                bad(
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
        bad("source", "at most 200 characters");
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let staff_label = match &auth.principal {
        crate::auth::Principal::Staff { id, .. } => format!("staff:{id}"),
        crate::auth::Principal::ApiKey { id, .. } => format!("api_key:{id}"),
    };
    let input = StaffUpsert {
        signup: crate::signup::Signup {
            email,
            name,
            language,
            interests,
            source: body.source,
            attributes: body.attributes.unwrap_or_default(),
            evidence: super::evidence(&state, &req),
        },
        consent,
        interests_given: body.interests.is_some(),
        name_given: matches!(body.name, Some(Some(_))),
        language_given: body.language.is_some(),
        staff_label,
    };
    let templates = state.templates.clone();
    let policy = state.signup_policy();
    let input = std::sync::Arc::new(input);
    let auth = std::sync::Arc::new(auth);
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        let (templates, policy, input, auth) = (
            templates.clone(),
            policy.clone(),
            input.clone(),
            auth.clone(),
        );
        let result = state
            .db
            .write(move |conn| {
                db::write_transaction(conn, |conn| -> Result<_, UpsertError> {
                    let outcome = upsert_by_staff(conn, &templates, &policy, &input, db::now())?;
                    let action = if outcome.created {
                        "subscriber.create"
                    } else {
                        "subscriber.update"
                    };
                    auth.audit(conn, action, "subscriber", Some(&outcome.subscriber_id))?;
                    let subscriber = store::find_subscriber(conn, &outcome.subscriber_id)?;
                    let interests: Vec<String> =
                        store::list_subscriber_interests(conn, &outcome.subscriber_id)?
                            .into_iter()
                            .map(|i| i.slug)
                            .collect();
                    Ok((outcome, subscriber, interests))
                })
                .map_err(|e| match e {
                    // A signup for the same new address committed first: once more, as an update.
                    UpsertError::Db(e) if db::is_unique_violation(&e) => UpsertFailure::Retry,
                    UpsertError::Db(e) => UpsertFailure::Api(ApiError::from(e)),
                    UpsertError::Validation(errors) => {
                        UpsertFailure::Api(ApiError::Validation(errors))
                    }
                    UpsertError::Conflict(why) => {
                        UpsertFailure::Api(ApiError::Conflict(why.into()))
                    }
                })
            })
            .await;
        match result {
            Err(UpsertFailure::Retry) if attempt < 2 => continue,
            Err(UpsertFailure::Retry) => {
                break Err(ApiError::Conflict(
                    "the address changed meanwhile; try again".into(),
                ))
            }
            Err(UpsertFailure::Api(e)) => break Err(e),
            Ok(value) => break Ok(value),
        }
    };
    let (outcome, subscriber, interests) = result?;
    if outcome.confirmation_sent {
        state.mail_ready.notify_one();
    }
    let subscriber = subscriber.ok_or(ApiError::NotFound)?;
    // A key that may write but not read learns only what its write did.
    let mut body = if auth.principal.may_read_contacts() {
        view(&subscriber, &interests)
    } else {
        json!({ "id": subscriber.id, "status": subscriber.status })
    };
    body["confirmation_sent"] = Value::Bool(outcome.confirmation_sent);
    Ok(if outcome.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    }
    .json(body))
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

/// Changes a subscriber's name, language, interests or attributes (an attribute set to null is
/// removed). Status is not for staff to change: people confirm and unsubscribe themselves.
pub async fn update_subscriber(
    auth: Authorized<WriteContacts>,
    id: web::Path<uuid::Uuid>,
    body: Result<super::json::Json<PatchBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    use crate::domain::Name;
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = crate::error::FieldErrors::new();
    let mut bad =
        |field: &str, message: &str| errors.entry(field.into()).or_default().push(message.into());
    let name = body.name.as_ref().map(|raw| {
        Name::parse(raw.as_deref().unwrap_or_default())
            .map_err(|e| bad("name", e))
            .ok()
            .flatten()
    });
    let language = body
        .language
        .as_deref()
        .and_then(|raw| Language::parse(raw).map_err(|e| bad("language", e)).ok());
    let mut interests = Vec::new();
    for raw in body.interests.iter().flatten() {
        match InterestSlug::parse(raw) {
            Ok(slug) if !interests.contains(&slug) => interests.push(slug),
            Ok(_) => {}
            Err(e) => bad("interests", e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let id = id.into_inner().to_string();
    let interests_given = body.interests.is_some();
    let attributes = body.attributes;
    let updated = state
        .db
        .transaction(move |conn| -> Result<_, ApiError> {
            let Some(current) = store::find_subscriber(conn, &id)? else {
                return Ok(None);
            };
            // Check interests and non-null attributes against every declaration.
            let catalog = crate::signup::PublicCatalog::load_for_staff(conn)?;
            let probe = crate::signup::Signup {
                email: crate::domain::Email::parse(&current.email)
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?,
                name: None,
                language: Language::En,
                interests: interests.clone(),
                source: None,
                attributes: attributes
                    .iter()
                    .flatten()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                evidence: Default::default(),
            };
            let checked = catalog.check(&probe).map_err(ApiError::Validation)?;
            let mut merged: serde_json::Map<String, Value> =
                serde_json::from_str(&current.attributes).unwrap_or_default();
            for (key, value) in attributes.iter().flatten() {
                if value.is_null() {
                    merged.remove(key);
                }
            }
            merged.extend(checked);
            let merged = Value::Object(merged).to_string();
            let now = db::now();
            store::update_profile(
                conn,
                &id,
                &store::ProfileChanges {
                    name: name.as_ref().map(|n| n.as_ref().map(Name::as_str)),
                    language: language.map(Language::as_str),
                    attributes: Some(&merged),
                    source: None,
                    updated_at: now,
                },
            )?;
            if interests_given {
                let slugs: Vec<&str> = interests.iter().map(InterestSlug::as_str).collect();
                store::replace_interests(conn, &id, &slugs, now)?;
            }
            crate::webhooks::emit_subscriber(
                conn,
                crate::webhooks::EventType::SubscriberUpdated,
                &id,
                now,
            )?;
            auth.audit(conn, "subscriber.update", "subscriber", Some(&id))?;
            Ok(load_view(conn, &id)?)
        })
        .await?;
    updated
        .map(|v| HttpResponse::Ok().json(v))
        .ok_or(ApiError::NotFound)
}

/// Why an upsert attempt ended without an answer: worth one more try, or final.
enum UpsertFailure {
    Retry,
    Api(ApiError),
}

impl From<DbError> for UpsertFailure {
    fn from(e: DbError) -> Self {
        Self::Api(e.into())
    }
}

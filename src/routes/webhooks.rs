//! Webhook endpoints for staff and integrations: register a URL and the events it wants (the
//! signing secret is shown once), change or delete it, send a test event, read the delivery log.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::HandlerResult;
use crate::auth::{Authorized, ManageWebhooks};
use crate::db::webhooks::{self as store, Attempt, Endpoint, EndpointChanges, Message};
use crate::db::{self, DbError};
use crate::error::{ApiError, FieldErrors};
use crate::startup::AppState;
use crate::webhooks::{self, signing, target, time, EventType};

const MAX_DESCRIPTION_CHARS: usize = 500;
/// Endpoints a deployment may register (each event is queued once per endpoint).
const MAX_ENDPOINTS: usize = 50;

fn view(endpoint: &Endpoint) -> Value {
    json!({
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events(),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": time(endpoint.created_at),
        "updated_at": time(endpoint.updated_at),
    })
}

fn attempt_view(a: &Attempt) -> Value {
    json!({
        "attempt": a.attempt,
        "at": time(a.attempted_at),
        "status_code": a.status_code,
        "error": a.error,
        "response": a.response,
        "duration_ms": a.duration_ms,
    })
}

fn message_view(m: &Message, attempts: &[&Attempt]) -> Value {
    json!({
        "id": m.id,
        "event_type": m.event_type,
        "state": m.state,
        "attempts": m.attempts,
        "last_status": m.last_status,
        "last_error": m.last_error,
        "created_at": time(m.created_at),
        "updated_at": time(m.updated_at),
        "delivered_at": m.delivered_at.map(time),
        "payload": serde_json::from_str::<Value>(&m.payload).unwrap_or(Value::Null),
        "log": attempts.iter().map(|a| attempt_view(a)).collect::<Vec<_>>(),
    })
}

fn bad(errors: &mut FieldErrors, field: &str, message: impl Into<String>) {
    errors.entry(field.into()).or_default().push(message.into());
}

/// Event type names, checked and without repeats (in the order given).
fn check_events(errors: &mut FieldErrors, raw: &[String]) -> Vec<String> {
    if raw.is_empty() {
        bad(errors, "events", "name at least one event type");
    }
    let mut events: Vec<String> = Vec::new();
    for name in raw {
        match EventType::parse(name) {
            Some(t) if !events.iter().any(|e| e == t.as_str()) => events.push(t.as_str().into()),
            Some(_) => {}
            None => bad(
                errors,
                "events",
                format!(
                    "unknown event type {name:?}; known types: {}",
                    EventType::SUBSCRIBABLE.map(EventType::as_str).join(", ")
                ),
            ),
        }
    }
    events
}

fn check_description(errors: &mut FieldErrors, raw: Option<String>) -> Option<String> {
    let too_long = raw.as_ref()?.chars().count() > MAX_DESCRIPTION_CHARS;
    let description = raw.map(|d| d.trim().to_owned())?;
    if too_long || description.chars().any(|c| c.is_control() && c != '\n') {
        bad(
            errors,
            "description",
            "must be at most 500 characters of text",
        );
    }
    Some(description)
}

async fn check_url(state: &AppState, errors: &mut FieldErrors, raw: &str) -> Option<String> {
    match target::check_url(raw, state.settings.webhook_allow_private).await {
        Ok(url) => Some(url.to_string()),
        Err(why) => {
            bad(errors, "url", why);
            None
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    url: String,
    events: Vec<String>,
    description: Option<String>,
    enabled: Option<bool>,
}

pub async fn create_webhook(
    auth: Authorized<ManageWebhooks>,
    body: Result<super::json::Json<CreateBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = FieldErrors::new();
    let events = check_events(&mut errors, &body.events);
    let description = check_description(&mut errors, body.description).unwrap_or_default();
    let url = check_url(&state, &mut errors, &body.url).await;
    let Some(url) = url.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let now = db::now();
    let endpoint = Endpoint {
        id: db::new_id(),
        url,
        description,
        event_types: serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()),
        secret: signing::new_secret(),
        previous_secret: None,
        previous_secret_until: None,
        enabled: body.enabled.unwrap_or(true),
        disabled_reason: None,
        created_by: auth.principal.staff_id().map(str::to_owned),
        created_at: now,
        updated_at: now,
    };
    let stored = endpoint.clone();
    let created = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            if store::list_endpoints(conn)?.len() >= MAX_ENDPOINTS {
                return Ok(false);
            }
            store::insert_endpoint(conn, &stored)?;
            auth.audit(conn, "webhook.create", "webhook", Some(&stored.id))?;
            Ok(true)
        })
        .await?;
    if !created {
        return Err(ApiError::Conflict(format!(
            "at most {MAX_ENDPOINTS} webhook endpoints may be registered; delete one first"
        )));
    }
    tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint created");
    let mut body = view(&endpoint);
    // Shown this once: receivers need it to verify signatures; it is never listed again.
    body["secret"] = Value::String(endpoint.secret);
    Ok(HttpResponse::Created().json(body))
}

pub async fn list_webhooks(
    _auth: Authorized<ManageWebhooks>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let all = state
        .db
        .run(|conn| store::list_endpoints(conn).map_err(DbError::from))
        .await?;
    let data: Vec<Value> = all.iter().map(view).collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data })))
}

pub async fn get_webhook(
    _auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = id.into_inner().to_string();
    let found = state
        .db
        .run(move |conn| store::find_endpoint(conn, &id).map_err(DbError::from))
        .await?;
    found
        .map(|e| HttpResponse::Ok().json(view(&e)))
        .ok_or(ApiError::NotFound)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
}

/// Changes an endpoint. Disabling it drops the messages not delivered yet; enabling it again
/// clears the reason it was disabled for.
pub async fn update_webhook(
    auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    body: Result<super::json::Json<UpdateBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = FieldErrors::new();
    let events = body.events.as_deref().map(|e| check_events(&mut errors, e));
    let description = check_description(&mut errors, body.description);
    let url = match &body.url {
        Some(raw) => check_url(&state, &mut errors, raw).await,
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let id = id.into_inner().to_string();
    let enabled = body.enabled;
    let updated = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            let Some(current) = store::find_endpoint(conn, &id)? else {
                return Ok(None);
            };
            let now = db::now();
            let changes = EndpointChanges {
                url,
                description,
                event_types: events.map(|e| serde_json::to_string(&e).unwrap_or_default()),
                enabled,
                disabled_reason: match enabled {
                    Some(true) => Some(None),
                    Some(false) if current.enabled => Some(Some("disabled by staff".into())),
                    _ => None,
                },
                updated_at: Some(now),
            };
            store::update_endpoint(conn, &id, &changes)?;
            if enabled == Some(false) {
                store::drop_pending_for_endpoint(conn, &id, "the endpoint was disabled", now)?;
            }
            auth.audit(conn, "webhook.update", "webhook", Some(&id))?;
            Ok(store::find_endpoint(conn, &id)?)
        })
        .await?;
    updated
        .map(|e| HttpResponse::Ok().json(view(&e)))
        .ok_or(ApiError::NotFound)
}

/// Deletes an endpoint with its messages and delivery log; what was not delivered is dropped.
pub async fn delete_webhook(
    auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = id.into_inner().to_string();
    let deleted = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            if store::find_endpoint(conn, &id)?.is_none() {
                return Ok(false);
            }
            store::drop_pending_for_endpoint(conn, &id, "the endpoint was deleted", db::now())?;
            store::delete_endpoint(conn, &id)?;
            auth.audit(conn, "webhook.delete", "webhook", Some(&id))?;
            Ok(true)
        })
        .await?;
    if deleted {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

/// How long a rotated-out secret keeps signing alongside the new one.
const ROTATION_OVERLAP_HOURS: i64 = 24;

/// Gives the endpoint a new secret, shown in this answer only. For a day both secrets sign
/// every message (two `v1,` signatures), so receivers can switch without losing a delivery.
pub async fn rotate_webhook_secret(
    auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = id.into_inner().to_string();
    let secret = signing::new_secret();
    let now = db::now();
    let until = now + chrono::Duration::hours(ROTATION_OVERLAP_HOURS);
    let stored = secret.clone();
    let rotated = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            if !store::rotate_secret(conn, &id, &stored, until, now)? {
                return Ok(false);
            }
            auth.audit(conn, "webhook.rotate_secret", "webhook", Some(&id))?;
            Ok(true)
        })
        .await?;
    if !rotated {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::Ok().json(json!({
        "secret": secret,
        "previous_secret_valid_until": time(until),
    })))
}

/// Queues a signed `webhook.test` event to this endpoint alone (202: it is delivered by the
/// worker; the delivery log shows how it went).
pub async fn test_webhook(
    auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = id.into_inner().to_string();
    let queued = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            let Some(endpoint) = store::find_endpoint(conn, &id)? else {
                return Ok(None);
            };
            if !endpoint.enabled {
                return Ok(Some(Err(())));
            }
            let message_id = webhooks::queue_test(conn, &id, db::now())?;
            auth.audit(conn, "webhook.test", "webhook", Some(&id))?;
            Ok(Some(Ok(message_id)))
        })
        .await?;
    match queued {
        None => Err(ApiError::NotFound),
        Some(Err(())) => Err(ApiError::Conflict(
            "the endpoint is disabled; enable it first".into(),
        )),
        Some(Ok(message_id)) => {
            state.task_ready.notify_one();
            Ok(HttpResponse::Accepted().json(json!({ "message_id": message_id })))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

fn is_message_id(raw: &str) -> bool {
    raw.strip_prefix("msg_").is_some_and(|rest| {
        rest.len() == 32
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The delivery log of one endpoint: its messages, newest first, each with every attempt.
pub async fn list_deliveries(
    _auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    query: Result<web::Query<DeliveriesQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let q = query.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = FieldErrors::new();
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        bad(&mut errors, "limit", "must be between 1 and 200");
    }
    if q.state.as_deref().is_some_and(|s| {
        ![
            store::PENDING,
            store::DELIVERED,
            store::FAILED,
            store::DROPPED,
        ]
        .contains(&s)
    }) {
        bad(
            &mut errors,
            "state",
            "must be pending, delivered, failed or dropped",
        );
    }
    if q.cursor.as_deref().is_some_and(|c| !is_message_id(c)) {
        bad(&mut errors, "cursor", "is not a cursor this API gave out");
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let id = id.into_inner().to_string();
    let found = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            if store::find_endpoint(conn, &id)?.is_none() {
                return Ok(None);
            }
            let messages =
                store::list_messages(conn, &id, q.state.as_deref(), q.cursor.as_deref(), limit)?;
            let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
            let attempts = store::list_attempts(conn, &ids)?;
            Ok(Some((messages, attempts)))
        })
        .await?;
    let Some((messages, attempts)) = found else {
        return Err(ApiError::NotFound);
    };
    let next = (messages.len() as i64 == limit)
        .then(|| messages.last().map(|m| m.id.clone()))
        .flatten();
    let data: Vec<Value> = messages
        .iter()
        .map(|m| {
            let log: Vec<&Attempt> = attempts.iter().filter(|a| a.message_id == m.id).collect();
            message_view(m, &log)
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data, "next_cursor": next })))
}

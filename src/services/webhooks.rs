//! Webhook endpoints: registering a URL and the events it wants, changing, rotating the signing
//! secret of, testing and deleting it, and reading its delivery log.

use tokio::sync::Notify;

use crate::auth::Principal;
use crate::db::ids::WebhookEndpointId;
use crate::db::webhooks::{self as store, Attempt, Endpoint, EndpointChanges, Message};
use crate::db::{self, Db, DbError};
use crate::domain::FieldErrors;
use crate::webhooks::{self, signing, target, EventType};

const MAX_DESCRIPTION_CHARS: usize = 500;
/// Endpoints a deployment may register (each event is queued once per endpoint).
pub const MAX_ENDPOINTS: usize = 50;
/// How long a rotated-out secret keeps signing alongside the new one.
const ROTATION_OVERLAP_HOURS: i64 = 24;

/// Event type names, checked and without repeats (in the order given).
fn check_events(errors: &mut FieldErrors, raw: &[String]) -> Vec<String> {
    if raw.is_empty() {
        errors.add("events", "name at least one event type");
    }
    let mut events: Vec<String> = Vec::new();
    for name in raw {
        match EventType::parse(name) {
            Some(t) if !events.iter().any(|e| e == t.as_str()) => events.push(t.as_str().into()),
            Some(_) => {}
            None => errors.add(
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
        errors.add("description", "must be at most 500 characters of text");
    }
    Some(description)
}

/// The URL, normalised, when it may be a target (resolved: no private address unless allowed).
async fn check_url(errors: &mut FieldErrors, raw: &str, allow_private: bool) -> Option<String> {
    match target::check_url(raw, allow_private).await {
        Ok(url) => Some(url.to_string()),
        Err(why) => {
            errors.add("url", why);
            None
        }
    }
}

pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateEndpointError {
    #[error("invalid webhook endpoint")]
    Invalid(FieldErrors),
    #[error("at most {MAX_ENDPOINTS} webhook endpoints may be registered; delete one first")]
    TooMany,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for CreateEndpointError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Registers an endpoint with a new signing secret (in the returned row; the caller shows it
/// once). `allow_private` lets it point into private networks.
pub async fn create_endpoint(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    allow_private: bool,
    input: NewEndpoint,
) -> Result<Endpoint, CreateEndpointError> {
    let mut errors = FieldErrors::new();
    let events = check_events(&mut errors, &input.events);
    let description = check_description(&mut errors, input.description).unwrap_or_default();
    let url = check_url(&mut errors, &input.url, allow_private).await;
    let Some(url) = url.filter(|_| errors.is_empty()) else {
        return Err(CreateEndpointError::Invalid(errors));
    };
    let now = db::now();
    let endpoint = Endpoint {
        id: WebhookEndpointId::new(),
        url,
        description,
        event_types: serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()),
        secret: signing::new_secret(),
        previous_secret: None,
        previous_secret_until: None,
        enabled: input.enabled.unwrap_or(true),
        disabled_reason: None,
        created_by: actor.staff_id().map(|id| id.to_string()),
        created_at: now,
        updated_at: now,
    };
    let stored = endpoint.clone();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| {
        if store::list_endpoints(conn)?.len() >= MAX_ENDPOINTS {
            return Err(CreateEndpointError::TooMany);
        }
        store::insert_endpoint(conn, &stored)?;
        actor.audit(
            conn,
            ip.as_deref(),
            "webhook.create",
            "webhook",
            Some(&stored.id),
        )?;
        Ok(())
    })
    .await?;
    tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint created");
    Ok(endpoint)
}

pub async fn list_endpoints(db: &Db) -> Result<Vec<Endpoint>, DbError> {
    db.run(|conn| store::list_endpoints(conn).map_err(DbError::from))
        .await
}

pub async fn get_endpoint(db: &Db, id: WebhookEndpointId) -> Result<Option<Endpoint>, DbError> {
    db.run(move |conn| store::find_endpoint(conn, &id).map_err(DbError::from))
        .await
}

/// A change to an endpoint: what is `None` stays.
pub struct EndpointChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateEndpointError {
    #[error("invalid change")]
    Invalid(FieldErrors),
    #[error("no such webhook endpoint")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Changes an endpoint. Disabling it drops the messages not delivered yet; enabling it again
/// clears the reason it was disabled for.
pub async fn update_endpoint(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    allow_private: bool,
    id: WebhookEndpointId,
    change: EndpointChange,
) -> Result<Endpoint, UpdateEndpointError> {
    let mut errors = FieldErrors::new();
    let events = change
        .events
        .as_deref()
        .map(|e| check_events(&mut errors, e));
    let description = check_description(&mut errors, change.description);
    let url = match &change.url {
        Some(raw) => check_url(&mut errors, raw, allow_private).await,
        None => None,
    };
    errors.into_result().map_err(UpdateEndpointError::Invalid)?;
    let enabled = change.enabled;
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<_, DbError> {
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
        actor.audit(conn, ip.as_deref(), "webhook.update", "webhook", Some(&id))?;
        Ok(store::find_endpoint(conn, &id)?)
    })
    .await?
    .ok_or(UpdateEndpointError::NotFound)
}

/// What deleting an endpoint or rotating its secret can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("no such webhook endpoint")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Deletes an endpoint with its messages and delivery log; what was not delivered is dropped.
pub async fn delete_endpoint(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: WebhookEndpointId,
) -> Result<(), EndpointError> {
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let deleted = db
        .transaction(move |conn| -> Result<_, DbError> {
            if store::find_endpoint(conn, &id)?.is_none() {
                return Ok(false);
            }
            store::drop_pending_for_endpoint(conn, &id, "the endpoint was deleted", db::now())?;
            store::delete_endpoint(conn, &id)?;
            actor.audit(conn, ip.as_deref(), "webhook.delete", "webhook", Some(&id))?;
            Ok(true)
        })
        .await?;
    deleted.then_some(()).ok_or(EndpointError::NotFound)
}

/// A new signing secret, and until when the one it replaces keeps signing too.
pub struct RotatedSecret {
    pub secret: String,
    pub previous_valid_until: chrono::NaiveDateTime,
}

/// Gives the endpoint a new secret. For a day both secrets sign every message (two `v1,`
/// signatures), so receivers can switch without losing a delivery.
pub async fn rotate_secret(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: WebhookEndpointId,
) -> Result<RotatedSecret, EndpointError> {
    let secret = signing::new_secret();
    let now = db::now();
    let until = now + chrono::Duration::hours(ROTATION_OVERLAP_HOURS);
    let stored = secret.clone();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let rotated = db
        .transaction(move |conn| -> Result<_, DbError> {
            if !store::rotate_secret(conn, &id, &stored, until, now)? {
                return Ok(false);
            }
            let id = Some(id.as_str());
            actor.audit(conn, ip.as_deref(), "webhook.rotate_secret", "webhook", id)?;
            Ok(true)
        })
        .await?;
    if !rotated {
        return Err(EndpointError::NotFound);
    }
    Ok(RotatedSecret {
        secret,
        previous_valid_until: until,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum TestEndpointError {
    #[error("no such webhook endpoint")]
    NotFound,
    #[error("the endpoint is disabled; enable it first")]
    Disabled,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for TestEndpointError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Queues a signed `webhook.test` event to this endpoint alone and wakes the task worker that
/// delivers it; returns the message's id (the delivery log shows how it went).
pub async fn test_endpoint(
    db: &Db,
    task_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: WebhookEndpointId,
) -> Result<String, TestEndpointError> {
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let message_id = db
        .transaction(move |conn| {
            let endpoint = store::find_endpoint(conn, &id)?.ok_or(TestEndpointError::NotFound)?;
            if !endpoint.enabled {
                return Err(TestEndpointError::Disabled);
            }
            let message_id = webhooks::queue_test(conn, &id, db::now())?;
            actor.audit(conn, ip.as_deref(), "webhook.test", "webhook", Some(&id))?;
            Ok(message_id)
        })
        .await?;
    task_ready.notify_one();
    Ok(message_id)
}

/// A page of an endpoint's delivery log, newest first: each message with its attempts, and the
/// cursor of the next page when there may be one.
pub struct DeliveryPage {
    pub messages: Vec<(Message, Vec<Attempt>)>,
    pub next: Option<String>,
}

/// Which messages to show: in one state, after a message id (`cursor`), at most `limit`.
pub struct DeliveryQuery {
    pub state: Option<store::WebhookMessageState>,
    pub cursor: Option<String>,
    pub limit: i64,
}

pub async fn list_deliveries(
    db: &Db,
    id: WebhookEndpointId,
    query: DeliveryQuery,
) -> Result<Option<DeliveryPage>, DbError> {
    let limit = query.limit;
    let found = db
        .run(move |conn| -> Result<_, DbError> {
            if store::find_endpoint(conn, &id)?.is_none() {
                return Ok(None);
            }
            let (state, cursor) = (query.state, query.cursor.as_deref());
            let messages = store::list_messages(conn, &id, state, cursor, limit)?;
            let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
            let attempts = store::list_attempts(conn, &ids)?;
            Ok(Some((messages, attempts)))
        })
        .await?;
    let Some((messages, attempts)) = found else {
        return Ok(None);
    };
    let next = (messages.len() as i64 == limit)
        .then(|| messages.last().map(|m| m.id.clone()))
        .flatten();
    let messages = messages
        .into_iter()
        .map(|m| {
            let log = attempts
                .iter()
                .filter(|a| a.message_id == m.id)
                .cloned()
                .collect();
            (m, log)
        })
        .collect();
    Ok(Some(DeliveryPage { messages, next }))
}

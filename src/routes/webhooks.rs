//! Webhook endpoints for staff and integrations: register a URL and the events it wants (the
//! signing secret is shown once), change or delete it, send a test event, read the delivery log.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::HandlerResult;
use crate::auth::{Authorized, ManageWebhooks};
use crate::db::ids::WebhookEndpointId;
use crate::db::webhooks as store;
use crate::error::{ApiError, FieldErrors};
use crate::services::webhooks::{self as service, EndpointError, TestEndpointError};
use crate::state::AppState;
use crate::views::webhooks::{
    CreatedEndpointView, EndpointView, MessagePageView, MessageView, QueuedTestView,
    RotatedSecretView,
};
use crate::views::{time, List};

impl From<service::CreateEndpointError> for ApiError {
    fn from(e: service::CreateEndpointError) -> Self {
        use service::CreateEndpointError as E;
        match e {
            E::Invalid(errors) => Self::Validation(errors),
            e @ E::TooMany => Self::Conflict(e.to_string()),
            E::Db(e) => e.into(),
        }
    }
}

impl From<service::UpdateEndpointError> for ApiError {
    fn from(e: service::UpdateEndpointError) -> Self {
        use service::UpdateEndpointError as E;
        match e {
            E::Invalid(errors) => Self::Validation(errors),
            E::NotFound => Self::NotFound,
            E::Db(e) => e.into(),
        }
    }
}

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::NotFound => Self::NotFound,
            EndpointError::Db(e) => e.into(),
        }
    }
}

impl From<TestEndpointError> for ApiError {
    fn from(e: TestEndpointError) -> Self {
        match e {
            TestEndpointError::NotFound => Self::NotFound,
            e @ TestEndpointError::Disabled => Self::Conflict(e.to_string()),
            TestEndpointError::Db(e) => e.into(),
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
    let input = service::NewEndpoint {
        url: body.url,
        events: body.events,
        description: body.description,
        enabled: body.enabled,
    };
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let private = state.settings.webhook_allow_private;
    let endpoint = service::create_endpoint(&state.db, actor, ip, private, input).await?;
    Ok(HttpResponse::Created().json(CreatedEndpointView::from(&endpoint)))
}

pub async fn list_webhooks(
    _auth: Authorized<ManageWebhooks>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let all = service::list_endpoints(&state.db).await?;
    Ok(HttpResponse::Ok().json(List::new(all.iter().map(EndpointView::from))))
}

pub async fn get_webhook(
    _auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    service::get_endpoint(&state.db, WebhookEndpointId::from(id.into_inner()))
        .await?
        .map(|e| HttpResponse::Ok().json(EndpointView::from(&e)))
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
    let change = service::EndpointChange {
        url: body.url,
        events: body.events,
        description: body.description,
        enabled: body.enabled,
    };
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let (private, id) = (
        state.settings.webhook_allow_private,
        WebhookEndpointId::from(id.into_inner()),
    );
    let endpoint = service::update_endpoint(&state.db, actor, ip, private, id, change).await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(&endpoint)))
}

/// Deletes an endpoint with its messages and delivery log; what was not delivered is dropped.
pub async fn delete_webhook(
    auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    service::delete_endpoint(
        &state.db,
        actor,
        ip,
        WebhookEndpointId::from(id.into_inner()),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Gives the endpoint a new secret, shown in this answer only; the old one keeps signing for a
/// day alongside it.
pub async fn rotate_webhook_secret(
    auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let rotated = service::rotate_secret(
        &state.db,
        actor,
        ip,
        WebhookEndpointId::from(id.into_inner()),
    )
    .await?;
    Ok(HttpResponse::Ok().json(RotatedSecretView {
        previous_secret_valid_until: time(rotated.previous_valid_until),
        secret: &rotated.secret,
    }))
}

/// Queues a signed `webhook.test` event to this endpoint alone (202: it is delivered by the
/// worker; the delivery log shows how it went).
pub async fn test_webhook(
    auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let id = WebhookEndpointId::from(id.into_inner());
    let message_id = service::test_endpoint(&state.db, &state.task_ready, actor, ip, id).await?;
    Ok(HttpResponse::Accepted().json(QueuedTestView { message_id }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub(crate) fn is_message_id(raw: &str) -> bool {
    raw.strip_prefix("msg_").is_some_and(|rest| {
        rest.len() == 32
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The page, filter and cursor a delivery-log query asks for, as sent.
fn delivery_query(q: DeliveriesQuery) -> Result<service::DeliveryQuery, ApiError> {
    let mut errors = FieldErrors::new();
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        errors.add("limit", "must be between 1 and 200");
    }
    if q.state
        .as_deref()
        .is_some_and(|s| store::WebhookMessageState::parse(s).is_none())
    {
        errors.add("state", "must be pending, delivered, failed or dropped");
    }
    if q.cursor.as_deref().is_some_and(|c| !is_message_id(c)) {
        errors.add("cursor", "is not a cursor this API gave out");
    }
    errors.into_result().map_err(ApiError::Validation)?;
    Ok(service::DeliveryQuery {
        state: q
            .state
            .as_deref()
            .and_then(store::WebhookMessageState::parse),
        cursor: q.cursor,
        limit,
    })
}

/// The delivery log of one endpoint: its messages, newest first, each with every attempt.
pub async fn list_deliveries(
    _auth: Authorized<ManageWebhooks>,
    id: web::Path<uuid::Uuid>,
    query: Result<web::Query<DeliveriesQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let query = delivery_query(query.map_err(ApiError::from_extractor)?.into_inner())?;
    let page = service::list_deliveries(&state.db, WebhookEndpointId::from(id.into_inner()), query)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(MessagePageView {
        data: page
            .messages
            .iter()
            .map(|(m, log)| MessageView::new(m, log))
            .collect(),
        next_cursor: page.next.as_deref(),
    }))
}

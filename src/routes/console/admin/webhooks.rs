//! Webhook endpoints: the list, registering one (its signing secret shown once, on the answer
//! to the form), an endpoint's deliveries with their status and attempts, a test send, and
//! rotating the secret (the new one shown once).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use minijinja::{context, Value};
use serde::Deserialize;

use super::NoticeQuery;
use crate::auth::ManageWebhooks;
use crate::db::ids::WebhookEndpointId;
use crate::db::webhooks::Endpoint;
use crate::routes::console::frame::{Console, Posted, Signed};
use crate::services::webhooks::{self as service, EndpointError, TestEndpointError};
use crate::webhooks::EventType;

/// Deliveries on an endpoint's page.
const DELIVERIES: i64 = 50;

fn event_names() -> Vec<&'static str> {
    EventType::SUBSCRIBABLE.map(EventType::as_str).to_vec()
}

fn endpoint_row(e: &Endpoint) -> Value {
    let events: Vec<String> = serde_json::from_str(&e.event_types).unwrap_or_default();
    context! {
        id => e.id.as_str(),
        url => &e.url,
        description => &e.description,
        events => events,
        enabled => e.enabled,
        created_at => e.created_at,
        previous_secret_until => e.previous_secret_until,
    }
}

async fn list_page(
    console: &Console,
    status: StatusCode,
    errors: Value,
    form: Value,
    notice: Option<&str>,
) -> HttpResponse {
    let endpoints = match service::list_endpoints(&console.state.db).await {
        Ok(endpoints) => endpoints,
        Err(e) => return console.internal(e),
    };
    let rows: Vec<Value> = endpoints.iter().map(endpoint_row).collect();
    console.page(
        status,
        "admin/webhooks",
        context! {
            endpoints => rows,
            events => event_names(),
            errors => errors,
            form => form,
            admin_notice => notice,
        },
    )
}

pub async fn page(signed: Signed<ManageWebhooks>, query: web::Query<NoticeQuery>) -> HttpResponse {
    let form = context! { url => "", description => "", events => Vec::<String>::new() };
    let notice = query.notice.as_deref();
    list_page(
        &signed.console,
        StatusCode::OK,
        Value::from(()),
        form,
        notice,
    )
    .await
}

#[derive(Deserialize)]
pub struct NewEndpointForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    events: Vec<String>,
}

pub async fn create(posted: Posted<ManageWebhooks, NewEndpointForm>) -> HttpResponse {
    let console = &posted.console;
    let form = posted.form;
    let again =
        context! { url => &form.url, description => &form.description, events => &form.events };
    let input = service::NewEndpoint {
        url: form.url.clone(),
        events: form.events.clone(),
        description: Some(form.description.clone()),
        enabled: Some(true),
    };
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    let private = console.state.settings.webhook_allow_private;
    match service::create_endpoint(&console.state.db, actor, ip, private, input).await {
        Ok(endpoint) => console.page(
            StatusCode::CREATED,
            "admin/webhook_secret",
            context! {
                endpoint => endpoint_row(&endpoint),
                secret => &endpoint.secret,
                rotated => false,
            },
        ),
        Err(service::CreateEndpointError::Invalid(errors)) => {
            let errors = console.field_errors(&errors);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            list_page(console, status, errors, again, None).await
        }
        Err(service::CreateEndpointError::TooMany) => {
            let errors = crate::domain::FieldErrors::one("url", "too many endpoints");
            let errors = console.field_errors(&errors);
            list_page(console, StatusCode::CONFLICT, errors, again, None).await
        }
        Err(e) => console.internal(e),
    }
}

async fn endpoint_page(
    console: &Console,
    status: StatusCode,
    id: WebhookEndpointId,
    notice: Option<&str>,
    refused: Option<&str>,
) -> HttpResponse {
    let db = &console.state.db;
    let endpoint = match service::get_endpoint(db, id.clone()).await {
        Ok(Some(endpoint)) => endpoint,
        Ok(None) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    let query = service::DeliveryQuery {
        state: None,
        cursor: None,
        limit: DELIVERIES,
    };
    let page = match service::list_deliveries(db, id, query).await {
        Ok(Some(page)) => page,
        Ok(None) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    let deliveries: Vec<Value> = page
        .messages
        .iter()
        .map(|(m, attempts)| {
            let attempts: Vec<Value> = attempts
                .iter()
                .map(|a| {
                    context! {
                        attempt => a.attempt,
                        at => a.attempted_at,
                        status_code => a.status_code,
                        error => &a.error,
                        duration_ms => a.duration_ms,
                    }
                })
                .collect();
            context! {
                id => &m.id,
                event_type => &m.event_type,
                state => m.state.as_str(),
                attempts => m.attempts,
                last_status => m.last_status,
                last_error => &m.last_error,
                created_at => m.created_at,
                delivered_at => m.delivered_at,
                log => attempts,
            }
        })
        .collect();
    let pending = page
        .messages
        .iter()
        .any(|(m, _)| m.state.as_str() == "pending");
    console.page(
        status,
        "admin/webhook",
        context! {
            endpoint => endpoint_row(&endpoint),
            disabled_reason => &endpoint.disabled_reason,
            deliveries => deliveries,
            pending => pending,
            admin_notice => notice,
            refused => refused,
        },
    )
}

pub async fn show(
    signed: Signed<ManageWebhooks>,
    id: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let console = &signed.console;
    let Some(id) = WebhookEndpointId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    endpoint_page(console, StatusCode::OK, id, query.notice.as_deref(), None).await
}

#[derive(Deserialize)]
pub struct EmptyForm {}

/// Queues a test event to the endpoint; its page then shows how the delivery went.
pub async fn test(
    posted: Posted<ManageWebhooks, EmptyForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = WebhookEndpointId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let state = &console.state;
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    let path = format!("/webhooks/{}", id.as_str());
    match service::test_endpoint(&state.db, &state.task_ready, actor, ip, id.clone()).await {
        Ok(_) => console.redirect(&path, Some("test_queued")),
        Err(TestEndpointError::Disabled) => {
            endpoint_page(console, StatusCode::CONFLICT, id, None, Some("disabled")).await
        }
        Err(TestEndpointError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

/// A new signing secret, shown on this answer only; the old one keeps signing for a day.
pub async fn rotate(
    posted: Posted<ManageWebhooks, EmptyForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = WebhookEndpointId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    let db = &console.state.db;
    match service::rotate_secret(db, actor, ip, id.clone()).await {
        Ok(rotated) => match service::get_endpoint(db, id).await {
            Ok(Some(endpoint)) => console.page(
                StatusCode::OK,
                "admin/webhook_secret",
                context! {
                    endpoint => endpoint_row(&endpoint),
                    secret => &rotated.secret,
                    rotated => true,
                    until => rotated.previous_valid_until,
                },
            ),
            Ok(None) => console.error(StatusCode::NOT_FOUND, "not_found"),
            Err(e) => console.internal(e),
        },
        Err(EndpointError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

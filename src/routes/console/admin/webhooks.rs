//! Webhook endpoints: the list, registering one (its signing secret shown once, on the answer
//! to the form), an endpoint's page (its deliveries, newest first, a page at a time, with their
//! status and attempts), changing it (URL, events, description, on or off), a test send, and,
//! each after a page that says what it does, rotating the secret (the new one shown once) and
//! deleting it. Every change goes through `services::webhooks`, as the JSON API's do.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use minijinja::{context, Value};
use serde::Deserialize;

use super::NoticeQuery;
use crate::auth::ManageWebhooks;
use crate::db::ids::WebhookEndpointId;
use crate::db::webhooks::Endpoint;
use crate::routes::console::frame::{Console, Posted, Signed};
use crate::services::webhooks::{
    self as service, EndpointError, TestEndpointError, UpdateEndpointError,
};
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

/// What an endpoint's page shows besides the endpoint and its deliveries.
#[derive(Default)]
struct View<'a> {
    notice: Option<&'a str>,
    refused: Option<&'a str>,
    /// Where the page of deliveries starts (a message id), newest first when `None`.
    before: Option<String>,
    /// The edit form as sent back, with its errors.
    form: Option<Value>,
    errors: Option<Value>,
}

async fn endpoint_page(
    console: &Console,
    status: StatusCode,
    id: WebhookEndpointId,
    view: View<'_>,
) -> HttpResponse {
    let db = &console.state.db;
    let endpoint = match service::get_endpoint(db, id.clone()).await {
        Ok(Some(endpoint)) => endpoint,
        Ok(None) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    let query = service::DeliveryQuery {
        state: None,
        cursor: view.before.clone(),
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
    let row = endpoint_row(&endpoint);
    let form = view.form.unwrap_or_else(|| row.clone());
    console.page(
        status,
        "admin/webhook",
        context! {
            endpoint => row,
            form => form,
            errors => view.errors,
            events => event_names(),
            disabled_reason => &endpoint.disabled_reason,
            deliveries => deliveries,
            pending => pending,
            older => page.next,
            paged => view.before.is_some(),
            admin_notice => view.notice,
            refused => view.refused,
        },
    )
}

#[derive(Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    notice: Option<String>,
    /// The delivery page's start: the last message id of the page before.
    #[serde(default)]
    before: Option<String>,
}

pub async fn show(
    signed: Signed<ManageWebhooks>,
    id: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> HttpResponse {
    let console = &signed.console;
    let Some(id) = WebhookEndpointId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let query = query.into_inner();
    let before = query.before.filter(|b| !b.is_empty());
    if before
        .as_deref()
        .is_some_and(|b| !crate::routes::webhooks::is_message_id(b))
    {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    }
    let view = View {
        notice: query.notice.as_deref(),
        before,
        ..View::default()
    };
    endpoint_page(console, StatusCode::OK, id, view).await
}

#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    events: Vec<String>,
    /// A checkbox: present when on.
    #[serde(default)]
    enabled: Option<String>,
}

/// Changes an endpoint's URL, description, events and whether it is on, in one go.
pub async fn update(
    posted: Posted<ManageWebhooks, EditForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = WebhookEndpointId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let form = posted.form;
    let enabled = form.enabled.is_some();
    let again = context! {
        id => id.as_str(),
        url => &form.url,
        description => &form.description,
        events => &form.events,
        enabled => enabled,
    };
    let change = service::EndpointChange {
        url: Some(form.url.clone()),
        events: Some(form.events.clone()),
        description: Some(form.description.clone()),
        enabled: Some(enabled),
    };
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    let private = console.state.settings.webhook_allow_private;
    let db = &console.state.db;
    match service::update_endpoint(db, actor, ip, private, id.clone(), change).await {
        Ok(_) => console.redirect(&format!("/webhooks/{id}"), Some("webhook_updated")),
        Err(UpdateEndpointError::Invalid(errors)) => {
            let view = View {
                form: Some(again),
                errors: Some(console.field_errors(&errors)),
                ..View::default()
            };
            endpoint_page(console, StatusCode::UNPROCESSABLE_ENTITY, id, view).await
        }
        Err(UpdateEndpointError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct EnabledForm {
    #[serde(default)]
    enabled: String,
}

/// Switches an endpoint on or off (off drops what was not delivered yet).
pub async fn switch(
    posted: Posted<ManageWebhooks, EnabledForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = WebhookEndpointId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let enabled = match posted.form.enabled.as_str() {
        "true" => true,
        "false" => false,
        _ => return console.error(StatusCode::BAD_REQUEST, "bad_form"),
    };
    let change = service::EndpointChange {
        url: None,
        events: None,
        description: None,
        enabled: Some(enabled),
    };
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    let private = console.state.settings.webhook_allow_private;
    let db = &console.state.db;
    let notice = if enabled {
        "webhook_enabled"
    } else {
        "webhook_disabled"
    };
    match service::update_endpoint(db, actor, ip, private, id.clone(), change).await {
        Ok(_) => console.redirect(&format!("/webhooks/{id}"), Some(notice)),
        Err(UpdateEndpointError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    /// `yes` once the admin has confirmed.
    #[serde(default)]
    confirm: String,
}

/// The endpoint a path names, for a confirmation page.
async fn endpoint_for(console: &Console, id: &WebhookEndpointId) -> Result<Endpoint, HttpResponse> {
    match service::get_endpoint(&console.state.db, id.clone()).await {
        Ok(Some(endpoint)) => Ok(endpoint),
        Ok(None) => Err(console.error(StatusCode::NOT_FOUND, "not_found")),
        Err(e) => Err(console.internal(e)),
    }
}

/// Deletes an endpoint, with its delivery log, once confirmed.
pub async fn delete(
    posted: Posted<ManageWebhooks, ConfirmForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = WebhookEndpointId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    if posted.form.confirm != "yes" {
        let endpoint = match endpoint_for(console, &id).await {
            Ok(endpoint) => endpoint,
            Err(response) => return response,
        };
        let (action, back) = (format!("/webhooks/{id}/delete"), format!("/webhooks/{id}"));
        return super::confirm_page(console, "delete_webhook", &endpoint.url, &action, &back);
    }
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match service::delete_endpoint(&console.state.db, actor, ip, id).await {
        Ok(()) => console.redirect("/webhooks", Some("webhook_deleted")),
        Err(EndpointError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
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
            let view = View {
                refused: Some("disabled"),
                ..View::default()
            };
            endpoint_page(console, StatusCode::CONFLICT, id, view).await
        }
        Err(TestEndpointError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

/// A new signing secret, once confirmed, shown on this answer only; the old one keeps signing
/// for a day.
pub async fn rotate(
    posted: Posted<ManageWebhooks, ConfirmForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = WebhookEndpointId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    if posted.form.confirm != "yes" {
        let endpoint = match endpoint_for(console, &id).await {
            Ok(endpoint) => endpoint,
            Err(response) => return response,
        };
        let (action, back) = (format!("/webhooks/{id}/rotate"), format!("/webhooks/{id}"));
        return super::confirm_page(console, "rotate_secret", &endpoint.url, &action, &back);
    }
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

//! Bounce and complaint intake over HTTP: a generic JSON endpoint for staff scripts, and one
//! endpoint per mail provider, each authenticated the way that provider signs its webhooks.
//! A provider endpoint whose secret is not configured answers 404.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{json, Value};

use super::HandlerResult;
use crate::auth::{Actor, Authorized, Principal, RecordMailEvents};
use crate::bounces::providers::{self, IntakeError, Parsed};
use crate::bounces::sns::{self, SnsMessage};
use crate::bounces::{apply_report, MailReport, ReportKind};
use crate::db;
use crate::domain::Email;
use crate::error::{ApiError, FieldErrors};
use crate::startup::AppState;

/// Reports in one generic request.
const MAX_EVENTS: usize = 1000;
/// Largest provider request read (SendGrid batches many events in one).
const MAX_PROVIDER_BODY: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    email: String,
    occurred_at: Option<String>,
    detail: Option<String>,
}

/// `POST /api/v1/events`: one report `{"id","type","email","occurred_at"?,"detail"?}` or an
/// array of them. Everything is checked before anything is applied.
pub async fn record_events(
    auth: Authorized<RecordMailEvents>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body: Value = super::large_json(&req, payload, MAX_PROVIDER_BODY).await?;
    let (items, single) = match body {
        Value::Array(items) => (items, false),
        item @ Value::Object(_) => (vec![item], true),
        _ => {
            return Err(ApiError::field(
                "body",
                "must be an event object or an array of them",
            ))
        }
    };
    if items.is_empty() || items.len() > MAX_EVENTS {
        return Err(ApiError::field(
            "body",
            format!("must hold 1 to {MAX_EVENTS} events"),
        ));
    }
    let now = db::now();
    let mut errors = FieldErrors::new();
    let mut reports = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = |field: &str| {
            if single {
                field.to_owned()
            } else {
                format!("[{i}].{field}")
            }
        };
        let mut bad = |field: &str, message: &str| {
            errors
                .entry(at(field))
                .or_default()
                .push(message.to_owned())
        };
        let event: GenericEvent = match super::json::read(item) {
            Ok(event) => event,
            Err(e) => {
                bad("event", &e.to_string());
                continue;
            }
        };
        let id = event.id.trim();
        if id.is_empty() || event.id.chars().count() > 200 || id.chars().any(char::is_control) {
            bad("id", "must be 1 to 200 characters of text");
        }
        let kind = ReportKind::parse(&event.kind);
        if kind.is_none() {
            bad("type", "must be hard_bounce, soft_bounce or complaint");
        }
        let email = Email::parse(&event.email);
        if let Err(message) = &email {
            bad("email", message);
        }
        let occurred_at = match event.occurred_at.as_deref() {
            None => None,
            Some(raw) => match DateTime::parse_from_rfc3339(raw) {
                Ok(t) => Some(t.naive_utc()),
                Err(_) => {
                    bad(
                        "occurred_at",
                        "must be an RFC 3339 time like 2026-01-01T00:00:00Z",
                    );
                    None
                }
            },
        };
        if event
            .detail
            .as_deref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            bad("detail", "must be at most 1000 characters");
        }
        if let (Some(kind), Ok(email)) = (kind, email) {
            reports.push(MailReport::new(
                "api",
                id,
                kind,
                email,
                occurred_at,
                event.detail.as_deref(),
                now,
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let results = apply(&state, reports, Some(&auth)).await?;
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

/// Applies reports one by one (each in its own transaction); returns `{id, outcome}` for each.
async fn apply(
    state: &AppState,
    reports: Vec<MailReport>,
    auth: Option<&Authorized<RecordMailEvents>>,
) -> Result<Vec<Value>, ApiError> {
    let policy = state.intake.policy;
    let audit = auth.map(|a| {
        let (actor_type, id) = match &a.principal {
            Principal::Staff { id, .. } => ("staff", id.clone()),
            Principal::ApiKey { id, .. } => ("api_key", id.clone()),
        };
        (actor_type, id, a.ip.clone())
    });
    let results = state
        .db
        .write(move |conn| -> Result<Vec<Value>, db::DbError> {
            let mut results = Vec::with_capacity(reports.len());
            for report in &reports {
                let outcome = apply_report(conn, report, policy, db::now())?;
                tracing::info!(
                    report_id = %report.id,
                    kind = report.kind.as_str(),
                    outcome = outcome.as_str(),
                    "bounce or complaint report"
                );
                let id = report
                    .id
                    .strip_prefix(&format!("{}:", report.provider))
                    .unwrap_or(&report.id);
                results.push(json!({ "id": id, "outcome": outcome.answer() }));
            }
            if let Some((actor_type, id, ip)) = &audit {
                let actor = Actor {
                    actor_type,
                    actor_id: Some(id),
                    ip: ip.as_deref(),
                };
                actor.record(conn, "mail_events.record", "mail_event", None)?;
            }
            Ok(results)
        })
        .await?;
    Ok(results)
}

async fn provider_body(payload: web::Payload) -> Result<web::Bytes, ApiError> {
    payload
        .to_bytes_limited(MAX_PROVIDER_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(MAX_PROVIDER_BODY))?
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn refused(error: IntakeError) -> ApiError {
    match error {
        IntakeError::Unauthenticated(why) => {
            tracing::warn!(reason = why, "bounce report refused");
            ApiError::Forbidden
        }
        IntakeError::Malformed(detail) => ApiError::BadRequest(detail),
    }
}

async fn answer(state: &AppState, parsed: Parsed) -> HandlerResult {
    if let Some(token) = parsed.replay_token.clone() {
        let now = db::now();
        let fresh = state
            .db
            .write(move |conn| {
                let remembered = db::write_transaction(conn, |c| {
                    db::mail_events::remember_provider_token(
                        c,
                        &token,
                        now,
                        now - chrono::Duration::days(1),
                    )
                });
                match remembered {
                    Ok(fresh) => Ok(fresh),
                    // The same token at the same moment from another request: a replay too.
                    Err(e) if db::is_unique_violation(&e) => Ok(false),
                    Err(e) => Err(db::DbError::from(e)),
                }
            })
            .await?;
        if !fresh {
            return Err(refused(IntakeError::Unauthenticated(
                "this signed request was already received (a replay)",
            )));
        }
    }
    let ignored = parsed.ignored;
    let results = apply(state, parsed.reports, None).await?;
    Ok(HttpResponse::Ok().json(json!({ "results": results, "ignored": ignored })))
}

/// `POST /api/v1/events/postmark`
pub async fn postmark_events(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HandlerResult {
    let Some(token) = &state.intake.postmark_token else {
        return Err(ApiError::NotFound);
    };
    let body = provider_body(payload).await?;
    // Postmark sends HTTP Basic credentials: missing or wrong ones get the Basic challenge.
    let parsed = providers::postmark(header(&req, "authorization"), token, &body, db::now())
        .map_err(|e| match e {
            IntakeError::Unauthenticated(why) => {
                tracing::warn!(reason = why, "bounce report refused");
                ApiError::BasicUnauthorized {
                    realm: "Enlace Postmark webhook",
                }
            }
            other => refused(other),
        })?;
    answer(&state, parsed).await
}

/// `POST /api/v1/events/sendgrid`
pub async fn sendgrid_events(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HandlerResult {
    let Some(key) = &state.intake.sendgrid_key else {
        return Err(ApiError::NotFound);
    };
    let body = provider_body(payload).await?;
    let parsed = providers::sendgrid(
        header(&req, "x-twilio-email-event-webhook-signature"),
        header(&req, "x-twilio-email-event-webhook-timestamp"),
        key,
        &body,
        db::now(),
    )
    .map_err(refused)?;
    answer(&state, parsed).await
}

/// `POST /api/v1/events/mailgun`
pub async fn mailgun_events(payload: web::Payload, state: web::Data<AppState>) -> HandlerResult {
    let Some(key) = &state.intake.mailgun_key else {
        return Err(ApiError::NotFound);
    };
    let body = provider_body(payload).await?;
    let parsed = providers::mailgun(key, &body, db::now()).map_err(refused)?;
    answer(&state, parsed).await
}

/// `POST /api/v1/events/ses`: SNS deliveries of SES notifications (and the subscription
/// handshake, confirmed once the request's signature checks out).
pub async fn ses_events(payload: web::Payload, state: web::Data<AppState>) -> HandlerResult {
    let Some(verifier) = &state.intake.sns else {
        return Err(ApiError::NotFound);
    };
    let body = provider_body(payload).await?;
    let message: SnsMessage = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not an SNS message: {e}")))?;
    verifier.verify(&message).await.map_err(refused)?;
    match message.kind.as_str() {
        "SubscriptionConfirmation" => {
            verifier
                .confirm_subscription(&message)
                .await
                .map_err(refused)?;
            tracing::info!("SNS subscription confirmed");
            Ok(HttpResponse::Ok().json(json!({ "subscription": "confirmed" })))
        }
        "Notification" => {
            let parsed = sns::ses_reports(&message, db::now()).map_err(refused)?;
            answer(&state, parsed).await
        }
        _ => Ok(HttpResponse::Ok().json(json!({ "results": [], "ignored": 1 }))),
    }
}

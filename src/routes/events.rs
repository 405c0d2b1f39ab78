//! Bounce and complaint intake over HTTP: a generic JSON endpoint for staff scripts, and one
//! endpoint per mail provider, each authenticated the way that provider signs its webhooks.
//! A provider endpoint whose secret is not configured answers 404.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::Value;

use super::HandlerResult;
use crate::auth::{Authorized, RecordMailEvents};
use crate::bounces::providers::{self, IntakeError, Parsed};
use crate::bounces::sns::{self, SnsMessage};
use crate::bounces::{MailReport, ReportKind, ReportOutcome};
use crate::db;
use crate::domain::{Email, FieldErrors};
use crate::error::ApiError;
use crate::services::consent::{self as service, Reporter};
use crate::state::AppState;
use crate::views::events::{ReportResultView, ReportResultsView, SubscriptionView};

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
    let reports = generic_reports(body, db::now())?;
    let reporter = Reporter {
        principal: &auth.principal,
        client_ip: auth.ip.as_deref(),
    };
    let applied = apply(&state, reports, Some(reporter)).await?;
    Ok(HttpResponse::Ok().json(results_view(&applied, None)))
}

/// The generic body, parsed: every event checked, problems reported by position.
fn generic_reports(body: Value, now: chrono::NaiveDateTime) -> Result<Vec<MailReport>, ApiError> {
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
        let mut bad = |field: &str, message: &str| errors.add(at(field), message);
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
            let detail = event.detail.as_deref();
            reports.push(MailReport::new(
                "api",
                id,
                kind,
                email,
                occurred_at,
                detail,
                now,
            ));
        }
    }
    errors.into_result().map_err(ApiError::Validation)?;
    Ok(reports)
}

/// Applies reports (`services::consent::record_reports`): each with what became of it.
async fn apply(
    state: &AppState,
    reports: Vec<MailReport>,
    reporter: Option<Reporter<'_>>,
) -> Result<Vec<(MailReport, ReportOutcome)>, ApiError> {
    let policy = state.intake.policy;
    Ok(service::record_reports(&state.db, policy, reports, reporter).await?)
}

/// `{id, outcome}` for each applied report, with the provider's own id and the outcome the
/// sender may know.
fn results_view(
    applied: &[(MailReport, ReportOutcome)],
    ignored: Option<usize>,
) -> ReportResultsView<'_> {
    let results = applied
        .iter()
        .map(|(report, outcome)| ReportResultView {
            id: report
                .id
                .strip_prefix(&format!("{}:", report.provider))
                .unwrap_or(&report.id),
            outcome: outcome.answer(),
        })
        .collect();
    ReportResultsView { ignored, results }
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
        if !service::accept_provider_request(&state.db, token, db::now()).await? {
            return Err(refused(IntakeError::Unauthenticated(
                "this signed request was already received (a replay)",
            )));
        }
    }
    let ignored = parsed.ignored;
    let applied = apply(state, parsed.reports, None).await?;
    Ok(HttpResponse::Ok().json(results_view(&applied, Some(ignored))))
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
            Ok(HttpResponse::Ok().json(SubscriptionView {
                subscription: "confirmed",
            }))
        }
        "Notification" => {
            let parsed = sns::ses_reports(&message, db::now()).map_err(refused)?;
            answer(&state, parsed).await
        }
        _ => Ok(HttpResponse::Ok().json(results_view(&[], Some(1)))),
    }
}

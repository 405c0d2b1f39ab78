//! Sending a newsletter: now or at a time (with an `Idempotency-Key`, a repeated request is a
//! no-op), and pausing, resuming or cancelling the send.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::newsletters::{path_id, rendering, report_view};
use super::HandlerResult;
use crate::auth::{Authorized, SendNewsletters};
use crate::error::ApiError;
use crate::services::newsletters::{self as service, SendError, SendInput, TransitionError};
use crate::state::AppState;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    send_at: Option<DateTime<Utc>>,
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Invalid(errors) => Self::Validation(errors),
            SendError::NotFound => Self::NotFound,
            SendError::NotSendable(_)
            | SendError::NoPostalAddress
            | SendError::ChangedMeanwhile => Self::Conflict(e.to_string()),
            SendError::Db(e) => e.into(),
            SendError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::NotFound => Self::NotFound,
            TransitionError::Refused { .. } => Self::Conflict(e.to_string()),
            TransitionError::Db(e) => e.into(),
        }
    }
}

/// The `Idempotency-Key` header: 1–255 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
        })?;
    Ok(Some(key.to_owned()))
}

/// No body (or an empty one) means "now"; anything else must be the JSON object.
fn send_body(body: &[u8]) -> Result<SendBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(SendBody::default())
    } else {
        super::parse_json(body)
    }
}

pub async fn send_newsletter(
    auth: Authorized<SendNewsletters>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let input = SendInput {
        idempotency_key: idempotency_key(&req)?,
        send_at: send_body(&body)?.send_at,
        read_version: None,
    };
    let (who, ip) = (&auth.principal, auth.ip.as_deref());
    let (db, ready) = (&state.db, &state.send_ready);
    service::send(db, rendering(&state), ready, who, ip, id.clone(), input).await?;
    // Where the send stands now, whether this request started it or repeated one that did.
    Ok(HttpResponse::Accepted().json(report_view(&service::get(db, who, id).await?)))
}

pub async fn pause_newsletter(
    auth: Authorized<SendNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let (who, ip) = (&auth.principal, auth.ip.as_deref());
    service::pause(&state.db, &state.send_ready, who, ip, id.clone()).await?;
    Ok(HttpResponse::Ok().json(report_view(&service::get(&state.db, who, id).await?)))
}

pub async fn resume_newsletter(
    auth: Authorized<SendNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let (who, ip) = (&auth.principal, auth.ip.as_deref());
    service::resume(&state.db, &state.send_ready, who, ip, id.clone()).await?;
    Ok(HttpResponse::Ok().json(report_view(&service::get(&state.db, who, id).await?)))
}

pub async fn cancel_newsletter(
    auth: Authorized<SendNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let (who, ip) = (&auth.principal, auth.ip.as_deref());
    service::cancel(&state.db, &state.send_ready, who, ip, id.clone()).await?;
    Ok(HttpResponse::Ok().json(report_view(&service::get(&state.db, who, id).await?)))
}

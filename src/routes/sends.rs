//! Sending a newsletter: now or at a time (with an `Idempotency-Key`, a repeated request is a
//! no-op), and pausing, resuming or cancelling the send.

use actix_web::{web, HttpRequest};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::newsletters::{load_view, path_id};
use super::HandlerResult;
use crate::auth::{Authorized, SendNewsletters};
use crate::db::newsletters::{self as store, OVERDUE, PAUSED, SENDING};
use crate::db::{self, deliveries, DbError};
use crate::error::ApiError;
use crate::sending::prepare::{content_of, target_filter};
use crate::startup::AppState;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    send_at: Option<DateTime<Utc>>,
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

pub async fn send_newsletter(
    auth: Authorized<SendNewsletters>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let key = idempotency_key(&req)?;
    let with_progress = auth.principal.may_read_contacts();
    // No body (or an empty one) means "now"; anything else must be the JSON object.
    let body: SendBody = if body.iter().all(u8::is_ascii_whitespace) {
        SendBody::default()
    } else {
        super::parse_json(&body)?
    };
    let now = db::now();
    let send_at = match body.send_at {
        None => now,
        Some(at) => {
            let at = at.naive_utc();
            if at < now - Duration::minutes(1) {
                return Err(ApiError::field(
                    "send_at",
                    "is in the past; leave it out to send now",
                ));
            }
            if at > now + Duration::days(366) {
                return Err(ApiError::field("send_at", "must be within a year"));
            }
            at.max(now)
        }
    };
    // The templates are checked against the fields declared now (some may have been removed
    // since the draft was saved), apart from the database, before the transaction.
    let lookup = id.clone();
    let stored = state
        .db
        .run(move |conn| store::find_newsletter(conn, &lookup).map_err(DbError::from))
        .await?
        .ok_or(ApiError::NotFound)?;
    let content = content_of(&stored).map_err(ApiError::Internal)?;
    let compiled = super::newsletters::compile_apart(&state, content).await?;
    let state2 = state.clone();
    let id2 = id.clone();
    state
        .db
        .transaction(move |conn| -> Result<(), ApiError> {
            let n = store::find_newsletter(conn, &id2)?.ok_or(ApiError::NotFound)?;
            // The same request again: answer with where the send stands, change nothing.
            if key.is_some() && n.send_key == key && n.status != store::DRAFT {
                return Ok(());
            }
            if !matches!(n.status.as_str(), store::DRAFT | OVERDUE) {
                return Err(ApiError::Conflict(format!(
                    "the newsletter is {} (send it again with the same Idempotency-Key to get its state)",
                    n.status
                )));
            }
            if state2.settings.postal_address.is_none() {
                return Err(ApiError::Conflict(
                    "sending is refused while ENLACE_POSTAL_ADDRESS is unset: bulk-mail law requires the sender's postal address in every newsletter".into(),
                ));
            }
            if n.segment_id.is_none() && n.filter.is_none() {
                return Err(ApiError::field("segment_id", "the newsletter needs a segment_id or a filter before it is sent"));
            }
            if n.updated_at != stored.updated_at {
                return Err(ApiError::Conflict("the newsletter changed meanwhile; try again".into()));
            }
            if let Err(errors) = &compiled {
                return Err(ApiError::Validation(errors.clone()));
            }
            target_filter(conn, &n).map_err(|e| ApiError::field("segment_id", e.to_string()))?;
            if !store::schedule(conn, &n.id, send_at, key.as_deref(), now)? {
                return Err(ApiError::Conflict("the newsletter changed meanwhile; try again".into()));
            }
            auth.audit(conn, "newsletter.send", "newsletter", Some(&n.id))?;
            Ok(())
        })
        .await?;
    state.send_ready.notify_one();
    let mut res = load_view(&state, id, with_progress).await?;
    *res.status_mut() = actix_web::http::StatusCode::ACCEPTED;
    Ok(res)
}

/// One staff transition of a send: from one of `from` to `to`.
async fn transition(
    auth: Authorized<SendNewsletters>,
    state: web::Data<AppState>,
    id: String,
    from: &'static [&'static str],
    to: &'static str,
    action: &'static str,
) -> HandlerResult {
    let id2 = id.clone();
    let with_progress = auth.principal.may_read_contacts();
    state
        .db
        .transaction(move |conn| -> Result<(), ApiError> {
            let n = store::find_newsletter(conn, &id2)?.ok_or(ApiError::NotFound)?;
            let now = db::now();
            let moved = if to == store::CANCELLED {
                store::cancel(conn, &id2, now)?
            } else {
                store::transition(conn, &id2, from, to, now)?
            };
            if !moved {
                return Err(ApiError::Conflict(format!(
                    "a {} newsletter cannot be {}",
                    n.status,
                    match action {
                        "pause" => "paused",
                        "resume" => "resumed",
                        _ => "cancelled",
                    }
                )));
            }
            if to == store::CANCELLED {
                deliveries::skip_cancelled(conn)?;
            }
            auth.audit(
                conn,
                &format!("newsletter.{action}"),
                "newsletter",
                Some(&id2),
            )?;
            Ok(())
        })
        .await?;
    state.send_ready.notify_one();
    load_view(&state, id, with_progress).await
}

pub async fn pause_newsletter(
    auth: Authorized<SendNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    transition(auth, state, path_id(&id)?, &[SENDING], PAUSED, "pause").await
}

pub async fn resume_newsletter(
    auth: Authorized<SendNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    transition(auth, state, path_id(&id)?, &[PAUSED], SENDING, "resume").await
}

pub async fn cancel_newsletter(
    auth: Authorized<SendNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    transition(auth, state, path_id(&id)?, &[], store::CANCELLED, "cancel").await
}

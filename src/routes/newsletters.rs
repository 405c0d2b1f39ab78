//! Newsletter drafts: content in one or two languages, a target, previews and test sends.
//! Sending them (and pausing, resuming, cancelling) is in `sends.rs`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::{json, Value};

use super::HandlerResult;
use crate::auth::{Authorized, ReadNewsletters, WriteNewsletters};
use crate::db::deliveries::Progress;
use crate::db::ids::NewsletterId;
use crate::db::newsletters::Newsletter;
use crate::db::states::NewsletterState;
use crate::domain::Language;
use crate::email::newsletter::Content;
use crate::error::ApiError;
use crate::services::newsletters::{
    self as service, DeleteError, DraftError, DraftInput, GetError, ListError, ListInput,
    PreviewError, PreviewInput, Rendering, Report, TestError, TestInput, TestOutbox,
};
use crate::startup::AppState;

/// Largest draft request: content in up to three versions, HTML and text each up to 512 KiB.
const MAX_DRAFT_BYTES: usize = 4 * 1024 * 1024;

fn time(t: Option<NaiveDateTime>) -> Value {
    t.map(|t| Value::from(t.and_utc().to_rfc3339()))
        .unwrap_or(Value::Null)
}

/// The progress of a send: counts by state, the rate over the last 30 s, and the time left.
pub fn progress_view(p: &Progress, newsletter: &Newsletter, now: NaiveDateTime) -> Value {
    let window = newsletter
        .started_at
        .map(|s| (now - s).num_milliseconds().clamp(1, 30_000) as f64 / 1000.0)
        .unwrap_or(30.0);
    let per_second = if newsletter.status == NewsletterState::Sending {
        p.recent as f64 / window
    } else {
        0.0
    };
    let eta = (per_second > 0.0).then(|| (p.pending as f64 / per_second).ceil() as i64);
    json!({
        "total": p.total, "sent": p.sent, "failed": p.failed, "skipped": p.skipped,
        "pending": p.pending, "per_second": (per_second * 10.0).round() / 10.0, "eta_seconds": eta,
    })
}

pub fn view(n: &Newsletter, progress: Option<Value>) -> Value {
    let mut v = json!({
        "id": n.id,
        "subject": n.subject,
        "html": n.html,
        "text": n.text,
        "variants": serde_json::from_str::<Value>(&n.variants).unwrap_or_else(|_| json!({})),
        "from": n.from_address,
        "reply_to": n.reply_to,
        "segment_id": n.segment_id,
        "filter": n.filter.as_deref().and_then(|f| serde_json::from_str::<Value>(f).ok()),
        "status": n.status,
        "pause_reason": n.pause_reason,
        "send_at": time(n.send_at),
        "started_at": time(n.started_at),
        "finished_at": time(n.finished_at),
        "created_at": n.created_at.and_utc().to_rfc3339(),
        "updated_at": n.updated_at.and_utc().to_rfc3339(),
    });
    if let Some(progress) = progress {
        v["progress"] = progress;
    }
    v
}

/// A newsletter id from the path: anything but a UUID cannot exist.
pub fn path_id(raw: &str) -> Result<NewsletterId, ApiError> {
    NewsletterId::parse(raw).ok_or(ApiError::NotFound)
}

/// A newsletter with the progress of its send when the reader may see it.
pub fn report_view(report: &Report) -> Value {
    let progress = report
        .progress
        .as_ref()
        .map(|p| progress_view(p, &report.newsletter, report.read_at));
    view(&report.newsletter, progress)
}

/// The settings, templates and render slots staff-side template work uses.
pub fn rendering(state: &AppState) -> Rendering<'_> {
    Rendering {
        settings: &state.settings,
        templates: &state.templates,
        render_slots: &state.render_slots,
    }
}

impl From<ListError> for ApiError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::Invalid(errors) => Self::Validation(errors),
            ListError::Db(e) => e.into(),
        }
    }
}

impl From<GetError> for ApiError {
    fn from(e: GetError) -> Self {
        match e {
            GetError::NotFound => Self::NotFound,
            GetError::Db(e) => e.into(),
        }
    }
}

impl From<DraftError> for ApiError {
    fn from(e: DraftError) -> Self {
        match e {
            DraftError::Invalid(errors) => Self::Validation(errors),
            DraftError::NotFound => Self::NotFound,
            DraftError::NotADraft(_)
            | DraftError::ChangedMeanwhile
            | DraftError::NoLongerADraft => Self::Conflict(e.to_string()),
            DraftError::Db(e) => e.into(),
            DraftError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<DeleteError> for ApiError {
    fn from(e: DeleteError) -> Self {
        match e {
            DeleteError::NotFound => Self::NotFound,
            DeleteError::Kept(_) => Self::Conflict(e.to_string()),
            DeleteError::Db(e) => e.into(),
        }
    }
}

impl From<PreviewError> for ApiError {
    fn from(e: PreviewError) -> Self {
        match e {
            PreviewError::Invalid(errors) => Self::Validation(errors),
            PreviewError::NotFound => Self::NotFound,
            PreviewError::Forbidden => Self::Forbidden,
            PreviewError::Db(e) => e.into(),
            PreviewError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<TestError> for ApiError {
    fn from(e: TestError) -> Self {
        match e {
            TestError::Invalid(errors) => Self::Validation(errors),
            TestError::NotFound => Self::NotFound,
            TestError::TooMany => Self::TooManyRequests {
                retry_after_secs: 60,
            },
            TestError::Db(e) => e.into(),
            TestError::Internal(e) => Self::Internal(e),
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_newsletters(
    _auth: Authorized<ReadNewsletters>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let q = query.map_err(ApiError::from_extractor)?.into_inner();
    let input = ListInput {
        status: q.status,
        cursor: q.cursor,
        limit: q.limit.unwrap_or(50),
    };
    let page = service::list(&state.db, input).await?;
    let items: Vec<Value> = page.items.iter().map(summary_view).collect();
    // The cursor of the next page is the last id of this one.
    let next = page
        .more
        .then(|| items.last().map(|i| i["id"].clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({ "data": items, "next_cursor": next })))
}

/// A newsletter as the list shows it: without its content.
fn summary_view(n: &Newsletter) -> Value {
    json!({
        "id": n.id, "subject": n.subject, "status": n.status, "pause_reason": n.pause_reason,
        "segment_id": n.segment_id,
        "send_at": time(n.send_at), "started_at": time(n.started_at),
        "finished_at": time(n.finished_at), "created_at": n.created_at.and_utc().to_rfc3339(),
        "updated_at": n.updated_at.and_utc().to_rfc3339(),
    })
}

pub async fn get_newsletter(
    auth: Authorized<ReadNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let report = service::get(&state.db, &auth.principal, path_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(report_view(&report)))
}

/// A draft as written in a request; every field optional for PATCH.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DraftBody {
    subject: Option<String>,
    html: Option<String>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    text: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    variants: Option<Option<BTreeMap<Language, Content>>>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    from: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    reply_to: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    segment_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    filter: Option<Option<Value>>,
}

impl From<DraftBody> for DraftInput {
    fn from(body: DraftBody) -> Self {
        Self {
            subject: body.subject,
            html: body.html,
            text: body.text,
            variants: body.variants,
            from: body.from,
            reply_to: body.reply_to,
            segment_id: body.segment_id,
            filter: body.filter,
        }
    }
}

pub async fn create_newsletter(
    auth: Authorized<WriteNewsletters>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body: DraftBody = super::large_json(&req, payload, MAX_DRAFT_BYTES).await?;
    let (db, ip) = (&state.db, auth.ip.as_deref());
    let n = service::create(db, rendering(&state), &auth.principal, ip, body.into()).await?;
    Ok(HttpResponse::Created().json(view(&n, None)))
}

pub async fn update_newsletter(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let body: DraftBody = super::large_json(&req, payload, MAX_DRAFT_BYTES).await?;
    let (db, ip) = (&state.db, auth.ip.as_deref());
    let n = service::update(db, rendering(&state), &auth.principal, ip, id, body.into()).await?;
    Ok(HttpResponse::Ok().json(view(&n, None)))
}

pub async fn delete_newsletter(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    service::delete(&state.db, &auth.principal, auth.ip.as_deref(), id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    subscriber_id: Option<String>,
    language: Option<String>,
}

/// The message one subscriber (or a sample person) would get; unsubscribe links are inert.
pub async fn preview_newsletter(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<String>,
    body: Result<super::json::Json<PreviewBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let input = PreviewInput {
        subscriber_id: body.subscriber_id,
        language: body.language,
    };
    let p = service::preview(&state.db, rendering(&state), &auth.principal, id, input).await?;
    Ok(HttpResponse::Ok().json(json!({
        "language": p.language.as_str(), "subject": p.subject, "html": p.html, "text": p.text,
        "from": p.from,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    to: Vec<String>,
    language: Option<String>,
}

/// Queues the newsletter, marked as a test, to a few staff addresses.
pub async fn test_newsletter(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<String>,
    body: Result<super::json::Json<TestBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let input = TestInput {
        to: body.to,
        language: body.language,
    };
    let outbox = TestOutbox {
        limiter: &state.test_send_limiter,
        mail_ready: &state.mail_ready,
    };
    let (who, ip) = (&auth.principal, auth.ip.as_deref());
    let queued =
        service::send_test(&state.db, rendering(&state), outbox, who, ip, id, input).await?;
    Ok(HttpResponse::Accepted().json(json!({ "queued": queued })))
}

//! Newsletter drafts: content in one or two languages, a target, previews and test sends.
//! Sending them (and pausing, resuming, cancelling) is in `sends.rs`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

use super::HandlerResult;
use crate::auth::{Authorized, ReadNewsletters, WriteNewsletters};
use crate::db::ids::NewsletterId;
use crate::domain::Language;
use crate::email::newsletter::Content;
use crate::error::ApiError;
use crate::services::newsletters::{
    self as service, DeleteError, DraftError, DraftInput, GetError, ListError, ListInput,
    PreviewError, PreviewInput, Rendering, Report, TestError, TestInput, TestOutbox,
};
use crate::state::AppState;
use crate::views::newsletters::{
    NewsletterPageView, NewsletterView, PreviewView, ProgressView, QueuedTestsView,
};

/// Largest draft request: content in up to three versions, HTML and text each up to 512 KiB.
const MAX_DRAFT_BYTES: usize = 4 * 1024 * 1024;

/// A newsletter id from the path: anything but a UUID cannot exist.
pub fn path_id(raw: &str) -> Result<NewsletterId, ApiError> {
    NewsletterId::parse(raw).ok_or(ApiError::NotFound)
}

/// A newsletter with the progress of its send when the reader may see it.
pub fn report_view(report: &Report) -> NewsletterView<'_> {
    let progress = report
        .progress
        .as_ref()
        .map(|p| ProgressView::new(p, &report.newsletter, report.read_at));
    NewsletterView::new(&report.newsletter, progress)
}

/// The settings, templates and render slots staff-side template work uses.
pub fn rendering(state: &AppState) -> Rendering<'_> {
    Rendering {
        settings: &state.settings,
        templates: &state.templates,
        render_slots: &state.render_slots,
        links: &state.engine.links,
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
    // The cursor of the next page is the last id of this one.
    let next_cursor = page
        .more
        .then(|| page.items.last().map(|n| n.id.as_str()))
        .flatten();
    Ok(HttpResponse::Ok().json(NewsletterPageView {
        data: page.items.iter().map(Into::into).collect(),
        next_cursor,
    }))
}

pub async fn get_newsletter(
    auth: Authorized<ReadNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let report = service::get(&state.db, &auth.principal, path_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(report_view(&report)))
}

#[derive(Deserialize)]
pub struct ResultsQuery {
    #[serde(default)]
    format: Option<String>,
}

impl From<crate::services::newsletters::ResultsError> for ApiError {
    fn from(e: crate::services::newsletters::ResultsError) -> Self {
        use crate::services::newsletters::ResultsError;
        match e {
            ResultsError::NotFound => Self::NotFound,
            ResultsError::Db(e) => e.into(),
        }
    }
}

/// What a newsletter achieved, without tracking anyone: counts from the delivery ledger and of
/// what people did through its links, by language and hour; small counts are not given exactly.
/// `?format=csv` for a spreadsheet.
pub async fn newsletter_results(
    _auth: Authorized<ReadNewsletters>,
    id: web::Path<String>,
    query: web::Query<ResultsQuery>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::field("format", "must be json or csv")),
    };
    let results = service::results(&state.db, path_id(&id)?).await?;
    let threshold = state.settings.results_min_count;
    if csv {
        let body = crate::routes::results::csv(&results, threshold).map_err(ApiError::Internal)?;
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                actix_web::http::header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"results-{}.csv\"",
                    results.newsletter.id.as_str()
                ),
            ))
            .body(body));
    }
    Ok(
        HttpResponse::Ok().json(crate::sending::results::ResultsView::new(
            &results, threshold,
        )),
    )
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
    preheader: Option<Option<String>>,
    count_clicks: Option<bool>,
    archived: Option<bool>,
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
            preheader: body.preheader,
            count_clicks: body.count_clicks,
            archived: body.archived,
            variants: body.variants,
            from: body.from,
            reply_to: body.reply_to,
            segment_id: body.segment_id,
            filter: body.filter,
            read_version: None,
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
    Ok(HttpResponse::Created().json(NewsletterView::new(&n, None)))
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
    Ok(HttpResponse::Ok().json(NewsletterView::new(&n, None)))
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
        email: None,
        language: body.language,
    };
    let p = service::preview(&state.db, rendering(&state), &auth.principal, id, input).await?;
    Ok(HttpResponse::Ok().json(PreviewView {
        from: &p.from,
        html: &p.html,
        language: p.language.as_str(),
        subject: &p.subject,
        text: &p.text,
    }))
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
    Ok(HttpResponse::Accepted().json(QueuedTestsView { queued }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedBody {
    archived: bool,
}

/// Publishes a newsletter in the public archive or withdraws it, whatever its state (drafts
/// too); a sent one is public, or gone, at once. Answers the newsletter.
pub async fn set_newsletter_archived(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<String>,
    body: Result<super::json::Json<ArchivedBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let (who, ip) = (&auth.principal, auth.ip.as_deref());
    crate::services::archive::set_archived(&state.db, who, ip, id.clone(), body.archived).await?;
    Ok(HttpResponse::Ok().json(report_view(&service::get(&state.db, who, id).await?)))
}

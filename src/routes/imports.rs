//! Imports for staff: upload a CSV (the body) with options in the query string, then follow the
//! job's progress and per-row report.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::HandlerResult;
use crate::auth::{Authorized, Policy, Role, Scope, WriteContacts};
use crate::db::ids::ImportId;
use crate::error::{ApiError, FieldErrors};
use crate::imports::plan::Plan;
use crate::services::imports::{self as service, CancelImportError, CreateImportError};
use crate::state::AppState;
use crate::views::imports::ImportView;
use crate::views::BeforePage;

impl From<CreateImportError> for ApiError {
    fn from(e: CreateImportError) -> Self {
        match e {
            CreateImportError::Invalid(errors) => Self::Validation(errors),
            CreateImportError::Db(e) => e.into(),
            CreateImportError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<CancelImportError> for ApiError {
    fn from(e: CancelImportError) -> Self {
        match e {
            CancelImportError::NotFound => Self::NotFound,
            e @ CancelImportError::Ended { .. } => Self::Conflict(e.to_string()),
            CancelImportError::Db(e) => e.into(),
        }
    }
}

/// Reading import reports: every role, or a key that may read or write contacts (a script that
/// imports follows its own import).
pub struct ReadImports;
impl Policy for ReadImports {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Editor, Role::Viewer];
    const SCOPE: Option<Scope> = Some(Scope::SubscribersWrite);
    const ALSO: &'static [Scope] = &[Scope::SubscribersRead];
}

const MAX_PROBLEMS: i64 = 1000;

/// The import with one page of its report.
fn report_view(report: &service::ImportReport) -> ImportView<'_> {
    let page = (
        report.problems.as_slice(),
        report.problems_total,
        report.problems_offset,
    );
    ImportView::new(
        &report.import,
        Plan::summary_of(&report.import.plan),
        Some(page),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateQuery {
    mode: Option<String>,
    source: Option<String>,
    consent_note: Option<String>,
    language: Option<String>,
    interests: Option<String>,
    #[serde(default)]
    map: Vec<String>,
    delimiter: Option<String>,
}

/// The import's options from the query string, checked before the file is read.
fn parse_query(raw: &str) -> Result<service::CheckedRequest, ApiError> {
    let q: CreateQuery =
        serde_html_form::from_str(raw).map_err(|e| ApiError::field("query", format!("{e}")))?;
    let request = service::ImportRequest {
        mode: q.mode,
        source: q.source,
        consent_note: q.consent_note,
        language: q.language,
        interests: q.interests,
        map: q.map,
        delimiter: q.delimiter,
    };
    request.check().map_err(ApiError::Validation)
}

/// Checks the body's declared type: CSV, in UTF-8 when a charset is named.
fn check_media_type(req: &HttpRequest) -> Result<(), ApiError> {
    let raw = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut parts = raw.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    if !matches!(media, "text/csv" | "application/csv") {
        return Err(ApiError::UnsupportedMediaType(
            "send the CSV file itself as the body, with Content-Type: text/csv".into(),
        ));
    }
    let charset = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim() == "charset")
        .map(|(_, v)| v.trim().trim_matches('"').to_owned());
    if charset.is_some_and(|c| c != "utf-8" && c != "utf8") {
        return Err(ApiError::UnsupportedMediaType(
            "the file must be UTF-8: save the sheet as \"CSV UTF-8\"".into(),
        ));
    }
    Ok(())
}

/// `POST /api/v1/imports`: checks the whole file, stores it with the import and queues the job
/// (one transaction); 202 with Location. Nothing is stored when anything is wrong.
pub async fn create_import(
    auth: Authorized<WriteContacts>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HandlerResult {
    check_media_type(&req)?;
    let request = parse_query(req.query_string())?;
    let body = read_file(&req, payload, state.settings.import_max_bytes).await?;
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let import = service::create(
        &state.db,
        &state.task_ready,
        actor,
        ip,
        request,
        body.to_vec(),
    )
    .await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            header::LOCATION,
            format!(
                "{}/api/v1/imports/{}",
                super::base_path::BasePath::of(&state.settings.public_url).0,
                import.id
            ),
        ))
        .json(ImportView::new(
            &import,
            Plan::summary_of(&import.plan),
            Some((&[], 0, 0)),
        )))
}

/// The uploaded file, refused before reading when it says it is larger than `limit`.
async fn read_file(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(limit))?
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    problems_offset: Option<i64>,
    problems_limit: Option<i64>,
}

/// `GET /api/v1/imports/{id}`: progress, counts and one page of the per-row report.
pub async fn get_import(
    _auth: Authorized<ReadImports>,
    id: web::Path<uuid::Uuid>,
    query: Result<web::Query<ReportQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let (offset, limit) = report_page(query.map_err(ApiError::from_extractor)?.into_inner())?;
    let report = service::get(&state.db, ImportId::from(id.into_inner()), offset, limit)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(report_view(&report)))
}

/// The page of the report asked for (offset, limit), as sent.
fn report_page(q: ReportQuery) -> Result<(i64, i64), ApiError> {
    let mut errors = FieldErrors::new();
    let offset = q.problems_offset.unwrap_or(0);
    let limit = q.problems_limit.unwrap_or(service::DEFAULT_PROBLEMS);
    if offset < 0 {
        errors.add("problems_offset", "must be 0 or more");
    }
    if !(1..=MAX_PROBLEMS).contains(&limit) {
        errors.add(
            "problems_limit",
            format!("must be between 1 and {MAX_PROBLEMS}"),
        );
    }
    errors.into_result().map_err(ApiError::Validation)?;
    Ok((offset, limit))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    before: Option<String>,
    limit: Option<i64>,
}

/// Where a page of imports starts and how long it is, as sent.
fn list_page(q: ListQuery) -> Result<(Option<String>, i64), ApiError> {
    let limit = q.limit.unwrap_or(20);
    let mut errors = FieldErrors::new();
    if !(1..=100).contains(&limit) {
        errors.add("limit", "must be between 1 and 100");
    }
    let before = q.before.as_deref().map(super::hyphenated_uuid);
    if before.as_ref().is_some_and(Option::is_none) {
        errors.add("before", "must be the `next` of a previous page");
    }
    errors.into_result().map_err(ApiError::Validation)?;
    Ok((before.flatten(), limit))
}

/// `GET /api/v1/imports`: recent imports, newest first, without their reports.
pub async fn list_imports(
    _auth: Authorized<ReadImports>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let (before, limit) = list_page(query.map_err(ApiError::from_extractor)?.into_inner())?;
    let rows = service::list(&state.db, before, limit).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|i| i.id.as_str()))
        .flatten();
    Ok(HttpResponse::Ok().json(BeforePage {
        data: rows
            .iter()
            .map(|i| ImportView::new(i, Plan::summary_of(&i.plan), None))
            .collect(),
        next,
    }))
}

/// `POST /api/v1/imports/{id}/cancel`: stops an import that has not finished. Rows already
/// imported stay (and confirmation mails already queued for them go out); the rest of the file
/// is deleted.
pub async fn cancel_import(
    auth: Authorized<WriteContacts>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let report = service::cancel(&state.db, actor, ip, ImportId::from(id.into_inner())).await?;
    Ok(HttpResponse::Ok().json(report_view(&report)))
}

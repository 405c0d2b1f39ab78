//! Imports for staff: upload a CSV (the body) with options in the query string, then follow the
//! job's progress and per-row report.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::HandlerResult;
use crate::auth::{Authorized, Policy, Principal, Role, WriteContacts};
use crate::db::imports::{self as store, Import, ImportPart};
use crate::db::{self, DbError};
use crate::domain::{InterestSlug, Language};
use crate::error::{ApiError, FieldErrors};
use crate::imports::plan::{self, Catalog, Options, Plan};
use crate::imports::{import_job, Mode};
use crate::startup::AppState;

/// Reading import reports: every role, or a key that may read or write contacts (a script that
/// imports follows its own import).
pub struct ReadImports;
impl Policy for ReadImports {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Editor, Role::Viewer];
    const SCOPE: Option<&'static str> = Some("subscribers:write");
    const ALSO: &'static [&'static str] = &["subscribers:read"];
}

const MAX_TEXT_CHARS: usize = 500;
const DEFAULT_PROBLEMS: i64 = 100;
const MAX_PROBLEMS: i64 = 1000;

fn time(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The import as the API shows it; `problems` is one page of the report, when asked for.
fn view(import: &Import, problems: Option<(Vec<store::ImportProblem>, i64, i64)>) -> Value {
    let plan: Option<Plan> = serde_json::from_str(&import.plan).ok();
    let counts = import.counts();
    let (actor_type, actor_id) = import
        .created_by
        .split_once(':')
        .unwrap_or((import.created_by.as_str(), ""));
    let mut view = json!({
        "id": import.id,
        "status": import.status,
        "mode": import.mode,
        "source": import.source,
        "consent_note": import.consent_note,
        "language": plan.as_ref().map(|p| p.language.as_str()),
        "interests": plan.as_ref().map(|p| &p.interests),
        "columns": plan.as_ref().map(|p| p.columns.iter().map(|c| json!({
            "column": c.header,
            "field": c.field.label(),
        })).collect::<Vec<_>>()),
        "file": serde_json::from_str::<Value>(&import.file).unwrap_or(Value::Null),
        "counts": {
            "rows": import.total_rows,
            "processed": counts.processed(),
            "created": counts.created,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "skipped": counts.skipped,
            "failed": counts.failed,
        },
        "error": import.error,
        "created_by": {"type": actor_type, "id": actor_id},
        "created_at": time(import.created_at),
        "started_at": import.started_at.map(time),
        "finished_at": import.finished_at.map(time),
    });
    if let Some((rows, total, offset)) = problems {
        let next = offset + rows.len() as i64;
        view["problems"] = rows
            .iter()
            .map(|p| {
                json!({
                    "line": p.line,
                    "column": p.column_name,
                    "outcome": p.outcome,
                    "problem": p.problem,
                })
            })
            .collect();
        view["problems_total"] = total.into();
        view["next_problems_offset"] = if next < total {
            next.into()
        } else {
            Value::Null
        };
    }
    view
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

/// The request's options, checked; what needs the database (interests, fields) comes later.
struct Request {
    mode: Mode,
    source: Option<String>,
    consent_note: Option<String>,
    options: Options,
}

fn parse_query(raw: &str) -> Result<Request, ApiError> {
    let q: CreateQuery =
        serde_html_form::from_str(raw).map_err(|e| ApiError::field("query", format!("{e}")))?;
    let mut errors = FieldErrors::new();
    let mut bad =
        |field: &str, message: String| errors.entry(field.into()).or_default().push(message);
    let text = |raw: Option<String>| raw.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let valid_text =
        |s: &str| s.chars().count() <= MAX_TEXT_CHARS && !s.chars().any(char::is_control);
    let mode = match q.mode.as_deref() {
        None => {
            bad("mode", "is required: consented (they agreed elsewhere; give source and consent_note) or confirm (each new person gets a confirmation mail)".into());
            None
        }
        Some(raw) => {
            let mode = Mode::parse(raw);
            if mode.is_none() {
                bad("mode", "must be consented or confirm".into());
            }
            mode
        }
    };
    let source = text(q.source);
    let consent_note = text(q.consent_note);
    if source.as_deref().is_some_and(|s| !valid_text(s)) {
        bad(
            "source",
            "must be at most 500 characters on one line".into(),
        );
    }
    if consent_note.as_deref().is_some_and(|s| !valid_text(s)) {
        bad(
            "consent_note",
            "must be at most 500 characters on one line".into(),
        );
    }
    if mode == Some(Mode::Consented) {
        if source.is_none() {
            bad("source", "is required with mode=consented: where these people agreed (a sign-up sheet, an event, a form)".into());
        }
        if consent_note.is_none() {
            bad(
                "consent_note",
                "is required with mode=consented: what they agreed to and how, kept as evidence"
                    .into(),
            );
        }
    }
    if mode == Some(Mode::Confirm) && consent_note.is_some() {
        bad("consent_note", "goes with mode=consented only: in confirm mode each person gives consent by confirming".into());
    }
    let language = match q.language.as_deref() {
        None => Language::En,
        Some(raw) => Language::parse(raw).unwrap_or_else(|e| {
            bad("language", e.into());
            Language::En
        }),
    };
    let mut interests = Vec::new();
    for raw in q
        .interests
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match InterestSlug::parse(raw) {
            Ok(slug) if !interests.contains(&slug) => interests.push(slug),
            Ok(_) => {}
            Err(e) => bad("interests", format!("\"{raw}\" {e}")),
        }
    }
    let mut map = Vec::new();
    for raw in &q.map {
        match raw.rsplit_once(':') {
            Some((column, field)) => map.push((column.to_owned(), field.to_owned())),
            None => bad("map", format!("\"{raw}\" must look like <column>:<field>")),
        }
    }
    let delimiter = match q.delimiter.as_deref() {
        None => None,
        Some(",") => Some(b','),
        Some(";") => Some(b';'),
        Some("tab" | "\t") => Some(b'\t'),
        Some(_) => {
            bad("delimiter", "must be , or ; or tab".into());
            None
        }
    };
    match mode {
        Some(mode) if errors.is_empty() => Ok(Request {
            mode,
            source,
            consent_note,
            options: Options {
                language,
                interests,
                map,
                delimiter,
            },
        }),
        _ => Err(ApiError::Validation(errors)),
    }
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
    let limit = state.settings.import_max_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let body = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(limit))?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;

    let catalog = state
        .db
        .run(|conn| -> Result<_, DbError> {
            Ok(Catalog {
                interests: db::interests::list_interests(conn)?
                    .into_iter()
                    .map(|i| i.slug)
                    .collect(),
                fields: db::interests::list_field_declarations(conn)?,
            })
        })
        .await?;
    let unknown: Vec<&str> = request
        .options
        .interests
        .iter()
        .map(InterestSlug::as_str)
        .filter(|slug| !catalog.interests.iter().any(|i| i == slug))
        .collect();
    let mut refusal = FieldErrors::new();
    if !unknown.is_empty() {
        refusal.insert(
            "interests".into(),
            vec![format!("unknown interest: {}", unknown.join(", "))],
        );
    }
    // Reading a large file is CPU work: off the async threads.
    let Request {
        mode,
        source,
        consent_note,
        options,
    } = request;
    let prepared = tokio::task::spawn_blocking(move || plan::prepare(&body, &options, &catalog))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let prepared = match prepared {
        Ok(p) if refusal.is_empty() => p,
        Ok(_) => return Err(ApiError::Validation(refusal)),
        Err(errors) => {
            refusal.extend(errors);
            return Err(ApiError::Validation(refusal));
        }
    };

    let now = db::now();
    let created_by = match &auth.principal {
        Principal::Staff { id, .. } => format!("staff:{id}"),
        Principal::ApiKey { id, .. } => format!("api_key:{id}"),
    };
    let import = Import {
        id: db::new_id(),
        status: store::QUEUED.into(),
        mode: mode.as_str().into(),
        source,
        consent_note,
        plan: serde_json::to_string(&prepared.plan).map_err(|e| ApiError::Internal(e.into()))?,
        file: json!({"bytes": prepared.bytes, "sha256": prepared.sha256}).to_string(),
        total_rows: prepared.rows,
        parts: prepared.parts.len() as i64,
        next_part: 0,
        counts: serde_json::to_string(&store::Counts::default()).unwrap_or_default(),
        error: None,
        created_by,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    let parts: Vec<ImportPart> = prepared
        .parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| ImportPart {
            import_id: import.id.clone(),
            part: i as i64,
            first_line: p.first_line,
            body: p.body,
            duplicates: serde_json::to_string(&p.duplicates).unwrap_or_else(|_| "[]".into()),
        })
        .collect();
    let stored = import.clone();
    state
        .db
        .transaction(move |conn| -> Result<(), DbError> {
            store::insert_import(conn, &stored, &parts)?;
            db::jobs::insert_job(conn, &import_job(&stored.id, now))?;
            auth.audit(conn, "import.create", "import", Some(&stored.id))?;
            Ok(())
        })
        .await?;
    state.task_ready.notify_one();
    tracing::info!(import_id = %import.id, rows = import.total_rows, mode = %import.mode, "import queued");
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/imports/{}", import.id)))
        .json(view(&import, Some((Vec::new(), 0, 0)))))
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
    let q = query.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = FieldErrors::new();
    let offset = q.problems_offset.unwrap_or(0);
    let limit = q.problems_limit.unwrap_or(DEFAULT_PROBLEMS);
    if offset < 0 {
        errors
            .entry("problems_offset".into())
            .or_default()
            .push("must be 0 or more".into());
    }
    if !(1..=MAX_PROBLEMS).contains(&limit) {
        errors
            .entry("problems_limit".into())
            .or_default()
            .push(format!("must be between 1 and {MAX_PROBLEMS}"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let id = id.into_inner().to_string();
    let found = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            let Some(import) = store::find_import(conn, &id)? else {
                return Ok(None);
            };
            let total = store::count_problems(conn, &id)?;
            let page = store::list_problems(conn, &id, offset, limit)?;
            Ok(Some(view(&import, Some((page, total, offset)))))
        })
        .await?;
    found
        .map(|v| HttpResponse::Ok().json(v))
        .ok_or(ApiError::NotFound)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    before: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/imports`: recent imports, newest first, without their reports.
pub async fn list_imports(
    _auth: Authorized<ReadImports>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let q = query.map_err(ApiError::from_extractor)?.into_inner();
    let limit = q.limit.unwrap_or(20);
    let mut errors = FieldErrors::new();
    if !(1..=100).contains(&limit) {
        errors
            .entry("limit".into())
            .or_default()
            .push("must be between 1 and 100".into());
    }
    let before = q.before.as_deref().map(super::hyphenated_uuid);
    if before.as_ref().is_some_and(Option::is_none) {
        errors
            .entry("before".into())
            .or_default()
            .push("must be the `next` of a previous page".into());
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let rows = state
        .db
        .run(move |conn| {
            store::list_imports(conn, before.flatten().as_deref(), limit).map_err(DbError::from)
        })
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|i| i.id.clone()))
        .flatten();
    let data: Vec<Value> = rows.iter().map(|i| view(i, None)).collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data, "next": next })))
}

/// `POST /api/v1/imports/{id}/cancel`: stops an import that has not finished. Rows already
/// imported stay (and confirmation mails already queued for them go out); the rest of the file
/// is deleted.
pub async fn cancel_import(
    auth: Authorized<WriteContacts>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = id.into_inner().to_string();
    let logged = id.clone();
    let outcome = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            let Some(import) = store::find_import(conn, &id)? else {
                return Ok(None);
            };
            if !store::cancel_import(conn, &id, db::now())? {
                return Ok(Some(Err(import.status)));
            }
            auth.audit(conn, "import.cancel", "import", Some(&id))?;
            let import = store::find_import(conn, &id)?;
            let total = store::count_problems(conn, &id)?;
            let page = store::list_problems(conn, &id, 0, DEFAULT_PROBLEMS)?;
            Ok(Some(Ok(import.map(|i| view(&i, Some((page, total, 0)))))))
        })
        .await?;
    match outcome {
        None | Some(Ok(None)) => Err(ApiError::NotFound),
        Some(Err(status)) => Err(ApiError::Conflict(format!(
            "the import has already ended ({status})"
        ))),
        Some(Ok(Some(view))) => {
            tracing::info!(import_id = %logged, "import cancelled");
            Ok(HttpResponse::Ok().json(view))
        }
    }
}

//! Imports: upload a CSV file, choose what each of its columns holds, say what the people in it
//! agreed to, then follow the import's progress and read (or download) its per-row report.
//!
//! The upload is kept in the data folder (`services::imports::staged`) between the two steps;
//! the import itself is created by the same use case as `POST /api/v1/imports`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::{context, Value};
use serde::Deserialize;

use super::frame::{self, Console, Posted, Signed};
use super::Access;
use crate::auth::{Principal, WriteContacts};
use crate::db::ids::ImportId;
use crate::domain::FieldErrors;
use crate::imports::plan::{Catalog, Plan};
use crate::routes::imports::ReadImports;
use crate::services::imports::{self as service, staged, CancelImportError, CreateImportError};
use crate::views::imports::ImportView;

/// Imports listed on the imports page.
const LISTED: i64 = 50;
/// Report lines per page.
const REPORT_PAGE: i64 = 50;
/// Report lines read from the database at a time for a download.
const DOWNLOAD_CHUNK: i64 = 1000;
/// What a multipart upload may add to the file itself (the form's other fields, boundaries).
const FORM_OVERHEAD: usize = 64 * 1024;

fn may_write(principal: &Principal) -> bool {
    match principal {
        Principal::Staff { role, .. } => Access::Editor.allows(*role),
        Principal::ApiKey { .. } => false,
    }
}

fn no_errors() -> Value {
    Value::from(())
}

// ---------------------------------------------------------------------------------------------
// The list and the upload form

async fn list_page(console: &Console, status: StatusCode, errors: Value) -> HttpResponse {
    listed(console, status, errors, None).await
}

/// The imports page: the upload form, and imports older than `before` (the newest first).
async fn listed(
    console: &Console,
    status: StatusCode,
    errors: Value,
    before: Option<String>,
) -> HttpResponse {
    let imports = match service::list(&console.state.db, before.clone(), LISTED).await {
        Ok(imports) => imports,
        Err(e) => return console.internal(e),
    };
    let rows: Vec<Value> = imports
        .iter()
        .map(|i| Value::from_serialize(ImportView::new(i, Plan::summary_of(&i.plan), None)))
        .collect();
    let max_bytes = console.state.settings.import_max_bytes;
    console.page(
        status,
        "imports/list",
        context! {
            imports => rows,
            older => (imports.len() as i64 == LISTED).then(|| imports.last().map(|i| i.id.to_string())).flatten(),
            paged => before.is_some(),
            may_write => may_write(&console.principal),
            errors => errors,
            max_mb => format!("{:.1}", max_bytes as f64 / (1024.0 * 1024.0)),
        },
    )
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    before: Option<String>,
}

pub async fn list(signed: Signed<ReadImports>, query: web::Query<ListQuery>) -> HttpResponse {
    let before = query
        .before
        .as_deref()
        .and_then(|b| uuid::Uuid::parse_str(b).ok())
        .map(|b| b.hyphenated().to_string());
    listed(&signed.console, StatusCode::OK, no_errors(), before).await
}

/// One part of a `multipart/form-data` body.
struct FormPart<'a> {
    name: String,
    data: &'a [u8],
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() || from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The boundary a `multipart/form-data` content type names.
fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// The parts of a `multipart/form-data` body (RFC 7578); `None` when it is not well formed.
fn multipart<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<FormPart<'a>>> {
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let mut at = find(body, delimiter.as_bytes(), 0)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            return Some(parts);
        }
        at = at
            .checked_add(2)
            .filter(|_| body[at..].starts_with(b"\r\n"))?;
        let head_end = find(body, b"\r\n\r\n", at)?;
        let head = std::str::from_utf8(&body[at..head_end]).ok()?;
        let disposition = head
            .split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
        let name = disposition
            .split(';')
            .map(str::trim)
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("name"))
            .map(|(_, v)| v.trim().trim_matches('"').to_owned())?;
        let data_start = head_end + 4;
        let data_end = find(body, next_delimiter.as_bytes(), data_start)?;
        parts.push(FormPart {
            name,
            data: &body[data_start..data_end],
        });
        at = data_end + next_delimiter.len();
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// Reads the request's body, at most `limit` bytes; `None` when it is larger.
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Option<web::Bytes>, actix_web::Error> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(None);
    }
    match payload.to_bytes_limited(limit).await {
        Ok(body) => Ok(Some(body?)),
        Err(_) => Ok(None),
    }
}

/// `POST /imports/upload` (multipart): checks the form's token, then the file (its size, that
/// it is UTF-8 CSV with a header row), keeps it and shows its columns.
pub async fn upload(
    signed: Signed<WriteContacts>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let console = &signed.console;
    let max_bytes = console.state.settings.import_max_bytes;
    let too_large = || {
        let errors = FieldErrors::one("file", "is larger than the import limit");
        list_page(
            console,
            StatusCode::PAYLOAD_TOO_LARGE,
            console.field_errors(&errors),
        )
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match read_body(&req, payload, max_bytes.saturating_add(FORM_OVERHEAD)).await {
        Ok(Some(body)) => body,
        Ok(None) => return too_large().await,
        Err(_) => return console.error(StatusCode::BAD_REQUEST, "bad_form"),
    };
    let Some(boundary) = boundary(&content_type) else {
        // Not an upload (a form sent without its file): the token still decides first.
        let token = serde_html_form::from_bytes::<CsrfOnly>(&body)
            .map(|c| c.csrf)
            .unwrap_or_default();
        if !frame::csrf_matches(&console.session, &token) {
            return console.error(StatusCode::FORBIDDEN, "csrf");
        }
        let errors = FieldErrors::one("file", "choose a CSV file to upload");
        return list_page(
            console,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            console.field_errors(&errors),
        )
        .await;
    };
    let Some(parts) = multipart(&body, &boundary) else {
        return console.error(StatusCode::BAD_REQUEST, "bad_form");
    };
    let token = parts
        .iter()
        .find(|p| p.name == frame::CSRF_FIELD)
        .and_then(|p| std::str::from_utf8(p.data).ok())
        .unwrap_or_default();
    if !frame::csrf_matches(&console.session, token) {
        return console.error(StatusCode::FORBIDDEN, "csrf");
    }
    let file = parts.iter().find(|p| p.name == "file").map(|p| p.data);
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        let errors = FieldErrors::one("file", "choose a CSV file to upload");
        return list_page(
            console,
            StatusCode::UNPROCESSABLE_ENTITY,
            console.field_errors(&errors),
        )
        .await;
    };
    if file.len() > max_bytes {
        return too_large().await;
    }
    let catalog = match service::catalog(&console.state.db).await {
        Ok(catalog) => catalog,
        Err(e) => return console.internal(e),
    };
    if let Err(errors) = service::detect_columns(file, &catalog) {
        return list_page(
            console,
            StatusCode::UNPROCESSABLE_ENTITY,
            console.field_errors(&errors),
        )
        .await;
    }
    let owner = console.session.member.id.as_str().to_owned();
    let data_dir = console.state.settings.data_dir.clone();
    match staged::keep(data_dir, owner, file.to_vec()).await {
        Ok(id) => console.redirect(&format!("/imports/new/{id}"), None),
        Err(e) => console.internal(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Choosing what each column holds, and what the people agreed to

/// What the mapping form says (also what it said, when it is shown again with errors).
#[derive(Default, serde::Serialize)]
struct Choices {
    /// The field chosen for each column, by position.
    fields: Vec<String>,
    mode: String,
    source: String,
    consent_note: String,
    language: String,
    interests: Vec<String>,
}

/// The Enlace fields a column may fill: (value, custom field key if one).
fn targets(catalog: &Catalog) -> Vec<Value> {
    let mut out: Vec<Value> = ["email", "name", "language", "interests"]
        .iter()
        .map(|f| context! { value => f, builtin => f, key => () })
        .collect();
    out.extend(catalog.fields.iter().map(|f| {
        context! { value => format!("attributes.{}", f.key), builtin => (), key => &f.key }
    }));
    out.push(context! { value => "ignore", builtin => "ignore", key => () });
    out
}

async fn staged_file(console: &Console, upload: &str) -> Result<Option<Vec<u8>>, HttpResponse> {
    let owner = console.session.member.id.as_str();
    staged::read(&console.state.settings.data_dir, owner, upload)
        .await
        .map_err(|e| console.internal(e))
}

async fn map_page(
    console: &Console,
    status: StatusCode,
    upload: &str,
    file: &[u8],
    choices: Option<Choices>,
    errors: Value,
) -> HttpResponse {
    let catalog = match service::catalog(&console.state.db).await {
        Ok(catalog) => catalog,
        Err(e) => return console.internal(e),
    };
    let detected = match service::detect_columns(file, &catalog) {
        Ok(columns) => columns,
        // The file was checked when it was uploaded: the catalog cannot make it unreadable.
        Err(errors) => {
            return list_page(
                console,
                StatusCode::UNPROCESSABLE_ENTITY,
                console.field_errors(&errors),
            )
            .await
        }
    };
    let choices = choices.unwrap_or_else(|| Choices {
        fields: detected
            .iter()
            .map(|(_, f)| f.clone().unwrap_or_else(|| "ignore".into()))
            .collect(),
        language: console.language.as_str().to_owned(),
        ..Choices::default()
    });
    let columns: Vec<Value> = detected
        .iter()
        .enumerate()
        .map(|(i, (header, suggested))| {
            context! {
                index => i,
                header => header,
                suggested => suggested.is_some(),
                chosen => choices.fields.get(i).cloned().unwrap_or_else(|| "ignore".into()),
            }
        })
        .collect();
    console.page(
        status,
        "imports/map",
        context! {
            upload => upload,
            columns => columns,
            targets => targets(&catalog),
            interests => &catalog.interests,
            choices => Value::from_serialize(&choices),
            errors => errors,
        },
    )
}

pub async fn new(signed: Signed<WriteContacts>, upload: web::Path<String>) -> HttpResponse {
    let console = &signed.console;
    match staged_file(console, &upload).await {
        Ok(Some(file)) => {
            map_page(console, StatusCode::OK, &upload, &file, None, no_errors()).await
        }
        Ok(None) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(response) => response,
    }
}

/// The mapping form again, with what was chosen and why it was refused.
async fn refused(
    console: &Console,
    upload: &str,
    file: &[u8],
    errors: FieldErrors,
    choices: Choices,
) -> HttpResponse {
    let errors = console.field_errors(&errors);
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    map_page(console, status, upload, file, Some(choices), errors).await
}

/// `POST /imports/new/{upload}`: creates the import from the kept file with the columns and
/// consent chosen (the same use case as the API), then shows its progress.
pub async fn start(
    posted: Posted<WriteContacts, Vec<(String, String)>>,
    upload: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let file = match staged_file(console, &upload).await {
        Ok(Some(file)) => file,
        Ok(None) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(response) => return response,
    };
    let catalog = match service::catalog(&console.state.db).await {
        Ok(catalog) => catalog,
        Err(e) => return console.internal(e),
    };
    let headers: Vec<String> = match service::detect_columns(&file, &catalog) {
        Ok(columns) => columns.into_iter().map(|(h, _)| h).collect(),
        Err(errors) => {
            return list_page(
                console,
                StatusCode::UNPROCESSABLE_ENTITY,
                console.field_errors(&errors),
            )
            .await
        }
    };
    let mut choices = Choices {
        fields: vec!["ignore".into(); headers.len()],
        ..Choices::default()
    };
    for (key, value) in posted.form {
        match key.as_str() {
            "mode" => choices.mode = value,
            "source" => choices.source = value,
            "consent_note" => choices.consent_note = value,
            "language" => choices.language = value,
            "interests" => choices.interests.push(value),
            other => {
                let index = other
                    .strip_prefix("column-")
                    .and_then(|i| i.parse::<usize>().ok());
                if let Some(slot) = index.and_then(|i| choices.fields.get_mut(i)) {
                    *slot = value;
                }
            }
        }
    }
    let text = |s: &str| Some(s.to_owned()).filter(|s| !s.trim().is_empty());
    let request = service::ImportRequest {
        mode: text(&choices.mode),
        source: text(&choices.source),
        // The evidence goes with consent given elsewhere only; in confirm mode it is not sent.
        consent_note: text(&choices.consent_note).filter(|_| choices.mode != "confirm"),
        language: text(&choices.language),
        interests: Some(choices.interests.join(",")),
        map: headers
            .iter()
            .zip(&choices.fields)
            .map(|(header, field)| format!("{header}:{field}"))
            .collect(),
        delimiter: None,
    };
    let checked = match request.check() {
        Ok(checked) => checked,
        Err(errors) => return refused(console, &upload, &file, errors, choices).await,
    };
    let state = &console.state;
    let created = service::create(
        &state.db,
        &state.task_ready,
        &console.principal,
        console.ip.as_deref(),
        checked,
        file.clone(),
    )
    .await;
    match created {
        Ok(import) => {
            staged::forget(
                &state.settings.data_dir,
                console.session.member.id.as_str(),
                &upload,
            )
            .await;
            console.redirect(&format!("/imports/{}", import.id), Some("started"))
        }
        Err(CreateImportError::Invalid(errors)) => {
            refused(console, &upload, &file, errors, choices).await
        }
        Err(e) => console.internal(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Progress and the report

#[derive(Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    offset: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

fn import_id(raw: &str) -> Option<ImportId> {
    uuid::Uuid::parse_str(raw).ok().map(ImportId::from)
}

pub async fn show(
    signed: Signed<ReadImports>,
    id: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> HttpResponse {
    let console = &signed.console;
    let Some(id) = import_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let offset = query
        .offset
        .as_deref()
        .and_then(|o| o.parse::<i64>().ok())
        .filter(|o| *o >= 0)
        .unwrap_or(0);
    let report = match service::get(&console.state.db, id, offset, REPORT_PAGE).await {
        Ok(Some(report)) => report,
        Ok(None) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    let page = (
        report.problems.as_slice(),
        report.problems_total,
        report.problems_offset,
    );
    let view = ImportView::new(
        &report.import,
        Plan::summary_of(&report.import.plan),
        Some(page),
    );
    let templates = &console.state.templates;
    let problems: Vec<Value> = report
        .problems
        .iter()
        .map(|p| {
            context! {
                line => p.line,
                column => p.column_name.as_deref(),
                outcome => &p.outcome,
                problem => templates.console_message(console.language, &p.problem),
            }
        })
        .collect();
    let running = matches!(view.status, "queued" | "running");
    let previous = (offset > 0).then(|| (offset - REPORT_PAGE).max(0));
    let shown_to = offset + report.problems.len() as i64;
    console.page(
        StatusCode::OK,
        "imports/show",
        context! {
            import => Value::from_serialize(&view),
            problems => problems,
            running => running,
            notice_key => query.notice.as_deref().filter(|n| matches!(*n, "started" | "cancelled" | "already_ended")),
            may_write => may_write(&console.principal),
            offset => offset,
            shown_from => offset + 1,
            shown_to => shown_to,
            previous => previous,
            next => (shown_to < report.problems_total).then_some(shown_to),
        },
    )
}

#[derive(Deserialize)]
pub struct CancelForm {}

/// `POST /imports/{id}/cancel`: stops an import that has not finished (the same use case as
/// the API); rows already imported stay.
pub async fn cancel(
    posted: Posted<WriteContacts, CancelForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = import_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let path = format!("/imports/{id}");
    match service::cancel(
        &console.state.db,
        &console.principal,
        console.ip.as_deref(),
        id,
    )
    .await
    {
        Ok(_) => console.redirect(&path, Some("cancelled")),
        Err(CancelImportError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        // It ended meanwhile: its page says how.
        Err(CancelImportError::Ended { .. }) => console.redirect(&path, Some("already_ended")),
        Err(e) => console.internal(e),
    }
}

/// A report cell as a spreadsheet will not run it as a formula.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// `GET /imports/{id}/report.csv`: the whole per-row report as a CSV file.
pub async fn download(signed: Signed<ReadImports>, id: web::Path<String>) -> HttpResponse {
    let console = &signed.console;
    let Some(id) = import_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = ["line", "column", "outcome", "problem"];
    if let Err(e) = out.write_record(header) {
        return console.internal(e);
    }
    let mut offset = 0;
    loop {
        let report = match service::get(&console.state.db, id.clone(), offset, DOWNLOAD_CHUNK).await
        {
            Ok(Some(report)) => report,
            Ok(None) => return console.error(StatusCode::NOT_FOUND, "not_found"),
            Err(e) => return console.internal(e),
        };
        for p in &report.problems {
            let record = [
                p.line.to_string(),
                cell(p.column_name.as_deref().unwrap_or_default()),
                cell(&p.outcome),
                cell(&p.problem),
            ];
            if let Err(e) = out.write_record(&record) {
                return console.internal(e);
            }
        }
        offset += report.problems.len() as i64;
        if report.problems.is_empty() || offset >= report.problems_total {
            break;
        }
    }
    let body = match out.into_inner() {
        Ok(body) => body,
        Err(e) => return console.internal(e),
    };
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"import-{id}-report.csv\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            frame::CONTENT_SECURITY_POLICY,
        ))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_are_read_part_by_part() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\nemail\r\na@b.org\r\n\r\n--XyZ--\r\n";
        let b = boundary("multipart/form-data; boundary=XyZ").unwrap();
        let parts = multipart(body, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "csrf");
        assert_eq!(parts[0].data, b"tok");
        assert_eq!(parts[1].name, "file");
        assert_eq!(parts[1].data, b"email\r\na@b.org\r\n");
        assert!(multipart(b"--XyZ\r\nbroken", &b).is_none());
        assert!(boundary("application/x-www-form-urlencoded").is_none());
    }

    #[test]
    fn report_cells_never_start_a_formula() {
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("email"), "email");
    }
}

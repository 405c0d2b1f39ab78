//! Exports: a form choosing which subscribers and in which format, whose submit downloads the
//! file, streamed by the same code as the API's `GET /api/v1/exports/subscribers` (same formats,
//! filters, concurrency limit and audit entry).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use chrono::{NaiveDate, TimeZone};
use minijinja::{context, Value};
use serde::Deserialize;

use super::frame::{Console, Signed};
use crate::auth::ExportContacts;
use crate::domain::FieldErrors;
use crate::error::ApiError;
use crate::routes::exports::{download as api_download, export_request, ExportQuery};
use crate::services::exports::{self as service, ExportError};
use crate::services::segments;

/// The form as sent: every field may be missing or blank (blank means "any").
#[derive(Deserialize, Default)]
pub struct ExportForm {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    segment_id: Option<String>,
    /// A day (`2026-01-31`), from its start in the member's time zone.
    #[serde(default)]
    updated_since: Option<String>,
}

fn filled(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

impl ExportForm {
    fn value(&self) -> Value {
        context! {
            format => filled(&self.format).unwrap_or_else(|| "csv".into()),
            delimiter => filled(&self.delimiter).unwrap_or_else(|| "comma".into()),
            segment_id => filled(&self.segment_id).unwrap_or_default(),
            updated_since => filled(&self.updated_since).unwrap_or_default(),
        }
    }
}

async fn form_page(
    console: &Console,
    status: StatusCode,
    form: &ExportForm,
    errors: Value,
) -> HttpResponse {
    let all = match segments::list(&console.state.db).await {
        Ok(all) => all,
        Err(e) => return console.internal(e),
    };
    let segments: Vec<Value> = all
        .iter()
        .map(|s| context! { id => s.id.as_str(), name => &s.name })
        .collect();
    console.page(
        status,
        "exports/form",
        context! {
            segments => segments,
            form => form.value(),
            errors => errors,
        },
    )
}

pub async fn page(signed: Signed<ExportContacts>, form: web::Query<ExportForm>) -> HttpResponse {
    form_page(
        &signed.console,
        StatusCode::OK,
        &form.into_inner(),
        Value::from(()),
    )
    .await
}

/// The day's start in `zone`, as the API's `updated_since` takes it.
fn day_start(console: &Console, raw: &str) -> Option<String> {
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
    let start = console
        .zone
        .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .earliest()?;
    Some(start.to_rfc3339())
}

pub async fn download(
    signed: Signed<ExportContacts>,
    form: Result<web::Query<ExportForm>, actix_web::Error>,
) -> HttpResponse {
    let console = &signed.console;
    let Ok(form) = form.map(web::Query::into_inner) else {
        return console.error(StatusCode::BAD_REQUEST, "bad_form");
    };
    let mut errors = FieldErrors::new();
    let updated_since = filled(&form.updated_since).and_then(|raw| {
        let start = day_start(console, &raw);
        if start.is_none() {
            errors.add("updated_since", "must be a date like 2026-01-31");
        }
        start
    });
    let query = ExportQuery {
        format: filled(&form.format),
        delimiter: filled(&form.delimiter),
        segment_id: filled(&form.segment_id),
        updated_since,
    };
    let request = match export_request(query) {
        Ok(request) if errors.is_empty() => request,
        Ok(_) => return invalid(console, &form, &errors).await,
        Err(ApiError::Validation(more)) => {
            for (field, messages) in more.iter() {
                for m in messages {
                    errors.add(field.clone(), m.clone());
                }
            }
            return invalid(console, &form, &errors).await;
        }
        Err(e) => return console.internal(e),
    };
    let format = request.format;
    let state = &console.state;
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match service::start(&state.db, &state.exports, actor, ip, request).await {
        Ok(export) => api_download(format, export),
        Err(ExportError::Busy) => {
            let mut response = console.error(StatusCode::TOO_MANY_REQUESTS, "too_many");
            let retry = crate::routes::exports::RETRY_AFTER_SECS.to_string();
            if let Ok(value) = header::HeaderValue::from_str(&retry) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(ExportError::NoSuchSegment) => {
            let errors = FieldErrors::one("segment_id", "no such segment");
            invalid(console, &form, &errors).await
        }
        Err(e) => console.internal(e),
    }
}

async fn invalid(console: &Console, form: &ExportForm, errors: &FieldErrors) -> HttpResponse {
    let shown = console.field_errors(errors);
    form_page(console, StatusCode::UNPROCESSABLE_ENTITY, form, shown).await
}

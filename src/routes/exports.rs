//! Streamed exports of subscribers as CSV or NDJSON (`services::exports` reads them): the
//! response body drains the export's chunks as they are encoded.

use std::sync::atomic::Ordering;
use std::task::Poll;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use chrono::DateTime;
use serde::Deserialize;

use super::subscribers::encode_cursor;
use super::HandlerResult;
use crate::auth::{Authorized, ExportContacts};
use crate::error::{ApiError, FieldErrors};
use crate::services::exports::{self as service, ExportError, Format};
use crate::state::AppState;

/// The response header that carries the change-feed cursor as of the export's snapshot.
pub const CURSOR_HEADER: &str = "enlace-sync-cursor";
/// Seconds a client turned away because too many exports run is told to wait.
pub(super) const RETRY_AFTER_SECS: u64 = 30;

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Busy => Self::TooManyRequests {
                retry_after_secs: RETRY_AFTER_SECS,
            },
            ExportError::NoSuchSegment => Self::field("segment_id", "no such segment"),
            ExportError::Db(e) => e.into(),
            ExportError::Internal(e) => Self::Internal(e),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    pub(super) format: Option<String>,
    pub(super) delimiter: Option<String>,
    pub(super) segment_id: Option<String>,
    pub(super) updated_since: Option<String>,
}

pub async fn export_subscribers(
    auth: Authorized<ExportContacts>,
    query: Result<web::Query<ExportQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    // An unknown or repeated parameter is a mistake worth naming, not a bare 400.
    let q = query
        .map_err(|e| ApiError::field("query", e.to_string()))?
        .into_inner();
    let request = export_request(q)?;
    let format = request.format;
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let export = service::start(&state.db, &state.exports, actor, ip, request).await?;
    Ok(download(format, export))
}

/// The export as a file to save, named for today, with the change-feed cursor as of its
/// snapshot (the console's download answers the same).
pub(super) fn download(format: Format, export: service::RunningExport) -> HttpResponse {
    let (content_type, extension) = match format {
        Format::Csv(_) => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let file = format!(
        "subscribers-{}.{extension}",
        chrono::Utc::now().format("%Y-%m-%d")
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((CURSOR_HEADER, encode_cursor(export.cursor)))
        .streaming(body(export))
}

/// The export's chunks as a response body. One that ends before the export is complete was
/// cut short, and the client is told so (the transfer breaks off instead of ending cleanly).
fn body(
    export: service::RunningExport,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let service::RunningExport {
        mut chunks,
        complete,
        ..
    } = export;
    let mut broken = false;
    futures_util::stream::poll_fn(move |cx| match chunks.poll_recv(cx) {
        Poll::Ready(Some(bytes)) => Poll::Ready(Some(Ok(Bytes::from(bytes)))),
        Poll::Ready(None) if !broken && !complete.load(Ordering::Acquire) => {
            broken = true;
            Poll::Ready(Some(Err(std::io::Error::other("export cut short"))))
        }
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
}

/// The format, delimiter, segment and time a query asks for, as sent (the console's form too).
pub(super) fn export_request(q: ExportQuery) -> Result<service::ExportRequest, ApiError> {
    let mut errors = FieldErrors::new();
    // Spreadsheets set to split on semicolons (the default in Spanish, French and German Excel)
    // open a semicolon-delimited file as columns.
    let delimiter = match q.delimiter.as_deref() {
        None | Some("comma") => b',',
        Some("semicolon") => b';',
        Some("tab") => b'\t',
        Some(_) => {
            errors.add("delimiter", "must be comma, semicolon or tab");
            b','
        }
    };
    let format = match q.format.as_deref() {
        None | Some("csv") => Format::Csv(delimiter),
        // The delimiter is about CSV cells: with NDJSON it is checked, then has no effect.
        Some("ndjson") => Format::Ndjson,
        Some(_) => {
            errors.add("format", "must be csv or ndjson");
            Format::Csv(delimiter)
        }
    };
    let segment_id = q.segment_id.as_deref().and_then(|raw| {
        uuid::Uuid::parse_str(raw)
            .map_err(|_| errors.add("segment_id", "is not a segment id"))
            .ok()
            .map(|id| id.to_string())
    });
    let updated_since = q.updated_since.as_deref().and_then(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map_err(|_| {
                errors.add(
                    "updated_since",
                    "must be an RFC 3339 time like 2026-01-01T00:00:00Z",
                )
            })
            .ok()
            .map(|t| t.naive_utc())
    });
    errors.into_result().map_err(ApiError::Validation)?;
    Ok(service::ExportRequest {
        format,
        segment_id,
        updated_since,
    })
}

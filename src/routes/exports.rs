//! Streamed exports of subscribers as CSV or NDJSON. One pooled connection on a blocking thread
//! reads a consistent snapshot in keyset chunks and pushes encoded bytes through a bounded
//! channel that the response body drains: memory stays the same whatever the list size and
//! however slowly the client reads, and reading stops when the client goes away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use chrono::{DateTime, NaiveDateTime};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::subscribers::encode_cursor;
use super::HandlerResult;
use crate::auth::{Authorized, ExportContacts};
use crate::db::exports::{self as store, ExportScope};
use crate::db::{self, DbError};
use crate::error::ApiError;
use crate::startup::AppState;
use encoder::Encoder;

mod encoder;

/// Rows read per query.
const CHUNK: i64 = 2000;
/// Encoded chunks waiting for the client: with the chunk being encoded, the most held in memory.
const BUFFERED_CHUNKS: usize = 2;
/// The response header that carries the change-feed cursor as of the export's snapshot.
pub const CURSOR_HEADER: &str = "enlace-sync-cursor";
/// Seconds a client turned away because too many exports run is told to wait.
const RETRY_AFTER_SECS: u64 = 30;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    /// CSV with this delimiter byte.
    Csv(u8),
    Ndjson,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
    delimiter: Option<String>,
    segment_id: Option<String>,
    updated_since: Option<String>,
}

/// What the reader learnt before the first row: the cursor, or why there is no export.
type Ready = Result<i64, ApiError>;

pub async fn export_subscribers(
    auth: Authorized<ExportContacts>,
    query: Result<web::Query<ExportQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    // An unknown or repeated parameter is a mistake worth naming, not a bare 400.
    let q = query
        .map_err(|e| ApiError::field("query", e.to_string()))?
        .into_inner();
    let mut errors = crate::error::FieldErrors::new();
    let mut bad =
        |field: &str, message: &str| errors.entry(field.into()).or_default().push(message.into());
    // Spreadsheets set to split on semicolons (the default in Spanish, French and German Excel)
    // open a semicolon-delimited file as columns.
    let delimiter = match q.delimiter.as_deref() {
        None | Some("comma") => b',',
        Some("semicolon") => b';',
        Some("tab") => b'\t',
        Some(_) => {
            bad("delimiter", "must be comma, semicolon or tab");
            b','
        }
    };
    let format = match q.format.as_deref() {
        None | Some("csv") => Format::Csv(delimiter),
        // The delimiter is about CSV cells: with NDJSON it is checked, then has no effect.
        Some("ndjson") => Format::Ndjson,
        Some(_) => {
            bad("format", "must be csv or ndjson");
            Format::Csv(delimiter)
        }
    };
    let segment_id = q.segment_id.as_deref().and_then(|raw| {
        uuid::Uuid::parse_str(raw)
            .map_err(|_| bad("segment_id", "is not a segment id"))
            .ok()
            .map(|id| id.to_string())
    });
    let updated_since = q.updated_since.as_deref().and_then(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map_err(|_| {
                bad(
                    "updated_since",
                    "must be an RFC 3339 time like 2026-01-01T00:00:00Z",
                )
            })
            .ok()
            .map(|t| t.naive_utc())
    });
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let permit =
        state
            .exports
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::TooManyRequests {
                retry_after_secs: RETRY_AFTER_SECS,
            })?;

    let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(BUFFERED_CHUNKS);
    let job = Export {
        format,
        segment_id: segment_id.clone(),
        updated_since,
        backend: state.db.backend(),
    };
    let db = state.db.clone();
    let runtime = tokio::runtime::Handle::current();
    // Set by the reader once it has sent the last row: a body that ends without it was cut
    // short, and the client is told so (the transfer breaks off instead of ending cleanly).
    let complete = Arc::new(AtomicBool::new(false));
    let finished = complete.clone();
    // The permit goes with the reader: the slot (and its connection and snapshot) is free only
    // once the reader has stopped, not merely when the client has gone.
    tokio::task::spawn_blocking(move || {
        let _running = permit;
        job.run(&db, &runtime, ready_tx, tx, &finished);
    });
    let cursor = ready_rx
        .await
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("the export reader stopped early")))??;

    // Who took everything at once is worth a line in the audit log.
    let action = match format {
        Format::Csv(_) => "subscribers.export_csv",
        Format::Ndjson => "subscribers.export_ndjson",
    };
    state
        .db
        .write(move |conn| {
            auth.audit(conn, action, "segment", segment_id.as_deref())
                .map_err(DbError::from)
        })
        .await?;

    let (content_type, extension) = match format {
        Format::Csv(_) => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let file = format!(
        "subscribers-{}.{extension}",
        chrono::Utc::now().format("%Y-%m-%d")
    );
    let mut broken = false;
    let body = futures_util::stream::poll_fn(move |cx| match rx.poll_recv(cx) {
        Poll::Ready(None) if !broken && !complete.load(Ordering::Acquire) => {
            broken = true;
            Poll::Ready(Some(Err(std::io::Error::other("export cut short"))))
        }
        other => other,
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((CURSOR_HEADER, encode_cursor(cursor)))
        .streaming(body))
}

/// One export, run on a blocking thread.
struct Export {
    format: Format,
    segment_id: Option<String>,
    updated_since: Option<NaiveDateTime>,
    backend: db::Backend,
}

/// Why the reader stopped before the end.
enum Stop {
    /// The client went away: not an error.
    Gone,
    Failed(anyhow::Error),
}

impl From<diesel::result::Error> for Stop {
    fn from(e: diesel::result::Error) -> Self {
        Self::Failed(e.into())
    }
}

impl Export {
    fn run(
        self,
        db: &db::Db,
        runtime: &tokio::runtime::Handle,
        ready: oneshot::Sender<Ready>,
        tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
        complete: &AtomicBool,
    ) {
        let send = Sender { runtime, tx: &tx };
        let mut conn = match db.get() {
            Ok(conn) => conn,
            Err(e) => {
                let _ = ready.send(Err(ApiError::from(e)));
                return;
            }
        };
        let mut ready = Some(ready);
        let started = std::time::Instant::now();
        let result = db::read_snapshot(&mut conn, |conn| self.stream(conn, &mut ready, &send));
        match result {
            Ok(rows) => {
                // Before `tx` is dropped (the end of this function), so the body never sees
                // the end of the stream without it.
                complete.store(true, Ordering::Release);
                tracing::info!(
                    rows,
                    millis = started.elapsed().as_millis() as u64,
                    "subscriber export finished"
                );
            }
            Err(Stop::Gone) => {
                tracing::info!(
                    "subscriber export stopped: the client went away or stopped reading"
                );
            }
            Err(Stop::Failed(e)) => {
                tracing::error!(error = format!("{e:#}"), "subscriber export failed");
                // Before the headers: a 500. After: the body breaks off (not `complete`).
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(ApiError::Internal(e)));
                }
            }
        }
    }

    /// Reads and sends everything; returns the number of rows.
    fn stream(
        &self,
        conn: &mut db::AnyConnection,
        ready: &mut Option<oneshot::Sender<Ready>>,
        tx: &Sender<'_>,
    ) -> Result<u64, Stop> {
        let segment = match &self.segment_id {
            None => None,
            Some(id) => match db::segments::find_segment(conn, id)? {
                Some(segment) => Some(segment.parsed_filter().map_err(Stop::Failed)?),
                None => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(ApiError::field("segment_id", "no such segment")));
                    }
                    return Ok(0);
                }
            },
        };
        let scope = ExportScope {
            segment,
            updated_since: self.updated_since,
            backend: self.backend,
        };
        let fields = store::field_keys(conn)?;
        let cursor = db::subscribers::latest_change(conn)?;
        if ready
            .take()
            .map(|r| r.send(Ok(cursor)))
            .is_some_and(|sent| sent.is_err())
        {
            return Err(Stop::Gone);
        }
        let mut encoder = Encoder::new(self.format, fields);
        let mut after: Option<String> = None;
        let mut rows = 0u64;
        loop {
            let chunk = store::subscribers_after(conn, &scope, after.as_deref(), CHUNK)?;
            let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
                break;
            };
            let mut interests: HashMap<String, Vec<String>> = HashMap::new();
            // The whole list: one range scan per chunk. A filtered export's chunk may span
            // most ids, so it asks for its own people only.
            let held = if scope.segment.is_none() && scope.updated_since.is_none() {
                store::interests_between(conn, &first.id, &last.id)?
            } else {
                let ids: Vec<&str> = chunk.iter().map(|s| s.id.as_str()).collect();
                store::interests_of(conn, &ids)?
            };
            for (id, slug) in held {
                interests.entry(id).or_default().push(slug);
            }
            for subscriber in &chunk {
                let of = interests
                    .get(&subscriber.id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                encoder.row(subscriber, of).map_err(Stop::Failed)?;
            }
            rows += chunk.len() as u64;
            let bytes = encoder.take();
            if !bytes.is_empty() {
                tx.send(bytes)?;
            }
            if (chunk.len() as i64) < CHUNK {
                break;
            }
            after = Some(last.id.clone());
        }
        // An empty list still gets its CSV header.
        let bytes = encoder.take();
        if !bytes.is_empty() {
            tx.send(bytes)?;
        }
        Ok(rows)
    }
}

/// How long the reader waits for a client that stopped reading before giving up: the export
/// holds a connection and a snapshot (which keeps the database from cleaning up after writers).
const STALL: std::time::Duration = std::time::Duration::from_secs(60);

/// Hands encoded chunks to the response body, from the reader's blocking thread.
struct Sender<'a> {
    runtime: &'a tokio::runtime::Handle,
    tx: &'a mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Sender<'_> {
    fn send(&self, bytes: Bytes) -> Result<(), Stop> {
        match self
            .runtime
            .block_on(tokio::time::timeout(STALL, self.tx.send(Ok(bytes))))
        {
            Ok(Ok(())) => Ok(()),
            // Gone, or not reading for a minute: stop, and break the body off.
            Ok(Err(_)) | Err(_) => Err(Stop::Gone),
        }
    }
}

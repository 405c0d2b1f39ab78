//! Exports: everything held about the subscribers (all of them, a segment's, or those changed
//! since a time) as CSV or NDJSON, streamed. One pooled connection on a blocking thread reads a
//! consistent snapshot in keyset chunks and pushes encoded bytes through a bounded channel that
//! the caller drains: memory stays the same whatever the list size and however slowly the
//! client reads, and reading stops when the client goes away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::NaiveDateTime;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::auth::Principal;
use crate::db::exports::{self as store, ExportScope};
use crate::db::ids::SegmentId;
use crate::db::{self, Db, DbError};
use encoder::Encoder;

mod encoder;

/// Rows read per query.
const CHUNK: i64 = 2000;
/// Encoded chunks waiting for the client: with the chunk being encoded, the most held in memory.
const BUFFERED_CHUNKS: usize = 2;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with this delimiter byte.
    Csv(u8),
    Ndjson,
}

/// Which subscribers to export, and how.
pub struct ExportRequest {
    pub format: Format,
    pub segment_id: Option<String>,
    pub updated_since: Option<NaiveDateTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// As many exports run as may run at once.
    #[error("too many exports are running")]
    Busy,
    #[error("no such segment")]
    NoSuchSegment,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// An export under way: the change-feed cursor as of its snapshot, and its encoded chunks as
/// they are read. When `chunks` ends without `complete` set, the export was cut short.
pub struct RunningExport {
    pub cursor: i64,
    pub chunks: mpsc::Receiver<Vec<u8>>,
    pub complete: Arc<AtomicBool>,
}

/// Starts an export in one of the `slots` (none free: `Busy`), records who took everything at
/// once in the audit log, and returns once the first row is about to be read.
pub async fn start(
    db: &Db,
    slots: &Arc<Semaphore>,
    actor: &Principal,
    ip: Option<&str>,
    request: ExportRequest,
) -> Result<RunningExport, ExportError> {
    let permit = slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ExportError::Busy)?;
    let (ready_tx, ready_rx) = oneshot::channel::<Ready>();
    let (tx, chunks) = mpsc::channel::<Vec<u8>>(BUFFERED_CHUNKS);
    let format = request.format;
    let segment_id = request.segment_id.clone();
    let job = Export {
        format,
        segment_id: request.segment_id,
        updated_since: request.updated_since,
        backend: db.backend(),
    };
    let reader_db = db.clone();
    let runtime = tokio::runtime::Handle::current();
    // Set by the reader once it has sent the last row: a stream that ends without it was cut
    // short.
    let complete = Arc::new(AtomicBool::new(false));
    let finished = complete.clone();
    // The permit goes with the reader: the slot (and its connection and snapshot) is free only
    // once the reader has stopped, not merely when the client has gone.
    tokio::task::spawn_blocking(move || {
        let _running = permit;
        job.run(&reader_db, &runtime, ready_tx, tx, &finished);
    });
    let cursor = ready_rx
        .await
        .map_err(|_| anyhow::anyhow!("the export reader stopped early"))??;

    // Who took everything at once is worth a line in the audit log.
    let action = match format {
        Format::Csv(_) => "subscribers.export_csv",
        Format::Ndjson => "subscribers.export_ndjson",
    };
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.write(move |conn| {
        actor
            .audit(
                conn,
                ip.as_deref(),
                action,
                "segment",
                segment_id.as_deref(),
            )
            .map_err(DbError::from)
    })
    .await?;
    Ok(RunningExport {
        cursor,
        chunks,
        complete,
    })
}

/// What the reader learnt before the first row: the cursor, or why there is no export.
type Ready = Result<i64, ExportError>;

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
        db: &Db,
        runtime: &tokio::runtime::Handle,
        ready: oneshot::Sender<Ready>,
        tx: mpsc::Sender<Vec<u8>>,
        complete: &AtomicBool,
    ) {
        let send = Sender { runtime, tx: &tx };
        let mut conn = match db.get() {
            Ok(conn) => conn,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return;
            }
        };
        let mut ready = Some(ready);
        let started = std::time::Instant::now();
        let result = db::read_snapshot(&mut conn, |conn| self.stream(conn, &mut ready, &send));
        match result {
            Ok(rows) => {
                // Before `tx` is dropped (the end of this function), so the receiver never
                // sees the end of the stream without it.
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
                // Before the first row: the export fails. After: the stream breaks off (not
                // `complete`).
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(ExportError::Internal(e)));
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
            Some(id) => match SegmentId::parse(id)
                .map(|id| db::segments::find_segment(conn, &id))
                .transpose()?
                .flatten()
            {
                Some(segment) => Some(segment.parsed_filter().map_err(Stop::Failed)?),
                None => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(ExportError::NoSuchSegment));
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
                    .get(subscriber.id.as_str())
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
            after = Some(last.id.to_string());
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

/// Hands encoded chunks to the receiver, from the reader's blocking thread.
struct Sender<'a> {
    runtime: &'a tokio::runtime::Handle,
    tx: &'a mpsc::Sender<Vec<u8>>,
}

impl Sender<'_> {
    fn send(&self, bytes: Vec<u8>) -> Result<(), Stop> {
        match self
            .runtime
            .block_on(tokio::time::timeout(STALL, self.tx.send(bytes)))
        {
            Ok(Ok(())) => Ok(()),
            // Gone, or not reading for a minute: stop, and break the stream off.
            Ok(Err(_)) | Err(_) => Err(Stop::Gone),
        }
    }
}

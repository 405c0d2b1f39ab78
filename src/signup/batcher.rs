//! Group commit for signups: concurrent requests are gathered and written in one transaction,
//! so each answer still means "on disk" while the disk syncs once per batch, not once per request.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio::time::Instant;

use super::{apply_batch, Signup, SignupError, SignupOutcome, SignupPolicy};
use crate::db::{Backend, Db};
use crate::email::Templates;
use crate::metrics::Metrics;

/// Largest number of signups committed together.
const MAX_BATCH: usize = 512;
/// Batches written at once on PostgreSQL.
const POSTGRES_WRITERS: usize = 8;
/// Requests waiting for a batch; past this, a caller waits for room before its request is
/// queued.
const QUEUE_CAPACITY: usize = 8192;

type Reply = oneshot::Sender<Result<SignupOutcome, SignupError>>;

#[derive(Clone)]
pub struct SignupQueue {
    tx: mpsc::Sender<(Signup, Reply)>,
    /// The soonest an answer goes out after its request arrived (see `submit`).
    answer_floor: Duration,
}

impl SignupQueue {
    /// Starts the writer task on the current runtime.
    pub fn start(
        db: Db,
        templates: Arc<Templates>,
        policy: SignupPolicy,
        metrics: Metrics,
        mail_ready: Arc<Notify>,
        answer_floor: Duration,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Signup, Reply)>(QUEUE_CAPACITY);
        let policy = Arc::new(policy);
        // SQLite has one writer; PostgreSQL commits concurrent transactions in parallel, and a
        // batch there waits mostly on round trips, so several batches are kept in flight.
        let writers = Arc::new(Semaphore::new(match db.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => POSTGRES_WRITERS,
        }));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = writers.clone().acquire_owned().await else {
                    return;
                };
                // Requests gather here while every writer is busy: that is the batching.
                let mut batch = Vec::with_capacity(MAX_BATCH);
                if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    return;
                }
                let (db, templates, policy) = (db.clone(), templates.clone(), policy.clone());
                let (metrics, mail_ready) = (metrics.clone(), mail_ready.clone());
                tokio::spawn(async move {
                    write_batch(db, templates, policy, metrics, mail_ready, batch).await;
                    drop(permit);
                });
            }
        });
        Self { tx, answer_floor }
    }

    /// Hands a signup to the writer and waits until it is committed (or refused).
    /// The answer goes out no sooner than `answer_floor` after the request arrived: a new
    /// address takes more writing than a known or suppressed one, and without the floor the
    /// answer's timing would tell them apart (the answer itself is the same for all).
    pub async fn submit(&self, signup: Signup) -> Result<SignupOutcome, SignupError> {
        let arrived = Instant::now();
        let (reply, answer) = oneshot::channel();
        let closed = || SignupError::Store(anyhow::anyhow!("the signup writer has stopped"));
        let result = match self.tx.send((signup, reply)).await {
            Ok(()) => answer.await.map_err(|_| closed()).and_then(|r| r),
            Err(_) => Err(closed()),
        };
        tokio::time::sleep_until(arrived + self.answer_floor).await;
        result
    }
}

async fn write_batch(
    db: Db,
    templates: Arc<Templates>,
    policy: Arc<SignupPolicy>,
    metrics: Metrics,
    mail_ready: Arc<Notify>,
    batch: Vec<(Signup, Reply)>,
) {
    let (signups, replies): (Vec<Signup>, Vec<Reply>) = batch.into_iter().unzip();
    let size = signups.len();
    let started = std::time::Instant::now();
    let results = db
        .write(move |conn| {
            Ok::<_, crate::db::DbError>(apply_batch(conn, &templates, &policy, &signups))
        })
        .await
        .unwrap_or_else(|e| {
            let unavailable = e.is_unavailable();
            let message = e.to_string();
            (0..size)
                .map(|_| {
                    Err(match unavailable {
                        true => SignupError::Unavailable,
                        false => SignupError::Store(anyhow::anyhow!(message.clone())),
                    })
                })
                .collect()
        });
    metrics.signup_batch(size);
    tracing::debug!(
        size,
        micros = started.elapsed().as_micros() as u64,
        "signup batch written"
    );
    let mut queued_mail = false;
    for (result, reply) in results.into_iter().zip(replies) {
        if let Ok(outcome) = &result {
            metrics.signup(outcome.as_str());
            queued_mail |= outcome.queued_mail();
        }
        let _ = reply.send(result);
    }
    if queued_mail {
        mail_ready.notify_one();
    }
}

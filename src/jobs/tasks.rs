//! The task worker: runs the queue's jobs that are not mail (webhook deliveries, imports), each
//! on its own, with the same lease, retry and outcome rules as mail.
//!
//! A task handler gets the claimed job and says what became of it; the worker records that.
//! Handlers must be idempotent: a job whose process died mid-run is claimed again when its
//! lease runs out and runs again from the start (or from progress it committed itself).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveDateTime};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Notify;

use super::{commit, serve, Outcome as TaskOutcome};
use crate::db::jobs::{self as queue, ClaimedJob, Family};
use crate::db::{self, Db};
use crate::metrics::Metrics;

/// How long a claimed task stays reserved. A handler that can run longer (an import) commits
/// its own progress and must finish or yield (`TaskOutcome::Continue`) well inside this.
pub const TASK_LEASE: Duration = Duration::minutes(15);
const IDLE_POLL: StdDuration = StdDuration::from_secs(5);

/// Runs the tasks of one kind (`import.run`, `webhook.deliver`): gets the claimed job and says
/// what became of it. The feature that queues a kind of task provides its handler; the worker
/// knows none of them.
pub trait TaskHandler: Send + Sync {
    /// The job kind this handler runs.
    fn kind(&self) -> &'static str;
    fn run<'a>(&'a self, db: &'a Db, job: &'a ClaimedJob) -> BoxFuture<'a, TaskOutcome>;
}

/// Everything a task needs.
pub struct TaskWorker {
    pub db: Db,
    pub concurrency: usize,
    pub metrics: Metrics,
    /// One handler per job kind.
    pub handlers: Vec<Box<dyn TaskHandler>>,
}

impl TaskWorker {
    /// Runs every task due at `now` (and any that become due while it runs); returns how many
    /// runs there were. Tests call this to drive tasks step by step.
    ///
    /// Up to `concurrency` tasks run at once; each outcome is recorded as soon as its task ends,
    /// and a freed slot claims the next due task at once, so one slow webhook receiver holds one
    /// slot, not a whole round.
    pub async fn run_pending(&self, now: NaiveDateTime) -> anyhow::Result<usize> {
        let started = db::now();
        let clock = move || now + (db::now() - started);
        let slots = self.concurrency.max(1);
        let mut running = FuturesUnordered::new();
        let mut total = 0;
        loop {
            let free = slots - running.len();
            if free > 0 {
                let now = clock();
                let claimed = self
                    .db
                    .transaction(move |c| -> Result<_, db::DbError> {
                        let lease_until = now + TASK_LEASE;
                        Ok(queue::claim_jobs(
                            c,
                            Family::Task,
                            now,
                            lease_until,
                            free as i64,
                        )?)
                    })
                    .await?;
                total += claimed.len();
                for job in claimed {
                    running.push(async move {
                        let outcome = self.run_task(&job).await;
                        let finished_at = clock().max(now);
                        commit(
                            &self.db,
                            "task",
                            job,
                            outcome,
                            finished_at,
                            now + TASK_LEASE,
                        )
                        .await;
                    });
                }
            }
            if running.next().await.is_none() {
                return Ok(total);
            }
        }
    }

    /// Runs one task by its kind.
    async fn run_task(&self, job: &ClaimedJob) -> TaskOutcome {
        let handler = self.handlers.iter().find(|h| h.kind() == job.kind);
        let outcome = match handler {
            Some(handler) => handler.run(&self.db, job).await,
            None => TaskOutcome::Failed(format!("no handler for jobs of kind {}", job.kind)),
        };
        match &outcome {
            TaskOutcome::Retry(e) | TaskOutcome::Failed(e) => {
                tracing::warn!(job_id = %job.id, kind = %job.kind, attempt = job.attempts, error = %e, "task did not succeed")
            }
            _ => {}
        }
        outcome
    }

    /// The loop `enlace serve` runs until shutdown: wakes when a request queued a task,
    /// otherwise every few seconds (retries, other processes).
    pub async fn run_forever(
        self: Arc<Self>,
        wake: Arc<Notify>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        serve("task", wake, shutdown, || async {
            self.run_pending(db::now()).await?;
            Ok(IDLE_POLL)
        })
        .await
    }
}

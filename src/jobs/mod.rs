//! The background worker: claims due jobs from the durable queue, runs them, and records the
//! outcome (done, retried later with exponential backoff, failed, or dropped as moot).

mod mail;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveDateTime};
use futures_util::stream::{self, StreamExt};
use tokio::sync::Notify;

pub use mail::{MailKind, MailRenderer};
pub use tasks::{TaskOutcome, TaskWorker};

use crate::db::jobs::{self as queue, ClaimedJob, NewJob};
use crate::db::{self, AnyConnection, Db};
use crate::email::{Mailer, SendError};
use crate::metrics::Metrics;

/// Attempts before a mail is recorded as failed: with the backoff below, about 13 hours.
pub const MAIL_MAX_ATTEMPTS: i32 = 20;
/// How long a claimed job stays reserved for the worker holding it; work held by a process
/// that died returns to the queue after this. A round is at most `ROUND_PER_SLOT` sends per
/// concurrent slot, each bounded by the 60 s SMTP timeout, so a round ends well inside it.
const LEASE: Duration = Duration::minutes(15);
/// Jobs claimed per round and concurrent slot; a round's outcomes are written in one transaction.
const ROUND_PER_SLOT: usize = 8;
/// How often an idle worker looks at the queue even without being woken.
const IDLE_POLL: StdDuration = StdDuration::from_secs(5);

/// The queue row for a mail to a subscriber; the worker renders the message when it sends it.
pub fn mail_job(
    subscriber_id: &str,
    kind: MailKind,
    token: Option<&str>,
    now: NaiveDateTime,
) -> NewJob {
    NewJob {
        id: db::new_id(),
        kind: kind.job_kind(),
        payload: match token {
            Some(token) => serde_json::json!({ "token": token }).to_string(),
            None => "{}".to_owned(),
        },
        subscriber_id: Some(subscriber_id.to_owned()),
        state: queue::QUEUED,
        attempts: 0,
        max_attempts: MAIL_MAX_ATTEMPTS,
        run_at: now,
        created_at: now,
    }
}

/// Queues a mail to a subscriber.
pub fn enqueue_mail(
    conn: &mut AnyConnection,
    subscriber_id: &str,
    kind: MailKind,
    token: Option<&str>,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    queue::insert_job(conn, &mail_job(subscriber_id, kind, token, now))
}

/// A newsletter test message, rendered when requested; the job carries it whole.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct TestMail {
    pub to: String,
    pub language: crate::domain::Language,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub unsubscribe_url: String,
    pub from: Option<String>,
    pub reply_to: Option<String>,
}

pub const TEST_MAIL_KIND: &str = "mail.newsletter_test";

pub fn enqueue_test_mail(
    conn: &mut AnyConnection,
    mail: &TestMail,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    queue::insert_job(
        conn,
        &NewJob {
            id: db::new_id(),
            kind: TEST_MAIL_KIND,
            payload: serde_json::to_string(mail).unwrap_or_default(),
            subscriber_id: None,
            state: queue::QUEUED,
            attempts: 0,
            // A test nobody reads hours later: a few tries within about 15 minutes.
            max_attempts: 5,
            run_at: now,
            created_at: now,
        },
    )
}

/// Delay before attempt `n + 1`: 30 s doubling per attempt, capped at one hour, with jitter.
pub fn backoff(attempts: i32) -> Duration {
    let base = 30i64
        .saturating_mul(1i64 << attempts.clamp(0, 20).saturating_sub(1))
        .min(3600);
    let mut jitter = [0u8; 2];
    let _ = getrandom::fill(&mut jitter);
    Duration::seconds(base)
        + Duration::milliseconds(i64::from(u16::from_le_bytes(jitter)) % (base * 100).max(1))
}

/// Everything a job needs to run.
pub struct Worker {
    pub db: Db,
    pub mailer: Arc<Mailer>,
    pub renderer: MailRenderer,
    pub concurrency: usize,
    pub metrics: Metrics,
}

enum JobResult {
    Done,
    Dropped(&'static str),
    Failed(SendError),
}

impl Worker {
    /// Runs every job due at `now` (and any that become due while it runs); returns how many ran.
    /// Tests call this to drive the queue step by step.
    pub async fn run_pending(&self, now: NaiveDateTime) -> anyhow::Result<usize> {
        let started = db::now();
        let round = (self.concurrency * ROUND_PER_SLOT) as i64;
        let mut total = 0;
        loop {
            // The clock moves on between rounds (leases and backoff are taken from it).
            let now = now + (db::now() - started);
            let claimed = self
                .db
                .write(move |conn| {
                    db::write_transaction(conn, |c| {
                        queue::claim_jobs(c, queue::Family::Mail, now, now + LEASE, round)
                    })
                    .map_err(db::DbError::from)
                })
                .await?;
            if claimed.is_empty() {
                return Ok(total);
            }
            total += claimed.len();
            self.run_round(claimed, now).await?;
        }
    }

    /// One round: read what every job needs at once, deliver concurrently, record all outcomes
    /// in one transaction (one durable commit per round, not per message).
    async fn run_round(&self, claimed: Vec<ClaimedJob>, now: NaiveDateTime) -> anyhow::Result<()> {
        let prepared = self.prepare_mails(claimed).await?;
        let outcomes: Vec<(ClaimedJob, JobResult)> = stream::iter(prepared)
            .map(|(job, prepared)| async move {
                let result = match prepared {
                    Ok(mail) => self.send_mail(&job, mail).await,
                    Err(result) => result,
                };
                (job, result)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (job, result) in &outcomes {
            match result {
                JobResult::Done => self.metrics.mail_sent(&job.kind),
                JobResult::Failed(SendError::Permanent(_)) => self.metrics.mail_failed(&job.kind),
                JobResult::Failed(SendError::Transient(_)) if job.attempts >= job.max_attempts => {
                    self.metrics.mail_failed(&job.kind)
                }
                _ => {}
            }
        }
        let finished_at = db::now().max(now);
        let lease_until = now + LEASE;
        self.db
            .write(move |conn| {
                db::write_transaction(conn, |conn| {
                    // The common outcomes in one statement each; the rare ones row by row.
                    let mut done = Vec::new();
                    let mut dropped: Vec<(&str, &'static str)> = Vec::new();
                    for (job, result) in &outcomes {
                        match result {
                            JobResult::Done => done.push(job.id.as_str()),
                            JobResult::Dropped(why) => dropped.push((job.id.as_str(), why)),
                            JobResult::Failed(SendError::Transient(e))
                                if job.attempts < job.max_attempts =>
                            {
                                queue::retry_job(conn, job, e, now + backoff(job.attempts))?;
                            }
                            JobResult::Failed(e) => {
                                let error = e.to_string();
                                queue::finish_jobs(
                                    conn,
                                    &[job.id.as_str()],
                                    lease_until,
                                    "failed",
                                    Some(&error),
                                    finished_at,
                                )?;
                            }
                        }
                    }
                    queue::finish_jobs(conn, &done, lease_until, "done", None, finished_at)?;
                    for (id, why) in dropped {
                        queue::finish_jobs(
                            conn,
                            &[id],
                            lease_until,
                            "dropped",
                            Some(why),
                            finished_at,
                        )?;
                    }
                    Ok::<(), diesel::result::Error>(())
                })
                .map_err(db::DbError::from)
            })
            .await?;
        Ok(())
    }

    /// The loop `enlace serve` runs until shutdown: wakes when a request queued mail, otherwise
    /// when the next retry is due or every few seconds.
    pub async fn run_forever(
        self: Arc<Self>,
        wake: Arc<Notify>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let sleep_for = match self.run_pending(db::now()).await {
                Ok(_) => self.time_until_next_job().await,
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "job worker could not reach the database"
                    );
                    IDLE_POLL
                }
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(sleep_for) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn time_until_next_job(&self) -> StdDuration {
        let next = self
            .db
            .run(|conn| queue::next_run_at(conn, queue::Family::Mail).map_err(db::DbError::from))
            .await;
        match next {
            Ok(Some(at)) => (at - db::now())
                .to_std()
                .unwrap_or(StdDuration::ZERO)
                .min(IDLE_POLL),
            _ => IDLE_POLL,
        }
    }
}

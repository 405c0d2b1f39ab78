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
pub use tasks::{TaskHandler, TaskWorker};

/// What a task handler says became of its task.
pub type TaskOutcome = Outcome;

use crate::db::jobs::{self as queue, ClaimedJob, JobState, NewJob};
use crate::db::{self, AnyConnection, Db};
use crate::email::{Mailer, SendError};
use crate::metrics::Metrics;

/// Attempts before a mail is recorded as failed: with the backoff below, about 13 hours.
pub const MAIL_MAX_ATTEMPTS: i32 = 20;
/// How often an idle worker looks at the queue even without being woken.
const IDLE_POLL: StdDuration = StdDuration::from_secs(5);

/// What became of one run of a job, mail or task alike.
#[derive(Debug)]
pub enum Outcome {
    Done,
    /// Not done yet but fine (an import that handled a chunk): run again at once.
    Continue,
    /// Try again later (backoff), until the job's attempts run out; then it is failed.
    Retry(String),
    /// Will never work: recorded as failed.
    Failed(String),
    /// No longer wanted (the person was erased, the endpoint deleted).
    Dropped(&'static str),
}

/// A mail the relay refused for now is tried again; one it will never take has failed.
impl From<SendError> for Outcome {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Transient(e) => Self::Retry(e),
            permanent @ SendError::Permanent(_) => Self::Failed(permanent.to_string()),
        }
    }
}

impl Outcome {
    /// Whether this run leaves the job failed for good.
    fn is_final_failure(&self, job: &ClaimedJob) -> bool {
        match self {
            Self::Failed(_) => true,
            Self::Retry(_) => job.attempts >= job.max_attempts,
            _ => false,
        }
    }
}

/// Writes one job's outcome: done, dropped, failed, continued, or queued again after a
/// backoff. Fenced by the lease: a job whose lease ran out and was claimed again is not touched.
fn record_outcome(
    conn: &mut AnyConnection,
    job: &ClaimedJob,
    outcome: &Outcome,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> diesel::QueryResult<()> {
    let finished_at = db::now().max(now);
    let ids = [job.id.as_str()];
    match outcome {
        Outcome::Done => {
            queue::finish_jobs(conn, &ids, lease_until, JobState::Done, None, finished_at)?;
        }
        Outcome::Dropped(why) => {
            queue::finish_jobs(
                conn,
                &ids,
                lease_until,
                JobState::Dropped,
                Some(why),
                finished_at,
            )?;
        }
        Outcome::Continue => {
            // Not an attempt that failed: the attempt count is given back, and the job keeps
            // its place in the queue (its first `run_at`), ahead of work queued since.
            queue::continue_job(conn, job)?;
        }
        Outcome::Retry(e) if job.attempts < job.max_attempts => {
            queue::retry_job(conn, job, e, now + backoff(job.attempts))?;
        }
        Outcome::Retry(e) | Outcome::Failed(e) => {
            queue::finish_jobs(
                conn,
                &ids,
                lease_until,
                JobState::Failed,
                Some(e),
                finished_at,
            )?;
        }
    }
    Ok(())
}

/// Commits a job's outcome (see `commit_outcome`) for the worker of `family`.
async fn commit(
    db: &Db,
    family: &'static str,
    job: ClaimedJob,
    outcome: Outcome,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) {
    let id = job.id.clone();
    let (job, outcome) = (Arc::new(job), Arc::new(outcome));
    commit_outcome(db, &id, family, lease_until, move |conn| {
        record_outcome(conn, &job, &outcome, now, lease_until)
    })
    .await;
}

/// The loop a worker runs until shutdown: a round of work (which says how long to wait before
/// the next one unless woken), then a wait for a wake-up, that time, or shutdown. The mail and
/// task workers and the newsletter engine's scheduler all run it.
pub(crate) async fn serve<F, Fut>(
    family: &'static str,
    wake: Arc<Notify>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<StdDuration>>,
{
    loop {
        if *shutdown.borrow() {
            return;
        }
        let sleep_for = round().await.unwrap_or_else(|e| {
            tracing::error!(
                family,
                error = format!("{e:#}"),
                "a job worker could not reach the database"
            );
            IDLE_POLL
        });
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(sleep_for) => {}
            _ = shutdown.changed() => return,
        }
    }
}

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
        state: queue::JobState::Queued,
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
            state: queue::JobState::Queued,
            attempts: 0,
            // A test nobody reads hours later: a few tries within about 15 minutes.
            max_attempts: 5,
            run_at: now,
            created_at: now,
        },
    )
}

/// A staff invitation's mail. The job carries the link (its token, as a confirmation mail's job
/// does); the worker sends it only while that link is still the invitation's valid one.
pub const INVITATION_MAIL_KIND: &str = "mail.staff_invitation";

#[derive(serde::Serialize, serde::Deserialize)]
pub struct InvitationMail {
    /// The invitation page's address, to which the token is added.
    pub link: String,
    pub token: String,
}

pub fn enqueue_invitation_mail(
    conn: &mut AnyConnection,
    link: &str,
    token: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    let payload = InvitationMail {
        link: link.to_owned(),
        token: token.to_owned(),
    };
    queue::insert_job(
        conn,
        &NewJob {
            id: db::new_id(),
            kind: INVITATION_MAIL_KIND,
            payload: serde_json::to_string(&payload).unwrap_or_default(),
            subscriber_id: None,
            state: queue::JobState::Queued,
            attempts: 0,
            max_attempts: MAIL_MAX_ATTEMPTS,
            run_at: now,
            created_at: now,
        },
    )
}

/// Delay before attempt `n + 1`: 30 s doubling per attempt, capped at one hour, with jitter.
/// Commits a job's outcome with `write` (in a transaction). A write that fails (a full disk, a
/// database restarting) is tried again, with backoff, for as long as the job's lease leaves
/// time: work already done (a message handed to SMTP, a webhook delivered) must not be left to
/// the lease, which would do it again. `what` names the job's family in the log.
pub(crate) async fn commit_outcome(
    db: &db::Db,
    job_id: &str,
    what: &'static str,
    lease_until: NaiveDateTime,
    write: impl Fn(&mut db::AnyConnection) -> diesel::QueryResult<()> + Clone + Send + 'static,
) {
    let mut wait = StdDuration::from_millis(100);
    loop {
        let attempt = write.clone();
        let written = db
            .transaction(move |conn| -> Result<_, db::DbError> { Ok(attempt(conn)?) })
            .await;
        let Err(e) = written else { return };
        let left = (lease_until - db::now()).to_std().unwrap_or_default();
        if left <= wait * 2 {
            tracing::error!(job_id = %job_id, family = what, error = format!("{e:#}"),
                "the outcome of a job could not be recorded before its lease ran out");
            return;
        }
        tracing::warn!(job_id = %job_id, family = what, error = format!("{e:#}"),
            "recording the outcome of a job failed; trying again");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(StdDuration::from_secs(10));
    }
}

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
    /// How long a claimed mail stays reserved for the worker holding it
    /// (`ENLACE_MAIL_LEASE_SECONDS`, five minutes by default): a mail held by a process that
    /// died is tried again after this. A claimed mail is one message in its SMTP exchange
    /// (bounded by the 60 s SMTP timeout) and the commit of its outcome, so it ends well inside
    /// the lease.
    pub lease: Duration,
    pub metrics: Metrics,
}

impl Worker {
    /// Runs every job due at `now` (and any that become due while it runs); returns how many ran.
    /// Tests call this to drive the queue step by step.
    ///
    /// A job is claimed only when a slot is free to send it at once, and its slot is held until
    /// its outcome is committed: at any moment this process holds at most `concurrency` claimed
    /// jobs, each in its SMTP exchange or writing its outcome. A crash can therefore send again
    /// at most that many messages, and leaves nothing else waiting for a lease.
    pub async fn run_pending(&self, now: NaiveDateTime) -> anyhow::Result<usize> {
        let started = db::now();
        let mut total = 0;
        let mut in_flight = stream::FuturesUnordered::new();
        loop {
            let free = self.concurrency.saturating_sub(in_flight.len());
            let mut claimed_any = false;
            if free > 0 {
                // The clock moves on while the worker runs (leases and backoff are taken from it).
                let now = now + (db::now() - started);
                let lease_until = now + self.lease;
                let claimed = self
                    .db
                    .transaction(move |c| -> Result<_, db::DbError> {
                        Ok(queue::claim_jobs(
                            c,
                            queue::Family::Mail,
                            now,
                            lease_until,
                            free as i64,
                        )?)
                    })
                    .await?;
                claimed_any = !claimed.is_empty();
                total += claimed.len();
                for (job, prepared) in self.prepare_mails(claimed).await? {
                    in_flight.push(self.deliver(job, prepared, now, lease_until));
                }
            }
            if !claimed_any || in_flight.len() >= self.concurrency {
                // Nothing more to claim now, or every slot busy: wait for a slot to free up.
                if in_flight.next().await.is_none() {
                    return Ok(total);
                }
            }
        }
    }

    /// Sends one prepared message (or takes the outcome already decided) and commits its outcome.
    async fn deliver(
        &self,
        job: ClaimedJob,
        prepared: mail::Prepared,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
    ) {
        let outcome = match prepared {
            Ok(mail) => self.send_mail(&job, mail).await,
            Err(outcome) => outcome,
        };
        match &outcome {
            Outcome::Done => self.metrics.mail_sent(&job.kind),
            failed if failed.is_final_failure(&job) => self.metrics.mail_failed(&job.kind),
            _ => {}
        }
        commit(&self.db, "mail", job, outcome, now, lease_until).await;
    }

    /// The loop `enlace serve` runs until shutdown: wakes when a request queued mail, otherwise
    /// when the next retry is due or every few seconds.
    pub async fn run_forever(
        self: Arc<Self>,
        wake: Arc<Notify>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        serve("mail", wake, shutdown, || async {
            self.run_pending(db::now()).await?;
            Ok(self.time_until_next_job().await)
        })
        .await
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

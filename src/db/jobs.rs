//! The durable job queue (the outbox): rows are written in the same transaction as the state
//! change they follow from, claimed under an expiring lease, and finished with a recorded outcome.

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, max};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable};

use super::schema::jobs;
use super::AnyConnection;

type Backend = <AnyConnection as Connection>::Backend;

crate::text_enum! {
    /// Where a job is: waiting (or waiting again after a failed attempt), claimed under a lease,
    /// or finished one of three ways.
    ///
    /// ```text
    /// queued ──claim──▶ running ──▶ done | failed | dropped
    ///    ▲                 │
    ///    └─retry/continue──┘   (a lease that runs out makes it claimable again)
    /// ```
    pub enum JobState {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
        /// No longer wanted (the person unsubscribed, the endpoint was deleted).
        Dropped = "dropped",
    }
}

/// Mail jobs' kinds start with this; every other kind is a task (webhook deliveries, imports),
/// run by its own worker so a slow webhook endpoint never holds up a confirmation mail.
pub const MAIL_PREFIX: &str = "mail.";

/// Which worker a claim is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Mail,
    Task,
}

#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = jobs, treat_none_as_default_value = false)]
pub struct NewJob {
    pub id: String,
    pub kind: &'static str,
    pub payload: String,
    pub subscriber_id: Option<String>,
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

/// A job as a worker holds it after claiming.
#[derive(Queryable, Clone, Debug)]
pub struct ClaimedJob {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub subscriber_id: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
}

pub fn insert_job(conn: &mut AnyConnection, job: &NewJob) -> QueryResult<()> {
    diesel::insert_into(jobs::table)
        .values(job)
        .execute(conn)
        .map(drop)
}

/// Claims up to `limit` due jobs (or jobs whose lease ran out). The UPDATE repeats the
/// claimable condition, which the database re-checks on each locked row, so two processes on
/// one database never hold the same job: the loser of a race simply gets fewer rows.
/// Call inside `write_transaction` (SQLite then takes the write lock before the SELECT).
pub fn claim_jobs(
    conn: &mut AnyConnection,
    family: Family,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<ClaimedJob>> {
    let claimable =
        || -> Box<dyn BoxableExpression<jobs::table, Backend, SqlType = Nullable<Bool>>> {
            let mail = format!("{MAIL_PREFIX}%");
            let due = jobs::state
                .eq(JobState::Queued)
                .and(jobs::run_at.le(now))
                .or(jobs::state
                    .eq(JobState::Running)
                    .and(jobs::locked_until.lt(now)));
            match family {
                Family::Mail => Box::new(due.and(jobs::kind.like(mail))),
                Family::Task => Box::new(due.and(jobs::kind.not_like(mail))),
            }
        };
    let candidates: Vec<String> = jobs::table
        .filter(claimable())
        .order(jobs::run_at.asc())
        .limit(limit)
        .select(jobs::id)
        .load(conn)?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    diesel::update(
        jobs::table
            .filter(jobs::id.eq_any(&candidates))
            .filter(claimable()),
    )
    .set((
        jobs::state.eq(JobState::Running),
        jobs::locked_until.eq(Some(lease_until)),
        jobs::attempts.eq(jobs::attempts + 1),
    ))
    .returning((
        jobs::id,
        jobs::kind,
        jobs::payload,
        jobs::subscriber_id,
        jobs::attempts,
        jobs::max_attempts,
    ))
    .get_results(conn)
}

/// Finishes jobs of one claim; `lease_until` identifies the claim, so jobs another worker has
/// taken over since (after the lease ran out) are left alone. The payload is cleared: it may
/// hold a confirmation token that has no business outliving the delivery.
pub fn finish_jobs(
    conn: &mut AnyConnection,
    ids: &[&str],
    lease_until: NaiveDateTime,
    state: JobState,
    error: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(
        jobs::table
            .filter(jobs::id.eq_any(ids))
            .filter(jobs::state.eq(JobState::Running))
            .filter(jobs::locked_until.eq(lease_until)),
    )
    .set((
        jobs::state.eq(state),
        jobs::payload.eq("{}"),
        jobs::last_error.eq(error),
        jobs::locked_until.eq(None::<NaiveDateTime>),
        jobs::finished_at.eq(Some(now)),
    ))
    .execute(conn)
}

/// Drops every job still waiting for a subscriber (after they unsubscribed, say).
pub fn drop_queued_for_subscriber(
    conn: &mut AnyConnection,
    subscriber_id: &str,
    why: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        jobs::table
            .filter(jobs::subscriber_id.eq(subscriber_id))
            .filter(jobs::state.eq(JobState::Queued)),
    )
    .set((
        jobs::state.eq(JobState::Dropped),
        jobs::payload.eq("{}"),
        jobs::last_error.eq(Some(why)),
        jobs::finished_at.eq(Some(now)),
    ))
    .execute(conn)
}

/// Puts a claimed job back in the queue to be tried again at `run_at`.
pub fn retry_job(
    conn: &mut AnyConnection,
    job: &ClaimedJob,
    error: &str,
    run_at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        jobs::table
            .find(&job.id)
            .filter(jobs::state.eq(JobState::Running))
            .filter(jobs::attempts.eq(job.attempts)),
    )
    .set((
        jobs::state.eq(JobState::Queued),
        jobs::run_at.eq(run_at),
        jobs::last_error.eq(Some(error)),
        jobs::locked_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Puts a claimed task back to run again at once (it keeps its `run_at`, so its place in the
/// queue), giving back the attempt its claim counted: the task made progress; it did not fail.
pub fn continue_job(conn: &mut AnyConnection, job: &ClaimedJob) -> QueryResult<bool> {
    diesel::update(
        jobs::table
            .find(&job.id)
            .filter(jobs::state.eq(JobState::Running))
            .filter(jobs::attempts.eq(job.attempts)),
    )
    .set((
        jobs::state.eq(JobState::Queued),
        jobs::attempts.eq(jobs::attempts - 1),
        jobs::locked_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// (subscriber id, how many, the latest `created_at`).
pub type RecentJobs = (Option<String>, i64, Option<NaiveDateTime>);

/// For each of `subscriber_ids`: how many of `kinds` were queued since `since`, and the latest.
pub fn recent_jobs_for_subscribers(
    conn: &mut AnyConnection,
    subscriber_ids: &[&str],
    kinds: &[&str],
    since: NaiveDateTime,
) -> QueryResult<Vec<RecentJobs>> {
    jobs::table
        .filter(jobs::subscriber_id.eq_any(subscriber_ids))
        .filter(jobs::kind.eq_any(kinds))
        .filter(jobs::created_at.ge(since))
        .group_by(jobs::subscriber_id)
        .select((jobs::subscriber_id, count_star(), max(jobs::created_at)))
        .load(conn)
}

/// Jobs waiting or running.
pub fn queue_depth(conn: &mut AnyConnection) -> QueryResult<i64> {
    jobs::table
        .filter(jobs::state.eq_any([JobState::Queued, JobState::Running]))
        .select(count_star())
        .first(conn)
}

/// When the family's next queued job becomes due, to let an idle worker sleep exactly that long.
pub fn next_run_at(conn: &mut AnyConnection, family: Family) -> QueryResult<Option<NaiveDateTime>> {
    let mail = format!("{MAIL_PREFIX}%");
    let queued = jobs::table
        .filter(jobs::state.eq(JobState::Queued))
        .select(diesel::dsl::min(jobs::run_at));
    match family {
        Family::Mail => queued.filter(jobs::kind.like(mail)).first(conn),
        Family::Task => queued.filter(jobs::kind.not_like(mail)).first(conn),
    }
}

/// (kind, state, queued at, finished at) of one mail.
pub type MailRecord = (String, String, NaiveDateTime, Option<NaiveDateTime>);

/// The mails queued for a subscriber, for access requests.
pub fn list_mail_for_subscriber(
    conn: &mut AnyConnection,
    subscriber_id: &str,
) -> QueryResult<Vec<MailRecord>> {
    jobs::table
        .filter(jobs::subscriber_id.eq(subscriber_id))
        .order(jobs::created_at.asc())
        .select((jobs::kind, jobs::state, jobs::created_at, jobs::finished_at))
        .load(conn)
}

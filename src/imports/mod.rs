//! CSV imports: an uploaded file is checked whole and stored in parts (`plan`), then a task job
//! imports it one part per transaction (`run`), committing progress as it goes, so a crash
//! resumes at the first part not yet imported.

mod columns;
mod people;
pub mod plan;
mod rows;
pub mod run;

use std::sync::Arc;

use chrono::NaiveDateTime;
use tokio::sync::Notify;

use crate::db::jobs::{self as queue, ClaimedJob, NewJob};
use crate::db::{self, Db};
use crate::email::Templates;
use crate::jobs::TaskOutcome;
use crate::signup::SignupPolicy;

pub use run::{forget_address, RunError, Step};

/// The task job kind that imports a file.
pub const JOB_KIND: &str = "import.run";
/// Runs that failed (the database was away, say) before the import is recorded as failed.
const MAX_ATTEMPTS: i32 = 10;

/// What the people in a file agreed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// They already consented elsewhere; the caller gives the source and a note as evidence.
    Consented,
    /// Each new person is sent a confirmation mail and joins when they confirm.
    Confirm,
}

impl Mode {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "consented" => Some(Self::Consented),
            "confirm" => Some(Self::Confirm),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consented => "consented",
            Self::Confirm => "confirm",
        }
    }
}

/// The queue row that runs an import.
pub fn import_job(import_id: &str, now: NaiveDateTime) -> NewJob {
    NewJob {
        id: db::new_id(),
        kind: JOB_KIND,
        payload: serde_json::json!({ "import_id": import_id }).to_string(),
        subscriber_id: None,
        state: queue::JobState::Queued,
        attempts: 0,
        max_attempts: MAX_ATTEMPTS,
        run_at: now,
        created_at: now,
    }
}

/// Runs `import.run` jobs for the task worker.
pub struct ImportRunner {
    pub db: Db,
    pub templates: Arc<Templates>,
    pub policy: SignupPolicy,
    /// Woken when a part queued confirmation mail.
    pub mail_ready: Arc<Notify>,
}

impl ImportRunner {
    /// Imports the next part of the job's import: `Continue` while parts remain.
    pub async fn run(&self, job: &ClaimedJob) -> TaskOutcome {
        let Some(import_id) = serde_json::from_str::<serde_json::Value>(&job.payload)
            .ok()
            .and_then(|p| p["import_id"].as_str().map(str::to_owned))
        else {
            return TaskOutcome::Failed("the job names no import".into());
        };
        let templates = self.templates.clone();
        let policy = self.policy.clone();
        let id = import_id.clone();
        let result = self
            .db
            .write(move |conn| {
                let ctx = run::PartContext {
                    templates: &templates,
                    policy: &policy,
                    now: db::now(),
                };
                run::next_part(conn, &ctx, &id)
            })
            .await;
        match result {
            Ok(Step::More { mail_queued }) => {
                if mail_queued {
                    self.mail_ready.notify_one();
                }
                TaskOutcome::Continue
            }
            Ok(Step::Finished { mail_queued }) => {
                if mail_queued {
                    self.mail_ready.notify_one();
                }
                tracing::info!(import_id = %import_id, "import finished");
                TaskOutcome::Done
            }
            Ok(Step::Over) => TaskOutcome::Done,
            Ok(Step::Gone) => TaskOutcome::Dropped("the import no longer exists"),
            Err(RunError::Moved) => TaskOutcome::Continue,
            Err(RunError::Broken(why)) => self.fail(&import_id, why).await,
            Err(e) if job.attempts >= job.max_attempts => {
                self.fail(
                    &import_id,
                    format!("gave up after {} attempts: {e}", job.attempts),
                )
                .await
            }
            // A signup for a new address of this part committed first, or the database was
            // away: the part is read again, and decided again, on the next attempt. (The
            // database's own words for a clash may quote the address: not kept.)
            Err(RunError::Db(e)) if crate::db::is_unique_violation(&e) => {
                TaskOutcome::Retry("an address in this part was added meanwhile".into())
            }
            Err(e) => TaskOutcome::Retry(e.to_string()),
        }
    }

    /// Records the import as failed (its remaining parts are deleted).
    async fn fail(&self, import_id: &str, why: String) -> TaskOutcome {
        let id = import_id.to_owned();
        let error = why.clone();
        let recorded = self
            .db
            .transaction(move |conn| -> Result<_, db::DbError> {
                Ok(crate::db::imports::fail_import(
                    conn,
                    &id,
                    &error,
                    db::now(),
                )?)
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!(import_id = %import_id, error = %e, "could not record a failed import");
        }
        TaskOutcome::Failed(why)
    }
}

impl crate::jobs::TaskHandler for ImportRunner {
    fn kind(&self) -> &'static str {
        JOB_KIND
    }

    fn run<'a>(
        &'a self,
        _db: &'a crate::db::Db,
        job: &'a ClaimedJob,
    ) -> futures_util::future::BoxFuture<'a, TaskOutcome> {
        Box::pin(ImportRunner::run(self, job))
    }
}

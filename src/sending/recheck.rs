//! The last look at a recipient before their message's content goes out: whoever unsubscribed,
//! complained, bounced, was suppressed or erased since their message was prepared is withheld.
//!
//! A message asks the moment its SMTP exchange begins (just before `MAIL FROM` is written),
//! and its answer comes from a database read that starts after it asked, so any change
//! committed before that moment (by this process or another) is seen. The read runs while the
//! transaction opens; the content waits for its answer. One read answers every message waiting at that
//! moment, and the next starts as soon as it ends (or `MIN_SPACING` after it started), with
//! whoever arrived meanwhile: the cost is one read per group, not per message, and a message
//! waits for at most two reads and the spacing.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::db::{subscribers, AnyConnection, Db, DbError};
use crate::domain::{SubscriberStatus, SuppressionReason};

/// Most messages answered by one read.
const MAX_GROUP: usize = 512;

/// The least time from one read's start to the next's. A read costs the database and Enlace
/// more than its rows do: at thousands of messages a second, reads back to back answered one or
/// two messages each and added a fifth to a third to the CPU each message cost (Enlace's and
/// PostgreSQL's); spaced, a read answers several. A message waits this much longer at most,
/// while its SMTP transaction is open and usually while it waits for an in-flight slot anyway.
const MIN_SPACING: Duration = Duration::from_millis(1);

/// What the database says of a recipient now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Still confirmed and not suppressed: the message may go.
    Eligible,
    /// No longer to be mailed, and why (recorded as the delivery's skip reason).
    Ineligible(&'static str),
    /// The database could not be read: the message is not sent now.
    Unknown,
}

/// Why a subscriber in `status` gets no newsletter, or `None` if they are confirmed.
pub(super) fn ineligible_because(status: &str) -> Option<&'static str> {
    match SubscriberStatus::parse(status) {
        Some(SubscriberStatus::Confirmed) => None,
        Some(SubscriberStatus::Unsubscribed) => Some("unsubscribed"),
        Some(SubscriberStatus::Bounced) => Some("bounced"),
        Some(SubscriberStatus::Complained) => Some("complained"),
        _ => Some("not confirmed"),
    }
}

struct Question {
    subscriber_id: String,
    email_hash: Option<String>,
    answer: oneshot::Sender<Standing>,
}

/// The handle the senders ask through; the reader's thread ends when every handle is dropped.
#[derive(Clone)]
pub struct Recheck {
    questions: mpsc::UnboundedSender<Question>,
}

impl Recheck {
    /// Starts the reader on a thread of its own with a connection of its own (it only reads, so
    /// on SQLite it never waits for the writer): a read runs as soon as it is due, with no hop
    /// through the blocking pool.
    pub fn start(db: Db) -> Self {
        let (questions, mut rx) = mpsc::unbounded_channel::<Question>();
        let spawned = std::thread::Builder::new()
            .name("enlace-recheck".into())
            .spawn(move || {
                let mut conn: Option<AnyConnection> = None;
                let mut last_start: Option<Instant> = None;
                while let Some(first) = rx.blocking_recv() {
                    if let Some(wait) =
                        last_start.map(|at| MIN_SPACING.saturating_sub(at.elapsed()))
                    {
                        if !wait.is_zero() {
                            std::thread::sleep(wait);
                        }
                    }
                    // Everyone waiting now is answered by a read that starts after this line.
                    last_start = Some(Instant::now());
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    let read = match &mut conn {
                        Some(c) => read_standings(c, &group),
                        None => db
                            .dedicated_connection()
                            .and_then(|c| read_standings(conn.insert(c), &group)),
                    };
                    let standings = read.unwrap_or_else(|e| {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "could not re-check newsletter recipients; their messages wait"
                        );
                        conn = None;
                        vec![Standing::Unknown; group.len()]
                    });
                    for (question, standing) in group.into_iter().zip(standings) {
                        let _ = question.answer.send(standing);
                    }
                }
            });
        if let Err(e) = spawned {
            // Without its thread every question goes unanswered: each message is put back.
            tracing::error!(error = %e, "could not start the newsletter recipient re-check");
        }
        Self { questions }
    }

    /// Asks whether `subscriber_id` (whose message goes to the address hashed `email_hash`) may
    /// still be mailed. The question is put at this call, not when the answer is awaited: the
    /// read that answers it starts after this call, and runs while the caller goes on (for a
    /// message, while its SMTP transaction opens).
    pub fn ask(
        &self,
        subscriber_id: &str,
        email_hash: Option<&str>,
    ) -> impl std::future::Future<Output = Standing> + Send + 'static {
        let (answer, answered) = oneshot::channel();
        let question = Question {
            subscriber_id: subscriber_id.to_owned(),
            email_hash: email_hash.map(str::to_owned),
            answer,
        };
        let put = self.questions.send(question).is_ok();
        async move {
            if !put {
                return Standing::Unknown;
            }
            answered.await.unwrap_or(Standing::Unknown)
        }
    }
}

/// One read for the whole group: the subscribers' statuses and the addresses' suppressions.
fn read_standings(conn: &mut AnyConnection, group: &[Question]) -> Result<Vec<Standing>, DbError> {
    let ids: Vec<&str> = group.iter().map(|q| q.subscriber_id.as_str()).collect();
    let hashes: Vec<&str> = group
        .iter()
        .filter_map(|q| q.email_hash.as_deref())
        .collect();
    let mut statuses: HashMap<String, String> = HashMap::with_capacity(group.len());
    let mut suppressed: HashSet<String> = HashSet::new();
    for (key, value, is_suppression) in subscribers::find_standings(conn, &ids, &hashes)? {
        if !is_suppression {
            statuses.insert(key, value);
        } else if SuppressionReason::parse(&value) != Some(SuppressionReason::Erased) {
            // An erased person's row is gone, which the status read already shows.
            suppressed.insert(key);
        }
    }
    Ok(group
        .iter()
        .map(|q| match statuses.get(&q.subscriber_id) {
            None => Standing::Ineligible("subscriber erased"),
            Some(status) => match ineligible_because(status) {
                Some(why) => Standing::Ineligible(why),
                None if q
                    .email_hash
                    .as_ref()
                    .is_some_and(|h| suppressed.contains(h)) =>
                {
                    Standing::Ineligible("suppressed")
                }
                None => Standing::Eligible,
            },
        })
        .collect())
}

//! Records delivery outcomes: every outcome that arrives while the previous commit runs goes
//! into the next one (group commit), and a message's in-flight slot is released only once its
//! outcome is durable. While the database is unreachable, outcomes wait and are written when it
//! returns; the senders, short of slots, wait with them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::db::{self, deliveries, AnyConnection, Db, DbError};

/// What became of one delivery.
#[derive(Debug, Clone)]
pub enum Verdict {
    Sent,
    /// Refused for good (or out of attempts): the error.
    Failed(String),
    /// Not sent and never will be: why (unsubscribed, suppressed, erased…).
    Skipped(&'static str),
    /// Try again at the given time.
    Retry(String, NaiveDateTime),
    /// Not tried (the send was paused or cancelled): back to the queue as it was.
    Release,
}

pub struct Outcome {
    pub newsletter_id: String,
    pub claim: String,
    pub subscriber_id: String,
    pub attempts: i32,
    pub verdict: Verdict,
    /// Set on a hard bounce: the address's suppression hash.
    pub bounced_hash: Option<String>,
    /// The in-flight slot this message held; released when the outcome is committed.
    pub permit: Option<OwnedSemaphorePermit>,
    pub at: NaiveDateTime,
}

/// Most outcomes written in one commit.
const MAX_GROUP: usize = 1024;

/// How long the writer waits for more outcomes before a commit, when other messages are in
/// flight (the idea of PostgreSQL's `commit_delay`). A statement costs the database more than
/// its rows do: on PostgreSQL an outcome statement of 2–3 rows took about 170 µs of the server's
/// CPU and one of 7 about 270 µs, so at thousands of messages a second groups of 2–3 kept a
/// server process busy a third of the time. Waiting 300 µs makes groups of about 7 and frees
/// that CPU for the SMTP exchanges, at the price of each in-flight slot being held that much
/// longer (a message's content takes about a millisecond on loopback; far longer over a network,
/// where the wait matters less still).
const GROUP_DELAY: Duration = Duration::from_micros(300);

/// The in-flight slots, to tell whether more outcomes are on their way.
pub struct Slots {
    pub semaphore: Arc<Semaphore>,
    pub total: usize,
}

impl Slots {
    fn in_flight(&self) -> usize {
        self.total
            .saturating_sub(self.semaphore.available_permits())
    }
}

/// Moves the outcomes already waiting into `group`, up to `MAX_GROUP`.
fn take_waiting(rx: &mut mpsc::UnboundedReceiver<Outcome>, group: &mut Vec<Outcome>) {
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(next) => group.push(next),
            Err(_) => break,
        }
    }
}

pub struct Recorder {
    done: oneshot::Receiver<()>,
}

impl Recorder {
    /// Starts the writer on a thread of its own: each group commit runs there directly, with no
    /// hop through the blocking pool and back, so a slot is freed as soon as its outcome is
    /// durable.
    pub fn start(db: Db, slots: Slots) -> (Self, mpsc::UnboundedSender<Outcome>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
        let (done_tx, done) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("enlace-outcomes".into())
            .spawn(move || {
                let mut writer = Writer { db, conn: None };
                while let Some(first) = rx.blocking_recv() {
                    let mut group = vec![first];
                    take_waiting(&mut rx, &mut group);
                    // Other messages in flight will have outcomes soon: a moment's wait makes
                    // one statement of several.
                    let held = group.iter().filter(|o| o.permit.is_some()).count();
                    if group.len() < MAX_GROUP && slots.in_flight() > held {
                        std::thread::sleep(GROUP_DELAY);
                        take_waiting(&mut rx, &mut group);
                    }
                    let rows: Vec<Row> = group.iter().map(Row::from).collect();
                    let mut wait = Duration::from_millis(100);
                    while let Err(e) = writer.write(&rows) {
                        tracing::error!(
                            error = format!("{e:#}"),
                            "could not record newsletter outcomes; retrying"
                        );
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                    // Dropping the group releases the in-flight slots.
                    drop(group);
                }
                let _ = done_tx.send(());
            });
        if let Err(e) = spawned {
            // Without its thread the receiver is gone: senders see a closed channel and the
            // pipeline ends; `finish` reports the failure.
            tracing::error!(error = %e, "could not start the newsletter outcome writer");
        }
        (Self { done }, tx)
    }

    /// Waits until every outcome sent before the sender was dropped is written.
    pub async fn finish(self) -> anyhow::Result<()> {
        self.done
            .await
            .map_err(|_| anyhow::anyhow!("the newsletter outcome writer stopped early"))
    }
}

/// The outcome writer's own connection, opened on first use and again after an error (the
/// database may have restarted). It commits without waiting for the disk: a crash of Enlace
/// loses nothing committed, a power cut may lose the last outcomes, which then count as in
/// flight (sent again).
struct Writer {
    db: Db,
    conn: Option<AnyConnection>,
}

impl Writer {
    fn write(&mut self, rows: &[Row]) -> Result<(), DbError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let mut conn = self.db.dedicated_connection()?;
                conn.batch_execute(match conn {
                    AnyConnection::Postgresql(_) => "SET synchronous_commit = off",
                    AnyConnection::Sqlite(_) => "PRAGMA synchronous = NORMAL",
                })?;
                self.conn.insert(conn)
            }
        };
        let _turn = self.db.write_turn();
        let result = write_group(conn, rows);
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

/// The part of an outcome the database needs.
struct Row {
    newsletter_id: String,
    claim: String,
    subscriber_id: String,
    verdict: Verdict,
    bounced_hash: Option<String>,
    at: NaiveDateTime,
}

impl From<&Outcome> for Row {
    fn from(o: &Outcome) -> Self {
        Self {
            newsletter_id: o.newsletter_id.clone(),
            claim: o.claim.clone(),
            subscriber_id: o.subscriber_id.clone(),
            verdict: o.verdict.clone(),
            bounced_hash: o.bounced_hash.clone(),
            at: o.at,
        }
    }
}

/// What one group commit does, statement by statement.
enum Write<'a> {
    Finish {
        newsletter_id: &'a str,
        claim: &'a str,
        state: &'a str,
        outcome: Option<&'a str>,
        ids: Vec<&'a str>,
    },
    PutBack {
        newsletter_id: &'a str,
        claim: &'a str,
        ids: Vec<&'a str>,
        run_at: NaiveDateTime,
        retry: bool,
        outcome: Option<&'a str>,
    },
    Bounce {
        subscriber_id: &'a str,
        hash: &'a str,
    },
}

/// Writes the group: one statement on its own (the usual case: every outcome of one claim
/// sent), several in one transaction.
fn write_group(conn: &mut AnyConnection, rows: &[Row]) -> Result<(), DbError> {
    let now = rows.iter().map(|r| r.at).max().unwrap_or_else(db::now);
    // Same newsletter, claim and verdict: one statement.
    let mut groups: BTreeMap<(&str, &str, &str, Option<&str>), Vec<&str>> = BTreeMap::new();
    let mut writes = Vec::new();
    for row in rows {
        let key_verdict: (&str, Option<&str>) = match &row.verdict {
            Verdict::Sent => (deliveries::SENT, None),
            Verdict::Failed(e) => (deliveries::FAILED, Some(e.as_str())),
            Verdict::Skipped(why) => (deliveries::SKIPPED, Some(why)),
            Verdict::Release => ("release", None),
            Verdict::Retry(e, run_at) => {
                writes.push(Write::PutBack {
                    newsletter_id: &row.newsletter_id,
                    claim: &row.claim,
                    ids: vec![row.subscriber_id.as_str()],
                    run_at: *run_at,
                    retry: true,
                    outcome: Some(e),
                });
                continue;
            }
        };
        groups
            .entry((&row.newsletter_id, &row.claim, key_verdict.0, key_verdict.1))
            .or_default()
            .push(&row.subscriber_id);
    }
    for ((newsletter_id, claim, state, outcome), ids) in groups {
        writes.push(if state == "release" {
            Write::PutBack {
                newsletter_id,
                claim,
                ids,
                run_at: now,
                retry: false,
                outcome: None,
            }
        } else {
            Write::Finish {
                newsletter_id,
                claim,
                state,
                outcome,
                ids,
            }
        });
    }
    for row in rows {
        if let Some(hash) = &row.bounced_hash {
            writes.push(Write::Bounce {
                subscriber_id: &row.subscriber_id,
                hash,
            });
        }
    }
    let run = |conn: &mut AnyConnection, writes: &[Write]| -> Result<(), DbError> {
        for write in writes {
            match write {
                Write::Finish {
                    newsletter_id,
                    claim,
                    state,
                    outcome,
                    ids,
                } => {
                    deliveries::finish(conn, newsletter_id, claim, ids, state, *outcome, now)?;
                    // A server's reply (a skip's reason is Enlace's own wording).
                    if *state == deliveries::FAILED {
                        deliveries::forget_outcomes_of_erased(conn, newsletter_id, ids)?;
                    }
                }
                Write::PutBack {
                    newsletter_id,
                    claim,
                    ids,
                    run_at,
                    retry,
                    outcome,
                } => {
                    deliveries::put_back(
                        conn,
                        newsletter_id,
                        claim,
                        ids,
                        *run_at,
                        *retry,
                        *outcome,
                    )?;
                    if outcome.is_some() {
                        deliveries::forget_outcomes_of_erased(conn, newsletter_id, ids)?;
                    }
                }
                Write::Bounce {
                    subscriber_id,
                    hash,
                } => {
                    if let Some(id) = crate::db::ids::SubscriberId::parse(subscriber_id) {
                        crate::signup::record_hard_bounce(conn, &id, hash, now)?;
                    }
                }
            }
        }
        Ok(())
    };
    match writes.as_slice() {
        [] => Ok(()),
        // One statement needs no transaction of its own (a server's reply is two: see
        // `forget_outcomes_of_erased`).
        [single @ (Write::Finish { .. } | Write::PutBack { outcome: None, .. })] if !matches!(single, Write::Finish { state, .. } if *state == deliveries::FAILED) => {
            run(conn, std::slice::from_ref(single))
        }
        _ => db::write_transaction(conn, |conn| run(conn, &writes)),
    }
}

/// Whether a permanent SMTP refusal says the mailbox does not exist (RFC 3463 5.1.x, or the
/// bare 550/551/553 replies), as opposed to a refusal of the message itself (5.7.x: policy).
pub fn is_hard_bounce(error: &str) -> bool {
    if error.contains(" 5.7.") {
        return false;
    }
    error.contains(" 5.1.")
        || ["(550)", "(551)", "(553)"]
            .iter()
            .any(|code| error.contains(code))
}

/// Why a delivery was not sent, as the words the engine records (`Verdict::Skipped`, and
/// `deliveries::skip_cancelled`): none of them is about the person in particular.
const SKIP_REASONS: [&str; 8] = [
    "unsubscribed",
    "bounced",
    "complained",
    "not confirmed",
    "suppressed",
    "subscriber erased",
    "newsletter deleted",
    "newsletter cancelled",
];

/// Kinds of failure that happen before any SMTP reply, by how the recorded error begins.
const LOCAL_FAILURES: [(&str, &str); 7] = [
    (super::guard::RENDER_FAILURE, "rendering"),
    ("building the message", "building the message"),
    ("message refused before sending", "refused before sending"),
    ("connecting to the SMTP server", "connection"),
    ("SMTP connection timed out", "timed out"),
    ("SMTP send timed out", "timed out"),
    ("writing ", "outbox"),
];

/// The class of a recorded outcome, as a newsletter's results keep it: the SMTP reply code with
/// its enhanced status (`550 5.1.1`, or `451` when the reply has none), the engine's word for a
/// skip (`unsubscribed`, `suppressed`…), a short kind of local failure (`rendering`,
/// `connection`…), `other` for anything else, and `""` for no outcome (a message sent, or one
/// whose reply an erasure cleared). Never the server's text, which may quote the address.
pub fn outcome_class(outcome: Option<&str>) -> String {
    let Some(text) = outcome else {
        return String::new();
    };
    if let Some(word) = SKIP_REASONS.iter().find(|w| **w == text) {
        return (*word).to_owned();
    }
    if let Some(reply) = smtp_reply_class(text) {
        return reply;
    }
    LOCAL_FAILURES
        .iter()
        .find(|(start, _)| text.starts_with(start))
        .map_or("other", |(_, kind)| kind)
        .to_owned()
}

/// `550 5.1.1` from an SMTP client error such as `permanent error (550): 5.1.1 [address] User
/// unknown`; the code alone when the reply does not begin with an enhanced status code of the
/// same class (RFC 3463).
fn smtp_reply_class(text: &str) -> Option<String> {
    let start = text.find("error (")? + "error (".len();
    let code = text.get(start..start + 3)?;
    let first = *code.as_bytes().first()?;
    if !code.bytes().all(|b| b.is_ascii_digit()) || text.get(start + 3..start + 4) != Some(")") {
        return None;
    }
    let status = text[start + 4..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()
        .filter(|token| {
            let parts: Vec<&str> = token.split('.').collect();
            parts.len() == 3
                && parts[0].as_bytes() == [first]
                && parts[1..]
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
        });
    Some(match status {
        Some(status) => format!("{code} {status}"),
        None => code.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::{is_hard_bounce, outcome_class};

    #[test]
    fn outcomes_are_classed_without_the_servers_text() {
        let class = |text: &str| outcome_class(Some(text));
        assert_eq!(outcome_class(None), "");
        assert_eq!(
            class("permanent error (550): 5.1.1 [address] User unknown"),
            "550 5.1.1"
        );
        assert_eq!(
            class("transient error (451): 4.3.0 Try again later"),
            "451 4.3.0"
        );
        assert_eq!(
            class("permanent error (554): ana@example.org refused"),
            "554"
        );
        assert_eq!(class("permanent error (550): 4.1.1 mismatched"), "550");
        assert_eq!(class("permanent error (550)"), "550");
        assert_eq!(class("unsubscribed"), "unsubscribed");
        assert_eq!(class("newsletter cancelled"), "newsletter cancelled");
        assert_eq!(class("rendering: undefined value"), "rendering");
        assert_eq!(
            class("message refused before sending: non-ASCII addresses"),
            "refused before sending"
        );
        assert_eq!(
            class("connecting to the SMTP server: Connection refused"),
            "connection"
        );
        assert_eq!(class("SMTP send timed out"), "timed out");
        assert_eq!(class("ana@example.org said no"), "other");
        assert_eq!(class("unsubscribed ana@example.org"), "other");
        assert_eq!(class("error (5x0): x"), "other");
    }

    #[test]
    fn mailbox_refusals_are_hard_bounces_and_policy_refusals_are_not() {
        assert!(is_hard_bounce(
            "permanent error (550): 5.1.1 [address] User unknown"
        ));
        assert!(is_hard_bounce(
            "permanent error (553): mailbox name not allowed"
        ));
        assert!(!is_hard_bounce(
            "permanent error (550): 5.7.1 Message rejected as spam"
        ));
        assert!(!is_hard_bounce("permanent error (554): transaction failed"));
    }
}

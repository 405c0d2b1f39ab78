//! Sends: scheduling a newsletter (now or at a time) and the staff transitions of a send
//! (pause, resume, cancel). Each wakes the engine once its transaction has committed.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use tokio::sync::Notify;

use super::{compile_apart, find, Rendering};
use crate::auth::Principal;
use crate::db::ids::NewsletterId;
use crate::db::newsletters as store;
use crate::db::states::NewsletterState;
use crate::db::{self, deliveries, Db, DbError};
use crate::domain::{FieldErrors, Language, SegmentFilter};
use crate::email::newsletter::CompiledNewsletter;
use crate::sending::prepare::{content_of, target_filter};

/// When to send (`None`: now), and the key that makes a repeated request a no-op.
#[derive(Debug, Default)]
pub struct SendInput {
    pub send_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    /// The newsletter's `updated_at` as the sender last saw it (on a confirmation page): a
    /// change since is refused (`ChangedMeanwhile`) rather than sent unseen.
    pub read_version: Option<NaiveDateTime>,
}

/// Whom a send would reach if it started now, per language, and from which address.
#[derive(Debug)]
pub struct Audience {
    pub by_language: Vec<(Language, i64)>,
    pub from: String,
    /// The newsletter's `updated_at`: what the counts were taken for.
    pub version: NaiveDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error("no such newsletter")]
    NotFound,
    #[error("the newsletter has no audience yet")]
    NoAudience,
    /// Its segment was deleted, or its filter names a field or interest that no longer exists.
    #[error("the newsletter's audience can no longer be read: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the send request has invalid fields")]
    Invalid(FieldErrors),
    #[error("no such newsletter")]
    NotFound,
    #[error(
        "the newsletter is {0} (send it again with the same Idempotency-Key to get its state)"
    )]
    NotSendable(NewsletterState),
    #[error("sending is refused while ENLACE_POSTAL_ADDRESS is unset: bulk-mail law requires the sender's postal address in every newsletter")]
    NoPostalAddress,
    #[error("the newsletter changed meanwhile; try again")]
    ChangedMeanwhile,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// How many people newsletter `id` would reach if its send started now, per language (the
/// send fixes its recipients when it starts: confirmed people its segment or filter reaches), and
/// the From address it would carry (`default_from` when it names none).
pub async fn audience(
    db: &Db,
    default_from: &str,
    id: NewsletterId,
) -> Result<Audience, AudienceError> {
    let backend = db.backend();
    let default_from = default_from.to_owned();
    db.run(move |conn| {
        db::read_snapshot(conn, |conn| -> Result<Audience, AudienceError> {
            let n = store::find_newsletter(conn, &id)?.ok_or(AudienceError::NotFound)?;
            if n.segment_id.is_none() && n.filter.is_none() {
                return Err(AudienceError::NoAudience);
            }
            let filter =
                target_filter(conn, &n).map_err(|e| AudienceError::Unreadable(e.to_string()))?;
            let mut by_language = Vec::new();
            for language in Language::ALL {
                let within =
                    SegmentFilter::All(vec![filter.clone(), SegmentFilter::Language(language)]);
                let count = db::segments::count_recipients(conn, &within, backend)?;
                by_language.push((language, count));
            }
            Ok(Audience {
                by_language,
                from: n.from_address.unwrap_or(default_from),
                version: n.updated_at,
            })
        })
    })
    .await
}

/// Pausing, resuming or cancelling a send.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error("no such newsletter")]
    NotFound,
    #[error("a {status} newsletter cannot be {done}")]
    Refused {
        status: NewsletterState,
        done: &'static str,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

from_diesel!(SendError, TransitionError, AudienceError);

/// When a send asked for at `send_at` starts: now, or a time within the coming year.
fn start_time(
    send_at: Option<DateTime<Utc>>,
    now: NaiveDateTime,
) -> Result<NaiveDateTime, SendError> {
    let Some(at) = send_at else {
        return Ok(now);
    };
    let invalid = |message| SendError::Invalid(FieldErrors::one("send_at", message));
    let at = at.naive_utc();
    if at < now - Duration::minutes(1) {
        return Err(invalid("is in the past; leave it out to send now"));
    }
    if at > now + Duration::days(366) {
        return Err(invalid("must be within a year"));
    }
    Ok(at.max(now))
}

/// Schedules a draft (or an overdue send) to go out at the time asked for, and wakes the engine.
/// The same request again with the same idempotency key changes nothing. Refused while no postal
/// address is configured (bulk-mail law requires it in every newsletter), without an audience, or
/// when the templates no longer compile against the fields declared now.
pub async fn send(
    db: &Db,
    rendering: Rendering<'_>,
    send_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: NewsletterId,
    input: SendInput,
) -> Result<(), SendError> {
    let now = db::now();
    let send_at = start_time(input.send_at, now)?;
    let key = input.idempotency_key;
    let read_version = input.read_version;
    // The templates are checked against the fields declared now (some may have been removed
    // since the draft was saved), apart from the database, before the transaction.
    let stored = find(db, &id).await?.ok_or(SendError::NotFound)?;
    let compiled: Result<CompiledNewsletter, FieldErrors> =
        compile_apart::<SendError>(db, rendering, content_of(&stored)?).await?;
    let postal_address_set = rendering.settings.postal_address.is_some();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<(), SendError> {
        let n = store::find_newsletter(conn, &id)?.ok_or(SendError::NotFound)?;
        // The same request again: leave the send as it stands.
        if key.is_some() && n.send_key == key && n.status != NewsletterState::Draft {
            return Ok(());
        }
        if !matches!(n.status, NewsletterState::Draft | NewsletterState::Overdue) {
            return Err(SendError::NotSendable(n.status));
        }
        if !postal_address_set {
            return Err(SendError::NoPostalAddress);
        }
        if n.segment_id.is_none() && n.filter.is_none() {
            return Err(SendError::Invalid(FieldErrors::one(
                "segment_id",
                "the newsletter needs a segment_id or a filter before it is sent",
            )));
        }
        let seen = read_version.unwrap_or(stored.updated_at);
        if n.updated_at != stored.updated_at || n.updated_at != seen {
            return Err(SendError::ChangedMeanwhile);
        }
        compiled.map_err(SendError::Invalid)?;
        target_filter(conn, &n)
            .map_err(|e| SendError::Invalid(FieldErrors::one("segment_id", e.to_string())))?;
        if !store::schedule(conn, &n.id, send_at, key.as_deref(), now)? {
            return Err(SendError::ChangedMeanwhile);
        }
        actor.audit(
            conn,
            ip.as_deref(),
            "newsletter.send",
            "newsletter",
            Some(&n.id),
        )?;
        Ok(())
    })
    .await?;
    send_ready.notify_one();
    Ok(())
}

/// A staff transition of a send.
#[derive(Clone, Copy)]
enum Move {
    Pause,
    Resume,
    Cancel,
}

impl Move {
    /// The states it moves from (a cancel: any state not yet finished) and the one it moves to.
    fn states(self) -> (&'static [NewsletterState], NewsletterState) {
        match self {
            Self::Pause => (&[NewsletterState::Sending], NewsletterState::Paused),
            Self::Resume => (&[NewsletterState::Paused], NewsletterState::Sending),
            Self::Cancel => (&[], NewsletterState::Cancelled),
        }
    }

    /// The name in the audit log, and the word for a refusal.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Pause => ("newsletter.pause", "paused"),
            Self::Resume => ("newsletter.resume", "resumed"),
            Self::Cancel => ("newsletter.cancel", "cancelled"),
        }
    }
}

/// Makes one staff transition of a send (a cancel also skips the deliveries not yet made), and
/// wakes the engine after commit.
async fn transition(
    db: &Db,
    send_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: NewsletterId,
    step: Move,
) -> Result<(), TransitionError> {
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let ((from, to), (action, done)) = (step.states(), step.names());
    db.transaction(move |conn| -> Result<(), TransitionError> {
        let n = store::find_newsletter(conn, &id)?.ok_or(TransitionError::NotFound)?;
        let now = db::now();
        let moved = if to == NewsletterState::Cancelled {
            store::cancel(conn, &id, now)?
        } else {
            store::transition(conn, &id, from, to, now)?
        };
        if !moved {
            return Err(TransitionError::Refused {
                status: n.status,
                done,
            });
        }
        if to == NewsletterState::Cancelled {
            deliveries::skip_cancelled(conn)?;
        }
        actor.audit(conn, ip.as_deref(), action, "newsletter", Some(&id))?;
        Ok(())
    })
    .await?;
    send_ready.notify_one();
    Ok(())
}

/// Pauses a send in progress.
pub async fn pause(
    db: &Db,
    send_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: NewsletterId,
) -> Result<(), TransitionError> {
    transition(db, send_ready, actor, ip, id, Move::Pause).await
}

/// Resumes a paused send.
pub async fn resume(
    db: &Db,
    send_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: NewsletterId,
) -> Result<(), TransitionError> {
    transition(db, send_ready, actor, ip, id, Move::Resume).await
}

/// Cancels a send that has not finished.
pub async fn cancel(
    db: &Db,
    send_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: NewsletterId,
) -> Result<(), TransitionError> {
    transition(db, send_ready, actor, ip, id, Move::Cancel).await
}

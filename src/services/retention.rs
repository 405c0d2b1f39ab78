//! Personal data kept only as long as it has a purpose. People who signed up and never
//! confirmed are removed once their link has been expired for the retention period
//! (`ENLACE_UNCONFIRMED_RETENTION_DAYS`): their row, interests, consent records, tokens and
//! queued mail, the text of any report about their address and their lines in imports not yet
//! run, as an erasure removes them, with a tombstone in the change feed and a
//! `subscriber.erased` webhook so that other tools drop their copies too. Unlike an erasure,
//! nothing is suppressed: they may sign up again.
//!
//! A newsletter's deliveries, one row per recipient, are kept for
//! `ENLACE_DELIVERY_RETENTION_DAYS` after it finished (sent or cancelled), then folded into its
//! results: counts by language, state, class of reason and hour, which name nobody.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, NaiveDateTime, Timelike};

use crate::db::delivery_results::{self as results, ResultKey, Taken};
use crate::db::{self, subscribers as store, Db, DbError};
use crate::email::Mailer;
use crate::tokens;

/// People removed per transaction, so a large backlog never holds the write lock for long.
const BATCH: i64 = 200;

/// Removes everyone who never confirmed and whose last link expired more than `keep_days`
/// before `now`; returns how many.
pub async fn purge_unconfirmed(
    db: &Db,
    mailer: &Arc<Mailer>,
    now: NaiveDateTime,
    keep_days: u32,
) -> Result<usize, DbError> {
    let cutoff = now - Duration::days(i64::from(keep_days));
    let mut total = 0;
    loop {
        let removed = db
            .transaction(move |conn| -> Result<_, DbError> {
                let people = db::retention::unconfirmed_before(conn, cutoff, BATCH)?;
                let mut removed = Vec::with_capacity(people.len());
                for (id, email) in people {
                    // Deleted first: a confirmation arriving meanwhile finds nobody, and a
                    // purge in another process finds nothing left to remove.
                    if !store::delete_subscriber(conn, &id)? {
                        continue;
                    }
                    db::mail_events::forget_details(conn, &tokens::email_hash(&email))?;
                    db::deliveries::forget_outcomes(conn, &id)?;
                    crate::imports::forget_address(conn, &email)?;
                    store::insert_tombstone(conn, &id, now)?;
                    crate::webhooks::emit_erased(conn, &id, now)?;
                    removed.push(email);
                }
                Ok(removed)
            })
            .await?;
        if removed.is_empty() {
            break;
        }
        total += removed.len();
        let mailer = mailer.clone();
        // Their confirmation messages in the outbox folder (when mail is written to files).
        let _ = tokio::task::spawn_blocking(move || {
            for address in removed {
                if let Err(e) = mailer.forget_recipient(&address) {
                    tracing::error!(error = %e, "could not remove a purged person's outbox messages");
                }
            }
        })
        .await;
    }
    if total > 0 {
        let purging = db.clone();
        let _ = tokio::task::spawn_blocking(move || purging.purge_deleted()).await;
        tracing::info!(
            removed = total,
            "unconfirmed signups past their retention removed"
        );
    }
    Ok(total)
}

/// Deliveries folded per transaction: a large newsletter is folded in several, each of which
/// deletes its rows and adds their counts together.
const FOLD_BATCH: i64 = 1000;

/// Folds into their newsletter's results the deliveries of every newsletter that finished (was
/// sent or cancelled) more than `keep_days` before `now`; `keep_days` 0 keeps them all. Returns
/// how many deliveries were folded. A newsletter that may still send (scheduled, sending,
/// paused) is never touched: its deliveries are what keeps each message to one sending.
///
/// Safe to run in several processes at once: each transaction counts only the rows it deleted.
pub async fn fold_deliveries(
    db: &Db,
    now: NaiveDateTime,
    keep_days: u32,
) -> Result<usize, DbError> {
    if keep_days == 0 {
        return Ok(0);
    }
    // A period reaching before the calendar begins: nothing is that old.
    let Some(cutoff) = now.checked_sub_signed(Duration::days(i64::from(keep_days))) else {
        return Ok(0);
    };
    let due = db
        .run(move |conn| results::due_newsletters(conn, cutoff).map_err(DbError::from))
        .await?;
    let mut total = 0;
    for newsletter_id in due {
        loop {
            let id = newsletter_id.clone();
            let folded = db
                .transaction(move |conn| -> Result<usize, DbError> {
                    let taken = results::take_deliveries(conn, &id, cutoff, FOLD_BATCH)?;
                    results::add(conn, &id, &tally(&taken))?;
                    Ok(taken.len())
                })
                .await?;
            total += folded;
            // Fewer than a batch: this newsletter is done (or another process holds the rest).
            if (folded as i64) < FOLD_BATCH {
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(
            folded = total,
            "newsletter deliveries past their retention folded into the results"
        );
    }
    Ok(total)
}

/// The results lines of some deliveries: each counted under its subscriber's language
/// (`unknown` once they are gone), its state, the class of its outcome and the hour it was sent
/// (or, unsent, last due).
fn tally(taken: &[Taken]) -> BTreeMap<ResultKey, i64> {
    let mut counts = BTreeMap::new();
    for t in taken {
        let at = t.sent_at.unwrap_or(t.run_at);
        let key = ResultKey {
            language: t
                .language
                .clone()
                .unwrap_or_else(|| results::UNKNOWN_LANGUAGE.to_owned()),
            state: t.state.clone(),
            reason: crate::sending::outcome_class(t.outcome.as_deref()),
            hour: at.date().and_hms_opt(at.hour(), 0, 0).unwrap_or(at),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

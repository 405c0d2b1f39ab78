//! Personal data kept only as long as it has a purpose. People who signed up and never
//! confirmed are removed once their link has been expired for the retention period
//! (`ENLACE_UNCONFIRMED_RETENTION_DAYS`): their row, interests, consent records, tokens and
//! queued mail, the text of any report about their address and their lines in imports not yet
//! run, as an erasure removes them, with a tombstone in the change feed and a
//! `subscriber.erased` webhook so that other tools drop their copies too. Unlike an erasure,
//! nothing is suppressed: they may sign up again.

use std::sync::Arc;

use chrono::{Duration, NaiveDateTime};

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

//! A person's rights over their data: seeing everything held about them (an access request)
//! and having it erased.

use std::sync::Arc;

use super::{audit, load_record, GetSubscriberError, SubscriberRecord};
use crate::auth::Principal;
use crate::db::consent::{list_consent_events, ConsentEvent};
use crate::db::deliveries::DeliveryRecord;
use crate::db::ids::SubscriberId;
use crate::db::jobs::MailRecord;
use crate::db::mail_events::MailEventRow;
use crate::db::subscribers as store;
use crate::db::{self, Db, DbError};
use crate::domain::SuppressionReason;
use crate::email::Mailer;
use crate::tokens;

/// Everything held about one person, for an access request (GDPR Art. 15).
pub struct PersonalData {
    pub record: SubscriberRecord,
    pub consent: Vec<ConsentEvent>,
    pub mails: Vec<MailRecord>,
    pub newsletters: Vec<DeliveryRecord>,
    pub mail_reports: Vec<MailEventRow>,
}

/// Reads everything held about the person; the reading itself goes in the audit log.
pub async fn personal_data(
    db: &Db,
    actor: &Principal,
    client_ip: Option<String>,
    id: &SubscriberId,
) -> Result<PersonalData, GetSubscriberError> {
    let (actor, id) = (actor.clone(), id.clone());
    db.transaction(move |conn| -> Result<_, GetSubscriberError> {
        let record = load_record(conn, &id)?.ok_or(GetSubscriberError::NotFound)?;
        let consent = list_consent_events(conn, &id)?;
        let mails = db::jobs::list_mail_for_subscriber(conn, &id)?;
        let newsletters = db::deliveries::list_for_subscriber(conn, &id)?;
        let hash = tokens::email_hash(&record.subscriber.email);
        let mail_reports = db::mail_events::list_mail_events_for_address(conn, &hash)?;
        // Reading someone's whole record is itself worth a line in the audit log.
        audit(
            conn,
            &actor,
            client_ip.as_deref(),
            "subscriber.data_access",
            &id,
        )?;
        Ok(PersonalData {
            record,
            consent,
            mails,
            newsletters,
            mail_reports,
        })
    })
    .await
}

#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("no such subscriber")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for EraseError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Erasure: personal data goes at once (profile, interests, consent ledger, queued mail and
/// tokens, the text of bounce reports and delivery outcomes about them, their records in
/// imports still running); a hash of the address stays suppressed and a tombstone keeps only
/// the id and time. Once committed, the copies outside the live rows go too (`purge_erased`).
/// The address comes back only through the person's own new confirmation.
pub async fn erase(
    db: &Db,
    actor: &Principal,
    client_ip: Option<String>,
    mailer: &Arc<Mailer>,
    id: &SubscriberId,
) -> Result<(), EraseError> {
    let (actor, target) = (actor.clone(), id.clone());
    let address = db
        .transaction(move |conn| -> Result<_, EraseError> {
            let id = target;
            let subscriber = store::find_subscriber(conn, &id)?.ok_or(EraseError::NotFound)?;
            // Delete first: of two erasures at once, the second finds nothing to delete.
            if !store::delete_subscriber(conn, &id)? {
                return Err(EraseError::NotFound);
            }
            let now = db::now();
            let hash = tokens::email_hash(&subscriber.email);
            db::mail_events::forget_details(conn, &hash)?;
            db::deliveries::forget_outcomes(conn, &id)?;
            crate::imports::forget_address(conn, &subscriber.email)?;
            if db::suppressions::find_suppression(conn, &hash)?.is_none() {
                db::suppressions::insert_suppression(conn, &hash, SuppressionReason::Erased, now)?;
            }
            store::insert_tombstone(conn, &id, now)?;
            crate::webhooks::emit_erased(conn, &id, now)?;
            audit(conn, &actor, client_ip.as_deref(), "subscriber.erase", &id)?;
            Ok(subscriber.email)
        })
        .await?;
    tracing::info!(subscriber_id = %id, "subscriber erased");
    purge_erased(db, mailer, id, address).await;
    Ok(())
}

/// After an erasure commits: the messages to the person still in the outbox folder are removed,
/// and the database drops its other copies of the deleted rows (`Db::purge_deleted`: on SQLite
/// the WAL, on PostgreSQL the planner's samples) before the erasure is answered. A checkpoint
/// held up by a long reader (an export, say) is tried again in the background until it passes.
/// Failures are logged; the erasure itself stands.
async fn purge_erased(db: &Db, mailer: &Arc<Mailer>, subscriber_id: &str, address: String) {
    let mailer = mailer.clone();
    match tokio::task::spawn_blocking(move || mailer.forget_recipient(&address)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(removed)) => {
            tracing::info!(
                subscriber_id,
                removed,
                "erased person's outbox messages removed"
            )
        }
        Ok(Err(e)) => tracing::error!(
            subscriber_id,
            error = %e,
            "could not remove the erased person's outbox messages"
        ),
        Err(e) => tracing::error!(subscriber_id, error = %e, "outbox clean-up task failed"),
    }
    let purging = db.clone();
    let purged = tokio::task::spawn_blocking(move || purging.purge_deleted()).await;
    match purged {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            tracing::warn!(
                subscriber_id,
                "readers held up the checkpoint after an erasure; retrying"
            );
            let db = db.clone();
            let subscriber_id = subscriber_id.to_owned();
            tokio::spawn(async move {
                for _ in 0..60 {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    let db = db.clone();
                    if let Ok(Ok(true)) =
                        tokio::task::spawn_blocking(move || db.purge_deleted()).await
                    {
                        tracing::info!(%subscriber_id, "checkpoint after an erasure done");
                        return;
                    }
                }
                tracing::error!(%subscriber_id, "no checkpoint after an erasure for five minutes; the WAL still holds erased rows until the next one");
            });
        }
        Ok(Err(e)) => tracing::error!(subscriber_id, error = %e, "purging after an erasure failed"),
        Err(e) => tracing::error!(subscriber_id, error = %e, "purging after an erasure failed"),
    }
}

//! What people do themselves, through the public form and the links in their mail: subscribe,
//! confirm (or renew an expired link), unsubscribe and choose their interests; and what their
//! mailbox providers report about them: bounces and spam complaints. Each records its evidence
//! in the consent ledger through `signup`.

use chrono::NaiveDateTime;
use tokio::sync::Notify;

use crate::auth::{Actor, Principal};
use crate::bounces::{apply_report, MailReport, ReportOutcome, SoftBouncePolicy};
use crate::db::ids::{NewsletterId, SubscriberId};
use crate::db::interests::{list_interests, list_public_interests, Interest};
use crate::db::newsletter_actions::{self, Action};
use crate::db::subscribers::{self as store, Subscriber};
use crate::db::{self, Db, DbError};
use crate::domain::{FieldErrors, Language};
use crate::email::Templates;
use crate::signup::confirm::{self, ConfirmOutcome};
use crate::signup::manage::{self, PreferencesChange, PreferencesOutcome};
use crate::signup::{Evidence, Signup, SignupError, SignupOutcome, SignupPolicy, SignupQueue};

/// A public signup: handed to the signup writer, which commits it with others arriving at the
/// same time (`signup::SignupQueue`) and wakes the mail worker.
pub async fn subscribe(queue: &SignupQueue, signup: Signup) -> Result<SignupOutcome, SignupError> {
    queue.submit(signup).await
}

/// What a confirmation link would do, without doing it (link scanners fetch GETs), and the
/// interests being confirmed: those of the signup form the link carries, or those held.
pub async fn inspect_confirmation(
    db: &Db,
    token: String,
) -> Result<(ConfirmOutcome, Vec<Interest>), DbError> {
    db.run(move |conn| {
        let (outcome, proposal) = confirm::inspect_token(conn, &token, db::now())?;
        let interests = match (&outcome, proposal) {
            (ConfirmOutcome::Confirmed { .. }, Some(proposal)) => {
                proposal.chosen_interests(list_interests(conn)?)
            }
            (ConfirmOutcome::Confirmed { subscriber_id, .. }, None) => {
                store::list_subscriber_interests(conn, subscriber_id)?
            }
            _ => Vec::new(),
        };
        Ok((outcome, interests))
    })
    .await
}

/// Confirms through the link's token (`signup::confirm::confirm`); the welcome mail goes once
/// the confirmation has committed.
pub async fn confirm(
    db: &Db,
    templates: &std::sync::Arc<Templates>,
    mail_ready: &Notify,
    token: String,
    evidence: Evidence,
) -> Result<ConfirmOutcome, DbError> {
    let templates = templates.clone();
    let outcome = db
        .transaction(move |conn| {
            confirm::confirm(conn, &templates, &token, &evidence, db::now()).map_err(DbError::from)
        })
        .await?;
    if matches!(outcome, ConfirmOutcome::Confirmed { .. }) {
        mail_ready.notify_one();
    }
    Ok(outcome)
}

/// A fresh link for an expired one, within the resend limits; the outcome is that of the old
/// link, the same whether or not a mail went out.
pub async fn renew(
    db: &Db,
    policy: &SignupPolicy,
    mail_ready: &Notify,
    token: String,
) -> Result<ConfirmOutcome, DbError> {
    let policy = policy.clone();
    let (outcome, sent) = db
        .transaction(move |conn| {
            confirm::renew(conn, &policy, &token, db::now()).map_err(DbError::from)
        })
        .await?;
    if sent {
        mail_ready.notify_one();
    }
    Ok(outcome)
}

/// The interests a subscriber holds.
pub async fn interests_of(db: &Db, subscriber_id: &str) -> Result<Vec<Interest>, DbError> {
    let id = subscriber_id.to_owned();
    db.run(move |conn| store::list_subscriber_interests(conn, &id).map_err(DbError::from))
        .await
}

/// The language a subscriber reads, when they are still on the list.
pub async fn language_of(db: &Db, subscriber_id: &str) -> Result<Option<Language>, DbError> {
    let Some(id) = SubscriberId::parse(subscriber_id) else {
        return Ok(None);
    };
    let found = db
        .run(move |conn| store::find_subscriber(conn, &id).map_err(DbError::from))
        .await?;
    Ok(found.and_then(|s| Language::parse(&s.language).ok()))
}

/// Unsubscribes from everything through the link in a mail; whether the status changed
/// (a repeat, or someone erased since, changes nothing).
///
/// `from` is the newsletter whose link was followed, if one was: the unsubscribe is counted in
/// its results (no more than a count by language and hour), in the same transaction.
pub async fn unsubscribe(
    db: &Db,
    templates: &std::sync::Arc<Templates>,
    subscriber_id: &str,
    evidence: Evidence,
    from: Option<NewsletterId>,
) -> Result<bool, DbError> {
    let (templates, id) = (templates.clone(), subscriber_id.to_owned());
    db.transaction(move |conn| {
        let now = db::now();
        let changed = manage::unsubscribe(conn, &templates, &id, &evidence, now)?;
        if changed {
            count_for_newsletter(conn, from.as_ref(), &id, Action::Unsubscribe, now)?;
        }
        Ok::<_, DbError>(changed)
    })
    .await
}

/// Counts what a person did through a newsletter's link in that newsletter's results, under
/// their language; a link without a newsletter counts nowhere.
fn count_for_newsletter(
    conn: &mut db::AnyConnection,
    newsletter: Option<&NewsletterId>,
    subscriber_id: &str,
    action: Action,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    let Some(newsletter) = newsletter else {
        return Ok(());
    };
    let language = match SubscriberId::parse(subscriber_id) {
        Some(id) => store::find_subscriber(conn, &id)?.map(|s| s.language),
        None => None,
    };
    let language = language.unwrap_or_else(|| db::delivery_results::UNKNOWN_LANGUAGE.to_owned());
    newsletter_actions::record(conn, newsletter.as_str(), &language, action, now)?;
    Ok(())
}

/// What the preferences page shows.
pub struct Preferences {
    pub subscriber: Subscriber,
    /// Their interests, and every public one besides.
    pub interests: Vec<(Interest, bool)>,
}

/// The person's preferences, `None` once they have been erased.
pub async fn preferences(db: &Db, subscriber_id: &str) -> Result<Option<Preferences>, DbError> {
    let Some(id) = SubscriberId::parse(subscriber_id) else {
        return Ok(None);
    };
    db.run(move |conn| -> Result<_, DbError> {
        let Some(subscriber) = store::find_subscriber(conn, &id)? else {
            return Ok(None);
        };
        let mine = store::list_subscriber_interests(conn, &id)?;
        let mut shown = list_public_interests(conn)?;
        // A private interest they hold is shown too, so they can leave it.
        for interest in &mine {
            if !shown.iter().any(|i| i.slug == interest.slug) {
                shown.push(interest.clone());
            }
        }
        let interests = shown
            .into_iter()
            .map(|i| {
                let held = mine.iter().any(|m| m.slug == i.slug);
                (i, held)
            })
            .collect();
        Ok(Some(Preferences {
            subscriber,
            interests,
        }))
    })
    .await
}

#[derive(Debug, thiserror::Error)]
pub enum PreferencesError {
    #[error("invalid preferences")]
    Invalid(FieldErrors),
    /// Erased since the mail was sent.
    #[error("no such subscriber")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Saves name, language and interests from the preferences page (`signup::manage`).
pub async fn update_preferences(
    db: &Db,
    templates: &std::sync::Arc<Templates>,
    subscriber_id: &str,
    change: PreferencesChange,
    evidence: Evidence,
    from: Option<NewsletterId>,
) -> Result<(), PreferencesError> {
    let (templates, id) = (templates.clone(), subscriber_id.to_owned());
    let outcome = db
        .transaction(move |conn| {
            let now = db::now();
            let outcome =
                manage::update_preferences(conn, &templates, &id, &change, &evidence, now)?;
            if matches!(outcome, PreferencesOutcome::Saved) {
                count_for_newsletter(conn, from.as_ref(), &id, Action::Preferences, now)?;
            }
            Ok::<_, DbError>(outcome)
        })
        .await?;
    match outcome {
        PreferencesOutcome::Saved => Ok(()),
        PreferencesOutcome::UnknownInterest(slug) => Err(PreferencesError::Invalid(
            FieldErrors::one("interests", format!("unknown interest: {slug}")),
        )),
        PreferencesOutcome::NotFound => Err(PreferencesError::NotFound),
    }
}

/// Who sent bounce reports, for the audit log: staff or a key (`None` for a provider's signed
/// webhook, which has no principal).
pub struct Reporter<'a> {
    pub principal: &'a Principal,
    pub client_ip: Option<&'a str>,
}

/// Applies bounce and complaint reports, each once and in its own transaction
/// (`bounces::apply_report`); what became of each, in order.
pub async fn record_reports(
    db: &Db,
    policy: SoftBouncePolicy,
    reports: Vec<MailReport>,
    reporter: Option<Reporter<'_>>,
) -> Result<Vec<(MailReport, ReportOutcome)>, DbError> {
    let audit = reporter.map(|r| {
        let (actor_type, id) = match r.principal {
            Principal::Staff { id, .. } => ("staff", id.to_string()),
            Principal::ApiKey { id, .. } => ("api_key", id.to_string()),
        };
        (actor_type, id, r.client_ip.map(str::to_owned))
    });
    db.write(move |conn| -> Result<_, DbError> {
        let mut results = Vec::with_capacity(reports.len());
        for report in reports {
            let outcome = apply_report(conn, &report, policy, db::now())?;
            tracing::info!(
                report_id = %report.id,
                kind = report.kind.as_str(),
                outcome = outcome.as_str(),
                "bounce or complaint report"
            );
            results.push((report, outcome));
        }
        if let Some((actor_type, id, ip)) = &audit {
            let actor = Actor {
                actor_type,
                actor_id: Some(id),
                ip: ip.as_deref(),
            };
            actor.record(conn, "mail_events.record", "mail_event", None)?;
        }
        Ok(results)
    })
    .await
}

/// Whether a provider's signed request is new: its token is remembered for a day, and the same
/// token again (a replay) answers `false`.
pub async fn accept_provider_request(
    db: &Db,
    token: String,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    db.write(move |conn| {
        let remembered = db::write_transaction(conn, |c| {
            db::mail_events::remember_provider_token(
                c,
                &token,
                now,
                now - chrono::Duration::days(1),
            )
        });
        match remembered {
            Ok(fresh) => Ok(fresh),
            // The same token at the same moment from another request: a replay too.
            Err(e) if db::is_unique_violation(&e) => Ok(false),
            Err(e) => Err(DbError::from(e)),
        }
    })
    .await
}

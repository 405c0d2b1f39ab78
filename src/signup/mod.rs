//! Double opt-in signups: deciding what a signup means for an address, and writing that decision
//! (subscriber, interests, consent evidence, token, queued mail) in one transaction.

mod batcher;
mod catalog;
pub mod confirm;
mod consent;
pub mod manage;
mod person;
mod proposal;
pub mod staff;

use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveDateTime};
use serde_json::{Map, Value};

pub use batcher::SignupQueue;
pub use catalog::PublicCatalog;
pub use consent::{request_confirmation, resend_confirmation};
pub use manage::{record_complaint, record_hard_bounce};
pub use person::{known_suppressions, merge_attributes, Merge, NewPerson};
pub use proposal::Proposal;

use crate::db::batch::{Inserts, InterestRow};
use crate::db::consent::ConsentEvent;
use crate::db::{self, subscribers, AnyConnection};
use crate::domain::{
    Email, FieldErrors, InterestSlug, Language, Name, SubscriberStatus, SuppressionReason,
};
use crate::email::Templates;
use crate::jobs::{self, MailKind};
use crate::tokens;

/// At most one confirmation or notice per address in this window…
pub const RESEND_INTERVAL_MINUTES: i64 = 10;
/// …and at most this many per day.
pub const RESENDS_PER_DAY: i64 = 3;

/// A signup after parsing: the only shape that reaches the database.
#[derive(Clone, Debug)]
pub struct Signup {
    pub email: Email,
    pub name: Option<Name>,
    pub language: Language,
    pub interests: Vec<InterestSlug>,
    pub source: Option<String>,
    pub attributes: Map<String, Value>,
    pub evidence: Evidence,
}

/// Where a consent action came from.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What happened behind the identical public answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignupOutcome {
    /// New address: pending, confirmation queued.
    Created,
    /// Still pending: a fresh confirmation queued.
    Resent,
    /// Unsubscribed earlier: a fresh confirmation queued for renewed consent.
    Reconsent,
    /// Already confirmed: an "already subscribed" notice queued.
    AlreadySubscribed,
    /// Too soon or too often for another message to this address.
    Throttled,
    /// Suppressed, bounced or complained: nothing is sent.
    Suppressed,
}

impl SignupOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Resent => "resent",
            Self::Reconsent => "reconsent",
            Self::AlreadySubscribed => "already_subscribed",
            Self::Throttled => "throttled",
            Self::Suppressed => "suppressed",
        }
    }

    pub fn queued_mail(self) -> bool {
        matches!(
            self,
            Self::Created | Self::Resent | Self::Reconsent | Self::AlreadySubscribed
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("invalid signup")]
    Validation(FieldErrors),
    #[error("storing the signup")]
    Store(#[source] anyhow::Error),
    /// The database cannot be reached or written for now: nothing was stored; try again.
    #[error("the database is unavailable")]
    Unavailable,
}

impl SignupError {
    fn from_db(e: crate::db::DbError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable
        } else {
            Self::Store(e.into())
        }
    }
}

/// What a batch needs to know besides the signups themselves.
#[derive(Clone)]
pub struct SignupPolicy {
    pub confirm_ttl: Duration,
}

/// What the database already knows about the addresses of a batch, read with one query each.
struct Known {
    suppressed: HashMap<String, SuppressionReason>,
    existing: HashMap<String, subscribers::SignupState>,
    /// Subscriber id → (confirmations and notices in the last day, the latest).
    recent: HashMap<String, (i64, Option<NaiveDateTime>)>,
}

impl Known {
    fn load(
        conn: &mut AnyConnection,
        batch: &[Signup],
        now: NaiveDateTime,
    ) -> diesel::QueryResult<Self> {
        let suppressed = known_suppressions(conn, batch.iter().map(|s| &s.email))?;
        let emails: Vec<&str> = batch.iter().map(|s| s.email.as_str()).collect();
        let existing: HashMap<_, _> = subscribers::find_signup_states(conn, &emails)?
            .into_iter()
            .collect();
        let ids: Vec<&str> = existing.values().map(|s| s.id.as_str()).collect();
        let recent = recent_notices(conn, &ids, now)?;
        Ok(Self {
            suppressed,
            existing,
            recent,
        })
    }

    fn throttled(&self, subscriber_id: &str, now: NaiveDateTime) -> bool {
        too_soon(self.recent.get(subscriber_id), now)
    }
}

/// Decides every signup of a batch inside the caller's transaction and writes the result with
/// one INSERT per table. A signup that fails validation writes nothing.
fn apply_signups(
    conn: &mut AnyConnection,
    templates: &Templates,
    policy: &SignupPolicy,
    batch: &[Signup],
    now: NaiveDateTime,
) -> diesel::QueryResult<Vec<Result<SignupOutcome, FieldErrors>>> {
    let catalog = PublicCatalog::load(conn, batch)?;
    let known = Known::load(conn, batch, now)?;
    let mut inserts = Inserts::default();
    // Addresses that already got a message queued in this batch (the same form sent twice).
    let mut queued: HashSet<&str> = HashSet::new();
    let mut results = Vec::with_capacity(batch.len());
    for signup in batch {
        let attributes = match catalog.check(signup) {
            Ok(a) => a,
            Err(errors) => {
                results.push(Err(errors));
                continue;
            }
        };
        let email = signup.email.as_str();
        // An erased person may come back, but only through their own confirmation.
        let suppressed = known
            .suppressed
            .get(&tokens::email_hash(email))
            .is_some_and(|r| *r != SuppressionReason::Erased);
        if suppressed {
            results.push(Ok(SignupOutcome::Suppressed));
            continue;
        }
        if queued.contains(email) {
            results.push(Ok(SignupOutcome::Throttled));
            continue;
        }
        let mut proposal: Option<Proposal> = None;
        let (subscriber_id, outcome) = match known.existing.get(email) {
            None => {
                let id = db::new_id();
                inserts.subscribers.push(
                    NewPerson {
                        email: &signup.email,
                        name: signup.name.as_ref(),
                        language: signup.language,
                        status: SubscriberStatus::Pending,
                        attributes,
                        source: signup.source.clone(),
                    }
                    .row(id.clone(), now),
                );
                (id, SignupOutcome::Created)
            }
            Some(row) => {
                let outcome = match row.status {
                    SubscriberStatus::Pending => SignupOutcome::Resent,
                    SubscriberStatus::Unsubscribed => SignupOutcome::Reconsent,
                    SubscriberStatus::Confirmed => SignupOutcome::AlreadySubscribed,
                    SubscriberStatus::Bounced | SubscriberStatus::Complained => {
                        results.push(Ok(SignupOutcome::Suppressed));
                        continue;
                    }
                };
                if known.throttled(&row.id, now) {
                    results.push(Ok(SignupOutcome::Throttled));
                    continue;
                }
                // Whoever typed the address may not be its owner: for someone already on the
                // list, what the form asks for waits in the confirmation link sent to them.
                if outcome != SignupOutcome::AlreadySubscribed {
                    proposal = Some(Proposal {
                        name: signup.name.as_ref().map(|n| n.as_str().to_owned()),
                        language: signup.language,
                        interests: signup
                            .interests
                            .iter()
                            .map(|i| i.as_str().to_owned())
                            .collect(),
                        attributes,
                        source: signup.source.clone(),
                    });
                }
                (row.id.clone(), outcome)
            }
        };
        queued.insert(email);
        if outcome == SignupOutcome::AlreadySubscribed {
            inserts.jobs.push(jobs::mail_job(
                &subscriber_id,
                MailKind::AlreadySubscribed,
                None,
                now,
            ));
            results.push(Ok(outcome));
            continue;
        }
        let slugs: Vec<&str> = signup.interests.iter().map(InterestSlug::as_str).collect();
        if outcome == SignupOutcome::Created {
            inserts
                .interests
                .extend(slugs.iter().map(|slug| InterestRow {
                    subscriber_id: subscriber_id.clone(),
                    interest_slug: (*slug).to_owned(),
                    created_at: now,
                }));
        }
        let consent = ConsentEvent::signup(
            templates,
            &subscriber_id,
            signup.language,
            &slugs,
            signup.source.clone(),
            &signup.evidence,
            now,
        );
        request_confirmation(&mut inserts, policy, consent, proposal.as_ref(), now);
        results.push(Ok(outcome));
    }
    inserts.write(conn)?;
    let outbox = crate::webhooks::Outbox::load(conn)?;
    let created: Vec<&str> = inserts.subscribers.iter().map(|s| s.id.as_str()).collect();
    outbox.emit_subscribers(
        conn,
        crate::webhooks::EventType::SubscriberCreated,
        &created,
        now,
    )?;
    Ok(results)
}

/// Whether another confirmation or notice to this subscriber would be too soon or too many.
pub fn throttled(
    conn: &mut AnyConnection,
    subscriber_id: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<bool> {
    Ok(too_soon(
        recent_notices(conn, &[subscriber_id], now)?.get(subscriber_id),
        now,
    ))
}

/// Confirmations and notices queued in the last day, per subscriber: (how many, the latest).
fn recent_notices(
    conn: &mut AnyConnection,
    subscriber_ids: &[&str],
    now: NaiveDateTime,
) -> diesel::QueryResult<HashMap<String, (i64, Option<NaiveDateTime>)>> {
    if subscriber_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let kinds = [
        MailKind::Confirmation.job_kind(),
        MailKind::AlreadySubscribed.job_kind(),
    ];
    Ok(db::jobs::recent_jobs_for_subscribers(
        conn,
        subscriber_ids,
        &kinds,
        now - Duration::hours(24),
    )?
    .into_iter()
    .filter_map(|(id, count, last)| Some((id?, (count, last))))
    .collect())
}

fn too_soon(recent: Option<&(i64, Option<NaiveDateTime>)>, now: NaiveDateTime) -> bool {
    recent.is_some_and(|(count, last)| {
        *count >= RESENDS_PER_DAY
            || last.is_some_and(|t| t > now - Duration::minutes(RESEND_INTERVAL_MINUTES))
    })
}

/// Runs a group of signups in one transaction (one durable commit for all of them). If the
/// transaction fails, each signup is retried alone so one bad row cannot sink the others.
pub fn apply_batch(
    conn: &mut AnyConnection,
    templates: &Templates,
    policy: &SignupPolicy,
    batch: &[Signup],
) -> Vec<Result<SignupOutcome, SignupError>> {
    apply_batch_inner(conn, templates, policy, batch, false)
}

fn apply_batch_inner(
    conn: &mut AnyConnection,
    templates: &Templates,
    policy: &SignupPolicy,
    batch: &[Signup],
    retried: bool,
) -> Vec<Result<SignupOutcome, SignupError>> {
    let now = db::now();
    let together = db::write_transaction(conn, |c| apply_signups(c, templates, policy, batch, now));
    match together {
        Ok(results) => results
            .into_iter()
            .map(|r| r.map_err(SignupError::Validation))
            .collect(),
        // Another process or batch added the same new address first: read again and decide.
        Err(e) if db::is_unique_violation(&e) && batch.len() == 1 && !retried => {
            apply_batch_inner(conn, templates, policy, batch, true)
        }
        Err(e) if batch.len() == 1 => vec![Err(SignupError::from_db(e.into()))],
        Err(e) => {
            tracing::warn!(error = %e, size = batch.len(), "signup batch failed; retrying one by one");
            batch
                .iter()
                .flat_map(|s| apply_batch(conn, templates, policy, std::slice::from_ref(s)))
                .collect()
        }
    }
}

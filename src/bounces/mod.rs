//! Bounce and complaint intake: reports from mail providers (Amazon SES through SNS, Postmark,
//! SendGrid, Mailgun) or from staff scripts, turned into one shape and applied once each.
//!
//! A hard bounce marks the subscriber bounced and suppresses the address; soft bounces do the
//! same once an address has had `limit` of them within `window`; a complaint unsubscribes the
//! person from everything and suppresses the address. Every report carries an id (the
//! provider's, namespaced by provider); a report seen before changes nothing.

pub mod providers;
pub mod sns;

use chrono::{Duration, NaiveDateTime};
use serde::Serialize;

use crate::db::mail_events::{self, MailEventRow};
use crate::db::newsletter_actions::{self, Action};
use crate::db::{self, subscribers, AnyConnection, DbError};
use crate::domain::{Email, SubscriberStatus, SuppressionReason};
use crate::tokens;

/// What a report says happened to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    /// The address does not exist or will never accept mail.
    HardBounce,
    /// A temporary failure (mailbox full, server unavailable).
    SoftBounce,
    /// The person marked a message as spam.
    Complaint,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::SoftBounce => "soft_bounce",
            Self::Complaint => "complaint",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "hard_bounce" => Self::HardBounce,
            "soft_bounce" => Self::SoftBounce,
            "complaint" => Self::Complaint,
            _ => return None,
        })
    }
}

/// One report about one address, whatever its source.
#[derive(Clone, Debug)]
pub struct MailReport {
    /// Unique per report: `provider:provider's id`.
    pub id: String,
    pub provider: &'static str,
    pub kind: ReportKind,
    pub email: Email,
    pub occurred_at: NaiveDateTime,
    /// The provider's diagnostic (an SMTP reply, say), shortened.
    pub detail: Option<String>,
}

impl MailReport {
    pub fn new(
        provider: &'static str,
        provider_id: &str,
        kind: ReportKind,
        email: Email,
        occurred_at: Option<NaiveDateTime>,
        detail: Option<&str>,
        now: NaiveDateTime,
    ) -> Self {
        Self {
            id: format!("{provider}:{}", clean(provider_id, 200)),
            provider,
            kind,
            email,
            // A provider's clock may run ahead; a report never counts as later than its arrival.
            occurred_at: occurred_at.map_or(now, |t| t.min(now)),
            detail: detail
                .map(|d| crate::domain::redact_addresses(&clean(d, 1000)))
                .filter(|d| !d.is_empty()),
        }
    }
}

/// Drops control characters and shortens to `max` characters.
fn clean(raw: &str, max: usize) -> String {
    raw.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// When soft bounces turn into a bounce.
#[derive(Clone, Copy, Debug)]
pub struct SoftBouncePolicy {
    pub limit: u32,
    pub window: Duration,
}

/// What Enlace did with a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// Seen before: nothing changed.
    Duplicate,
    /// The subscriber is now bounced and the address suppressed.
    Bounced,
    /// The subscriber is now unsubscribed (status `complained`) and the address suppressed.
    Complained,
    /// The address is suppressed (nobody on the list has it, or they were already out).
    Suppressed,
    /// A soft bounce, counted; below the limit nothing else changes.
    Counted,
}

impl ReportOutcome {
    /// What the sender of the report is told: the same whether or not the address was on the
    /// list (a report is suppressed, counted or a duplicate), so a key that may only record
    /// reports cannot use them to learn who is subscribed. Staff see the full outcome in
    /// the record of the report.
    pub fn answer(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Bounced | Self::Complained | Self::Suppressed => "suppressed",
            Self::Counted => "counted",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
            Self::Suppressed => "suppressed",
            Self::Counted => "counted",
        }
    }
}

/// Applies one report in its own transaction. The same report applied twice, even at the same
/// moment from two processes, changes things once.
pub fn apply_report(
    conn: &mut AnyConnection,
    report: &MailReport,
    policy: SoftBouncePolicy,
    now: NaiveDateTime,
) -> Result<ReportOutcome, DbError> {
    // A clash with a concurrent writer (the same report, or another report about the same
    // address suppressing it at the same moment) rolls back and is tried again; the second
    // try sees what the other one committed.
    let mut tries = 0;
    loop {
        tries += 1;
        match try_apply_report(conn, report, policy, now) {
            Err(e) if db::is_unique_violation(&e) && tries < 3 => continue,
            result => return result.map_err(DbError::from),
        }
    }
}

fn try_apply_report(
    conn: &mut AnyConnection,
    report: &MailReport,
    policy: SoftBouncePolicy,
    now: NaiveDateTime,
) -> diesel::QueryResult<ReportOutcome> {
    db::write_transaction(conn, |conn| -> diesel::QueryResult<_> {
        if mail_events::mail_event_exists(conn, &report.id)? {
            return Ok(ReportOutcome::Duplicate);
        }
        let hash = tokens::email_hash(report.email.as_str());
        // A report about someone erased on request keeps no diagnostic: it may name them.
        let erased =
            db::suppressions::find_suppression(conn, &hash)? == Some(SuppressionReason::Erased);
        let mut row = MailEventRow {
            id: report.id.clone(),
            provider: report.provider.to_owned(),
            kind: report.kind.as_str().to_owned(),
            email_hash: hash.clone(),
            outcome: String::new(),
            detail: report.detail.clone().filter(|_| !erased),
            occurred_at: report.occurred_at,
            received_at: now,
        };
        let subscriber = subscribers::find_subscriber_by_email(conn, report.email.as_str())?;
        let outcome = match report.kind {
            ReportKind::HardBounce => bounce(conn, subscriber.as_ref(), &hash, now)?,
            ReportKind::Complaint => match &subscriber {
                Some(s) => {
                    if crate::signup::record_complaint(conn, s, &hash, report.provider, now)? {
                        ReportOutcome::Complained
                    } else {
                        ReportOutcome::Suppressed
                    }
                }
                None => {
                    suppress(conn, &hash, SuppressionReason::Complaint, now)?;
                    ReportOutcome::Suppressed
                }
            },
            ReportKind::SoftBounce => {
                let since = report.occurred_at - policy.window;
                // This report counts too: it is written below, in the same transaction.
                let earlier = mail_events::count_soft_bounces(conn, &hash, since)?;
                if earlier + 1 >= i64::from(policy.limit) {
                    bounce(conn, subscriber.as_ref(), &hash, now)?
                } else {
                    ReportOutcome::Counted
                }
            }
        };
        row.outcome = outcome.as_str().to_owned();
        mail_events::insert_mail_event(conn, &row)?;
        // Counted in the results of the last newsletter sent to the address (while the
        // delivery ledger still holds it): a count by language and hour, nothing more.
        if let Some(s) = &subscriber {
            let since = report.occurred_at - Duration::days(ATTRIBUTION_DAYS);
            if let Some(newsletter) = newsletter_actions::last_sent_to(conn, s.id.as_str(), since)?
            {
                let action = match report.kind {
                    ReportKind::HardBounce => Action::HardBounce,
                    ReportKind::SoftBounce => Action::SoftBounce,
                    ReportKind::Complaint => Action::Complaint,
                };
                newsletter_actions::record(
                    conn,
                    &newsletter,
                    &s.language,
                    action,
                    report.occurred_at,
                )?;
            }
        }
        Ok(outcome)
    })
}

/// How long after a newsletter went to an address a bounce or complaint about that address is
/// counted in its results.
const ATTRIBUTION_DAYS: i64 = 30;

fn bounce(
    conn: &mut AnyConnection,
    subscriber: Option<&subscribers::Subscriber>,
    hash: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<ReportOutcome> {
    match subscriber {
        Some(s) if s.status != SubscriberStatus::Complained => {
            if crate::signup::record_hard_bounce(conn, &s.id, hash, now)? {
                Ok(ReportOutcome::Bounced)
            } else {
                Ok(ReportOutcome::Suppressed)
            }
        }
        _ => {
            suppress(conn, hash, SuppressionReason::HardBounce, now)?;
            Ok(ReportOutcome::Suppressed)
        }
    }
}

fn suppress(
    conn: &mut AnyConnection,
    hash: &str,
    reason: SuppressionReason,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    if db::suppressions::find_suppression(conn, hash)?.is_none() {
        db::suppressions::insert_suppression(conn, hash, reason, now)?;
    }
    Ok(())
}

/// The intake's configuration: which provider endpoints are on, and their secrets.
pub struct Intake {
    pub policy: SoftBouncePolicy,
    pub sns: Option<std::sync::Arc<sns::SnsVerifier>>,
    pub postmark_token: Option<String>,
    pub sendgrid_key: Option<p256::ecdsa::VerifyingKey>,
    pub mailgun_key: Option<String>,
}

impl Intake {
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        let topics: Vec<String> = settings
            .ses_topic_arns
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        Ok(Self {
            policy: SoftBouncePolicy {
                limit: settings.soft_bounce_limit,
                window: Duration::hours(i64::from(settings.soft_bounce_window_hours)),
            },
            sns: if topics.is_empty() {
                None
            } else {
                Some(std::sync::Arc::new(sns::SnsVerifier::new(topics)?))
            },
            postmark_token: non_empty(&settings.postmark_webhook_token),
            sendgrid_key: non_empty(&settings.sendgrid_webhook_public_key)
                .map(|k| providers::sendgrid_key(&k))
                .transpose()?,
            mailgun_key: non_empty(&settings.mailgun_signing_key),
        })
    }
}

//! Confirming a subscription with the token from the confirmation mail, and renewing an expired one.

use chrono::NaiveDateTime;

use super::{resend_confirmation, throttled, Evidence, Proposal, SignupPolicy};
use crate::db::consent::{insert_consent_event, ConsentEvent};
use crate::db::ids::SubscriberId;
use crate::db::{confirmations, subscribers, suppressions, AnyConnection};
use crate::domain::{Language, SubscriberStatus, SuppressionReason};
use crate::email::Templates;
use crate::jobs::{self, MailKind};
use crate::tokens;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Confirmed {
        subscriber_id: String,
        language: Language,
    },
    AlreadyConfirmed {
        language: Language,
    },
    Expired {
        language: Language,
    },
    Invalid,
}

/// What the confirmation page should show, without changing anything (link scanners fetch GETs),
/// with the changes confirming would make when the link carries a signup's proposal.
pub fn inspect_token(
    conn: &mut AnyConnection,
    token: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<(ConfirmOutcome, Option<Proposal>)> {
    let (outcome, _, proposal) = classify(conn, token, now)?;
    Ok((outcome, proposal))
}

type Classified = (
    ConfirmOutcome,
    Option<subscribers::Subscriber>,
    Option<Proposal>,
);

/// Looks the token up and says what confirming it would do; `Confirmed` means "would confirm".
fn classify(
    conn: &mut AnyConnection,
    token: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<Classified> {
    if !tokens::is_well_formed(token) {
        return Ok((ConfirmOutcome::Invalid, None, None));
    }
    let Some(row) = confirmations::find_confirmation_token(conn, &tokens::hash_token(token))?
    else {
        return Ok((ConfirmOutcome::Invalid, None, None));
    };
    let Some(id) = SubscriberId::parse(&row.subscriber_id) else {
        return Ok((ConfirmOutcome::Invalid, None, None));
    };
    let Some(subscriber) = subscribers::find_subscriber(conn, &id)? else {
        return Ok((ConfirmOutcome::Invalid, None, None));
    };
    let proposal = Proposal::from_json(row.proposal.as_deref());
    // The page and the mails after it speak the language the person asked for on the form.
    let language = proposal
        .as_ref()
        .map(|p| p.language)
        .unwrap_or_else(|| Language::parse(&subscriber.language).unwrap_or_default());
    let status = subscriber.status;
    let suppressed = suppressions::find_suppression(conn, &tokens::email_hash(&subscriber.email))?
        .is_some_and(|r| r != SuppressionReason::Erased);
    let outcome = if status == SubscriberStatus::Confirmed {
        ConfirmOutcome::AlreadyConfirmed { language }
    } else if row.used_at.is_some() {
        // Used once, then the person unsubscribed: this link does not subscribe them again.
        ConfirmOutcome::Invalid
    } else if suppressed
        || !matches!(
            status,
            SubscriberStatus::Pending | SubscriberStatus::Unsubscribed
        )
    {
        ConfirmOutcome::Invalid
    } else if row.expires_at <= now {
        ConfirmOutcome::Expired { language }
    } else {
        ConfirmOutcome::Confirmed {
            subscriber_id: subscriber.id.to_string(),
            language,
        }
    };
    Ok((outcome, Some(subscriber), proposal))
}

/// Confirms: status, consent evidence, used tokens, welcome mail — all in the caller's write
/// transaction. A second use changes nothing and answers `AlreadyConfirmed`.
pub fn confirm(
    conn: &mut AnyConnection,
    templates: &Templates,
    token: &str,
    evidence: &Evidence,
    now: NaiveDateTime,
) -> diesel::QueryResult<ConfirmOutcome> {
    let (outcome, subscriber, proposal) = classify(conn, token, now)?;
    let (ConfirmOutcome::Confirmed { language, .. }, Some(subscriber)) = (&outcome, subscriber)
    else {
        return Ok(outcome);
    };
    // Two clicks at once: the second finds the status changed and confirms nothing.
    let from = [SubscriberStatus::Pending, SubscriberStatus::Unsubscribed];
    if !subscribers::set_status(
        conn,
        &subscriber.id,
        &from,
        SubscriberStatus::Confirmed,
        now,
    )? {
        return Ok(ConfirmOutcome::AlreadyConfirmed {
            language: *language,
        });
    }
    // What the person asked for on the form, now that they have shown the address is theirs.
    if let Some(proposal) = &proposal {
        proposal.apply(conn, &subscriber, now)?;
    }
    let source = match &proposal {
        Some(Proposal {
            source: Some(source),
            ..
        }) => Some(source.clone()),
        _ => subscriber.source.clone(),
    };
    confirmations::use_confirmation_tokens(conn, &subscriber.id, now)?;
    suppressions::delete_suppression(
        conn,
        &tokens::email_hash(&subscriber.email),
        SuppressionReason::Erased,
    )?;
    let interests: Vec<String> = subscribers::list_subscriber_interests(conn, &subscriber.id)?
        .into_iter()
        .map(|i| i.slug)
        .collect();
    let consent = ConsentEvent::confirmed(
        templates,
        &subscriber.id,
        *language,
        &interests,
        source,
        evidence,
        now,
    );
    insert_consent_event(conn, &consent)?;
    jobs::enqueue_mail(conn, &subscriber.id, MailKind::Welcome, None, now)?;
    crate::webhooks::emit_subscriber(
        conn,
        crate::webhooks::EventType::SubscriberConfirmed,
        &subscriber.id,
        now,
    )?;
    Ok(outcome)
}

/// Sends a fresh link for an expired token, within the usual resend limits. Answers the same
/// whether or not a mail went out, so the page reveals nothing about the address. Call inside a
/// write transaction.
pub fn renew(
    conn: &mut AnyConnection,
    policy: &SignupPolicy,
    token: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<(ConfirmOutcome, bool)> {
    let (outcome, subscriber, proposal) = classify(conn, token, now)?;
    let (ConfirmOutcome::Expired { .. }, Some(subscriber)) = (&outcome, subscriber) else {
        return Ok((outcome, false));
    };
    if throttled(conn, &subscriber.id, now)? {
        return Ok((outcome, false));
    }
    // The new link carries what the expired one would have applied.
    resend_confirmation(conn, policy, &subscriber.id, proposal.as_ref(), now)?;
    Ok((outcome, true))
}

//! The consent ledger's entries, one constructor per action, and the confirmation request that
//! goes with a signup. Every way onto the list (the public form, staff, an import) and every way
//! off it (unsubscribe, complaint) records its evidence through these, so the ledger says the
//! same thing in the same words whoever wrote it.

use chrono::NaiveDateTime;

use super::{Evidence, Proposal, SignupPolicy};
use crate::db::batch::{Inserts, TokenRow};
use crate::db::consent::{ConsentAction, ConsentEvent};
use crate::db::{self, AnyConnection};
use crate::domain::Language;
use crate::email::Templates;
use crate::jobs::{self, MailKind};
use crate::tokens;

/// The interests an entry names, as the ledger keeps them (a JSON array of slugs).
fn interests_json<S: AsRef<str>>(interests: &[S]) -> String {
    let slugs: Vec<&str> = interests.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&slugs).unwrap_or_else(|_| "[]".into())
}

/// An entry with what every action records: who, what, in which language, when, from where.
fn entry(
    subscriber_id: &str,
    action: ConsentAction,
    language: Language,
    evidence: &Evidence,
    now: NaiveDateTime,
) -> ConsentEvent {
    ConsentEvent {
        id: db::new_id(),
        subscriber_id: subscriber_id.to_owned(),
        action,
        interests: "[]".into(),
        wording: String::new(),
        wording_version: String::new(),
        language: language.as_str().into(),
        source: None,
        ip: evidence.ip.clone(),
        user_agent: evidence.user_agent.clone(),
        created_at: now,
    }
}

/// The list's own words for an action (`consent.<action>` in the templates) and their version.
fn wording(templates: &Templates, language: Language, key: &str) -> (String, String) {
    (
        templates.text(language, key),
        templates.text(language, "consent_wording_version"),
    )
}

impl ConsentEvent {
    /// Someone asked to join (on the form, or staff or an import on their behalf): the request,
    /// in the words of the signup form; consent follows only with their confirmation.
    pub fn signup<S: AsRef<str>>(
        templates: &Templates,
        subscriber_id: &str,
        language: Language,
        interests: &[S],
        source: Option<String>,
        evidence: &Evidence,
        now: NaiveDateTime,
    ) -> Self {
        let (wording, wording_version) = wording(templates, language, "consent.signup");
        ConsentEvent {
            interests: interests_json(interests),
            wording,
            wording_version,
            source,
            ..entry(
                subscriber_id,
                ConsentAction::Signup,
                language,
                evidence,
                now,
            )
        }
    }

    /// The person confirmed through the link sent to them: consent given.
    pub fn confirmed<S: AsRef<str>>(
        templates: &Templates,
        subscriber_id: &str,
        language: Language,
        interests: &[S],
        source: Option<String>,
        evidence: &Evidence,
        now: NaiveDateTime,
    ) -> Self {
        let (wording, wording_version) = wording(templates, language, "consent.confirm");
        ConsentEvent {
            interests: interests_json(interests),
            wording,
            wording_version,
            source,
            ..entry(
                subscriber_id,
                ConsentAction::Confirm,
                language,
                evidence,
                now,
            )
        }
    }

    /// Consent given elsewhere and recorded by staff (one by one or by an import): the note
    /// describing it is the wording, and `source` says where it was given.
    pub fn staff_recorded<S: AsRef<str>>(
        subscriber_id: &str,
        language: Language,
        interests: &[S],
        note: String,
        source: Option<String>,
        evidence: &Evidence,
        now: NaiveDateTime,
    ) -> Self {
        ConsentEvent {
            interests: interests_json(interests),
            wording: note,
            wording_version: "staff-recorded".into(),
            source,
            ..entry(
                subscriber_id,
                ConsentAction::StaffRecorded,
                language,
                evidence,
                now,
            )
        }
    }

    /// The person withdrew consent through the link in a mail: from everything.
    pub fn unsubscribed(
        templates: &Templates,
        subscriber_id: &str,
        language: Language,
        evidence: &Evidence,
        now: NaiveDateTime,
    ) -> Self {
        let (wording, wording_version) = wording(templates, language, "consent.unsubscribe");
        ConsentEvent {
            wording,
            wording_version,
            ..entry(
                subscriber_id,
                ConsentAction::Unsubscribe,
                language,
                evidence,
                now,
            )
        }
    }

    /// The person chose other interests on their preferences page: the ones they now hold.
    pub fn preferences_changed<S: AsRef<str>>(
        templates: &Templates,
        subscriber_id: &str,
        language: Language,
        interests: &[S],
        evidence: &Evidence,
        now: NaiveDateTime,
    ) -> Self {
        let (wording, wording_version) = wording(templates, language, "consent.preferences");
        ConsentEvent {
            interests: interests_json(interests),
            wording,
            wording_version,
            ..entry(
                subscriber_id,
                ConsentAction::Preferences,
                language,
                evidence,
                now,
            )
        }
    }

    /// The person marked a message as spam: a withdrawal of consent, like an unsubscribe, whose
    /// wording says how it came. `language` is the one held for them, as stored.
    pub fn complained(
        subscriber_id: &str,
        language: &str,
        reported_by: &str,
        now: NaiveDateTime,
    ) -> Self {
        ConsentEvent {
            id: db::new_id(),
            subscriber_id: subscriber_id.to_owned(),
            action: ConsentAction::Unsubscribe,
            interests: "[]".into(),
            wording: format!("Marked a message as spam (reported by {reported_by})"),
            wording_version: String::new(),
            language: language.to_owned(),
            source: Some(reported_by.to_owned()),
            ip: None,
            user_agent: None,
            created_at: now,
        }
    }
}

/// Asks a person to confirm: the request's consent entry (`signup`), a confirmation token
/// (carrying `proposal`, the changes confirming applies) and the mail carrying it, added to
/// `inserts` to be written together. The public signup, staff and imports all ask this way.
pub fn request_confirmation(
    inserts: &mut Inserts,
    policy: &SignupPolicy,
    signup: ConsentEvent,
    proposal: Option<&Proposal>,
    now: NaiveDateTime,
) {
    let subscriber_id = signup.subscriber_id.clone();
    inserts.consents.push(signup);
    push_link(
        inserts,
        policy,
        &subscriber_id,
        proposal.map(Proposal::to_json),
        now,
    );
}

/// A fresh link for a request already recorded (an expired one renewed): token and mail only.
pub fn resend_confirmation(
    conn: &mut AnyConnection,
    policy: &SignupPolicy,
    subscriber_id: &str,
    proposal: Option<&Proposal>,
    now: NaiveDateTime,
) -> diesel::QueryResult<()> {
    let mut inserts = Inserts::default();
    push_link(
        &mut inserts,
        policy,
        subscriber_id,
        proposal.map(Proposal::to_json),
        now,
    );
    inserts.write(conn)
}

fn push_link(
    inserts: &mut Inserts,
    policy: &SignupPolicy,
    subscriber_id: &str,
    proposal: Option<String>,
    now: NaiveDateTime,
) {
    let token = tokens::random_token();
    inserts.tokens.push(TokenRow {
        token_hash: tokens::hash_token(&token),
        subscriber_id: subscriber_id.to_owned(),
        created_at: now,
        expires_at: now + policy.confirm_ttl,
        proposal,
    });
    inserts.jobs.push(jobs::mail_job(
        subscriber_id,
        MailKind::Confirmation,
        Some(&token),
        now,
    ));
}

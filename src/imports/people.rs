//! What an import does to one person: creates them (confirmed with the evidence given, or
//! pending with a confirmation mail), or fills gaps in what is held about them. It never
//! overwrites, and never subscribes again someone who left.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::rows::Row;
use super::run::{PartContext, RunError};
use super::Mode;
use crate::db::batch::{Inserts, InterestRow, SubscriberRow, TokenRow};
use crate::db::consent::ConsentEvent;
use crate::db::imports::{Import, Person};
use crate::db::{self, confirmations, subscribers, AnyConnection};
use crate::domain::{Language, SubscriberStatus};
use crate::jobs::{self, MailKind};
use crate::signup::throttled;
use crate::tokens;

/// What became of one person.
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    Skipped(&'static str),
    /// Updated (or not), with a note for the report.
    Noted(bool, String),
}

/// Writes the decisions about rows: new people, filled-in profiles, consent evidence, mail.
pub struct Writer<'a> {
    pub ctx: &'a PartContext<'a>,
    pub import: &'a Import,
    pub mode: Mode,
    pub default_language: Language,
}

impl Writer<'_> {
    fn consent(
        &self,
        subscriber_id: &str,
        language: Language,
        interests: &BTreeSet<String>,
    ) -> ConsentEvent {
        let (action, wording, version, source) = match self.mode {
            Mode::Consented => (
                "staff_recorded",
                self.import.consent_note.clone().unwrap_or_default(),
                "staff-recorded".to_owned(),
                self.import.source.clone(),
            ),
            Mode::Confirm => (
                "signup",
                self.ctx.templates.text(language, "consent.signup"),
                self.ctx.templates.text(language, "consent_wording_version"),
                Some(
                    self.import
                        .source
                        .clone()
                        .unwrap_or_else(|| "import".into()),
                ),
            ),
        };
        ConsentEvent {
            id: db::new_id(),
            subscriber_id: subscriber_id.to_owned(),
            action: action.into(),
            interests: serde_json::to_string(interests).unwrap_or_else(|_| "[]".into()),
            wording,
            wording_version: version,
            language: language.as_str().into(),
            source,
            ip: None,
            user_agent: Some(format!(
                "import:{} ({})",
                self.import.id, self.import.created_by
            )),
            created_at: self.ctx.now,
        }
    }

    /// A confirmation link and the mail carrying it, through the outbox as signups do.
    fn confirmation(&self, inserts: &mut Inserts, subscriber_id: &str) {
        let token = tokens::random_token();
        inserts.tokens.push(TokenRow {
            token_hash: tokens::hash_token(&token),
            subscriber_id: subscriber_id.to_owned(),
            created_at: self.ctx.now,
            expires_at: self.ctx.now + self.ctx.policy.confirm_ttl,
            proposal: None,
        });
        inserts.jobs.push(jobs::mail_job(
            subscriber_id,
            MailKind::Confirmation,
            Some(&token),
            self.ctx.now,
        ));
    }

    fn add_interests(&self, inserts: &mut Inserts, subscriber_id: &str, slugs: &[String]) {
        inserts
            .interests
            .extend(slugs.iter().map(|slug| InterestRow {
                subscriber_id: subscriber_id.to_owned(),
                interest_slug: slug.clone(),
                created_at: self.ctx.now,
            }));
    }

    /// A new person: confirmed with the given evidence, or pending with a confirmation mail.
    pub fn create(&self, inserts: &mut Inserts, row: &Row) -> String {
        let id = db::new_id();
        let language = row.language.unwrap_or(self.default_language);
        let status = match self.mode {
            Mode::Consented => SubscriberStatus::Confirmed,
            Mode::Confirm => SubscriberStatus::Pending,
        };
        inserts.subscribers.push(SubscriberRow {
            id: id.clone(),
            email: row.email.as_str().to_owned(),
            name: row.name.as_ref().map(|n| n.as_str().to_owned()),
            language: language.as_str(),
            status: status.as_str(),
            attributes: Value::Object(row.attributes.clone()).to_string(),
            source: Some(
                self.import
                    .source
                    .clone()
                    .unwrap_or_else(|| "import".into()),
            ),
            created_at: self.ctx.now,
            updated_at: self.ctx.now,
        });
        let slugs: Vec<String> = row
            .interests
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        self.add_interests(inserts, &id, &slugs);
        inserts
            .consents
            .push(self.consent(&id, language, &slugs.into_iter().collect()));
        if self.mode == Mode::Confirm {
            self.confirmation(inserts, &id);
        }
        id
    }

    /// An existing person. An import fills gaps (a missing name, attributes not yet set,
    /// interests not yet held) and never overwrites what is there; it never resubscribes.
    pub fn update(
        &self,
        conn: &mut AnyConnection,
        inserts: &mut Inserts,
        row: &Row,
        person: &Person,
        held: &BTreeSet<String>,
        open_confirmation: bool,
    ) -> Result<Outcome, RunError> {
        let status = SubscriberStatus::parse(&person.status);
        let (pending, confirmed) = match status {
            Some(SubscriberStatus::Pending) => (true, false),
            Some(SubscriberStatus::Confirmed) => (false, true),
            Some(SubscriberStatus::Unsubscribed) => {
                return Ok(Outcome::Skipped("this person unsubscribed: an import never subscribes them again (they can sign up again themselves)"))
            }
            _ => {
                return Ok(Outcome::Skipped(
                    "this address bounced or complained: it is not imported",
                ))
            }
        };
        let mut attributes: Map<String, Value> =
            serde_json::from_str(&person.attributes).unwrap_or_default();
        let mut attributes_changed = false;
        for (key, value) in &row.attributes {
            if !attributes.contains_key(key) {
                attributes.insert(key.clone(), value.clone());
                attributes_changed = true;
            }
        }
        let name = row.name.as_ref().filter(|_| person.name.is_none());
        let missing: Vec<String> = row
            .interests
            .iter()
            .map(|s| s.as_str().to_owned())
            .filter(|s| !held.contains(s))
            .collect();
        // Interests reveal opinions: a confirmed person gets more only with evidence of consent.
        let withheld = confirmed && self.mode == Mode::Confirm && !missing.is_empty();
        let adding: &[String] = if withheld { &[] } else { &missing };
        let mut changed = attributes_changed || name.is_some() || !adding.is_empty();
        let now = self.ctx.now;
        let language = Language::parse(&person.language).unwrap_or_default();
        let all: BTreeSet<String> = held.iter().cloned().chain(adding.iter().cloned()).collect();
        match (self.mode, pending) {
            // Evidence given elsewhere confirms a pending person.
            (Mode::Consented, true) => {
                let from = [SubscriberStatus::Pending.as_str()];
                subscribers::set_status(
                    conn,
                    &person.id,
                    &from,
                    SubscriberStatus::Confirmed.as_str(),
                    now,
                )?;
                confirmations::use_confirmation_tokens(conn, &person.id, now)?;
                inserts
                    .consents
                    .push(self.consent(&person.id, language, &all));
                changed = true;
            }
            (Mode::Consented, false) if !adding.is_empty() => {
                inserts
                    .consents
                    .push(self.consent(&person.id, language, &all));
            }
            (Mode::Confirm, true) if !open_confirmation && !throttled(conn, &person.id, now)? => {
                inserts
                    .consents
                    .push(self.consent(&person.id, language, &all));
                self.confirmation(inserts, &person.id);
                changed = true;
            }
            _ => {}
        }
        if attributes_changed || name.is_some() || !adding.is_empty() {
            let attributes = Value::Object(attributes).to_string();
            subscribers::update_profile(
                conn,
                &person.id,
                &subscribers::ProfileChanges {
                    name: name.map(|n| Some(n.as_str())),
                    language: None,
                    attributes: attributes_changed.then_some(attributes.as_str()),
                    source: None,
                    updated_at: now,
                },
            )?;
        }
        self.add_interests(inserts, &person.id, adding);
        if withheld {
            return Ok(Outcome::Noted(
                changed,
                format!(
                    "already subscribed: interests {} were not added, since this import asks for no consent (import with mode=consented and its evidence, or the person chooses on their preferences page)",
                    missing.join(", ")
                ),
            ));
        }
        Ok(if changed {
            Outcome::Updated
        } else {
            Outcome::Unchanged
        })
    }
}

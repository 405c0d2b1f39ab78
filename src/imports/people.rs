//! What an import does to one person: creates them (confirmed with the evidence given, or
//! pending with a confirmation mail), or fills gaps in what is held about them. It never
//! overwrites, and never subscribes again someone who left.

use std::collections::BTreeSet;

use super::rows::Row;
use super::run::{PartContext, RunError};
use super::Mode;
use crate::db::batch::{Inserts, InterestRow};
use crate::db::consent::ConsentEvent;
use crate::db::imports::{Import, Person};
use crate::db::{self, confirmations, subscribers, AnyConnection};
use crate::domain::{Language, SubscriberStatus};
use crate::signup::{
    merge_attributes, request_confirmation, throttled, Evidence, Merge, NewPerson,
};

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
    /// The ledger names the import and who started it as the means of the entry.
    fn evidence(&self) -> Evidence {
        Evidence {
            ip: None,
            user_agent: Some(format!(
                "import:{} ({})",
                self.import.id, self.import.created_by
            )),
        }
    }

    /// Where the people of this import came from, as their records and the ledger say.
    fn source(&self) -> String {
        self.import
            .source
            .clone()
            .unwrap_or_else(|| "import".into())
    }

    /// Evidence of consent given elsewhere (`consented`), in the ledger.
    fn recorded(&self, inserts: &mut Inserts, id: &str, language: Language, interests: &[String]) {
        inserts.consents.push(ConsentEvent::staff_recorded(
            id,
            language,
            interests,
            self.import.consent_note.clone().unwrap_or_default(),
            self.import.source.clone(),
            &self.evidence(),
            self.ctx.now,
        ));
    }

    /// A request for confirmation (`confirm`): the ledger entry, a link and the mail carrying
    /// it, through the outbox as signups do.
    fn ask_confirmation(
        &self,
        inserts: &mut Inserts,
        id: &str,
        language: Language,
        interests: &[String],
    ) {
        let consent = ConsentEvent::signup(
            self.ctx.templates,
            id,
            language,
            interests,
            Some(self.source()),
            &self.evidence(),
            self.ctx.now,
        );
        request_confirmation(inserts, self.ctx.policy, consent, None, self.ctx.now);
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
        inserts.subscribers.push(
            NewPerson {
                email: &row.email,
                name: row.name.as_ref(),
                language,
                status,
                attributes: row.attributes.clone(),
                source: Some(self.source()),
            }
            .row(id.clone(), self.ctx.now),
        );
        let slugs: Vec<String> = row
            .interests
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        self.add_interests(inserts, &id, &slugs);
        // The ledger lists interests in order, as for a person already known.
        let ledger: Vec<String> = slugs
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        match self.mode {
            Mode::Consented => self.recorded(inserts, &id, language, &ledger),
            Mode::Confirm => self.ask_confirmation(inserts, &id, language, &ledger),
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
        let (pending, confirmed) = match person.status {
            SubscriberStatus::Pending => (true, false),
            SubscriberStatus::Confirmed => (false, true),
            SubscriberStatus::Unsubscribed => {
                return Ok(Outcome::Skipped("this person unsubscribed: an import never subscribes them again (they can sign up again themselves)"))
            }
            SubscriberStatus::Bounced | SubscriberStatus::Complained => {
                return Ok(Outcome::Skipped(
                    "this address bounced or complained: it is not imported",
                ))
            }
        };
        let (attributes, attributes_changed) =
            merge_attributes(&person.attributes, &row.attributes, Merge::FillGaps);
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
        let all: Vec<String> = held
            .iter()
            .cloned()
            .chain(adding.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        match (self.mode, pending) {
            // Evidence given elsewhere confirms a pending person.
            (Mode::Consented, true) => {
                let from = [SubscriberStatus::Pending];
                subscribers::set_status(conn, &person.id, &from, SubscriberStatus::Confirmed, now)?;
                confirmations::use_confirmation_tokens(conn, &person.id, now)?;
                self.recorded(inserts, &person.id, language, &all);
                changed = true;
            }
            (Mode::Consented, false) if !adding.is_empty() => {
                self.recorded(inserts, &person.id, language, &all);
            }
            (Mode::Confirm, true) if !open_confirmation && !throttled(conn, &person.id, now)? => {
                self.ask_confirmation(inserts, &person.id, language, &all);
                changed = true;
            }
            _ => {}
        }
        if attributes_changed || name.is_some() || !adding.is_empty() {
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

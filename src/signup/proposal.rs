//! What a public signup asks to change for someone already on the list. Anyone can type an
//! address into a form, so for a person who is pending or unsubscribed the request changes
//! nothing at once: it travels with the confirmation link sent to that person and takes effect
//! only when they confirm through it.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::db::{interests, subscribers, AnyConnection};
use crate::domain::Language;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// A new name, when the form gave one.
    pub name: Option<String>,
    pub language: Language,
    /// The interests chosen on the form: they replace the current ones.
    pub interests: Vec<String>,
    /// Field values given on the form: they are set over the current ones.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// The form it came from, when it said.
    pub source: Option<String>,
}

impl Proposal {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The proposal kept with a token; `None` for tokens without one (or unreadable).
    pub fn from_json(raw: Option<&str>) -> Option<Self> {
        raw.and_then(|raw| serde_json::from_str(raw).ok())
    }

    /// Applies it to the person confirming, inside the confirming transaction. Interests
    /// deleted since the signup are left out.
    pub fn apply(
        &self,
        conn: &mut AnyConnection,
        subscriber: &subscribers::Subscriber,
        now: NaiveDateTime,
    ) -> diesel::QueryResult<()> {
        let mut attributes: Map<String, Value> =
            serde_json::from_str(&subscriber.attributes).unwrap_or_default();
        attributes.extend(self.attributes.clone());
        let attributes = Value::Object(attributes).to_string();
        subscribers::update_profile(
            conn,
            &subscriber.id,
            &subscribers::ProfileChanges {
                name: self.name.as_deref().map(Some),
                language: Some(self.language.as_str()),
                attributes: Some(&attributes),
                source: self.source.as_deref().map(Some),
                updated_at: now,
            },
        )?;
        let existing: Vec<String> = interests::list_interests(conn)?
            .into_iter()
            .map(|i| i.slug)
            .collect();
        let slugs: Vec<&str> = self
            .interests
            .iter()
            .filter(|s| existing.contains(s))
            .map(String::as_str)
            .collect();
        subscribers::replace_interests(conn, &subscriber.id, &slugs, now)
    }

    /// The interests to show on the confirmation mail and page, from the list's catalogue.
    pub fn chosen_interests(
        &self,
        catalogue: Vec<interests::Interest>,
    ) -> Vec<interests::Interest> {
        catalogue
            .into_iter()
            .filter(|i| self.interests.contains(&i.slug))
            .collect()
    }
}

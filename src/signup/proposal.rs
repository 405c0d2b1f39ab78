//! What a public signup asks to change for someone already on the list. Anyone can type an
//! address into a form, so for a person who is pending or unsubscribed the request changes
//! nothing at once: it travels with the confirmation link sent to that person and takes effect
//! only when they confirm through it.

use chrono::NaiveDateTime;

use super::person::{merge_attributes, Merge};
pub use crate::db::confirmations::Proposal;
use crate::db::{interests, subscribers, AnyConnection};

impl Proposal {
    /// Applies it to the person confirming, inside the confirming transaction. Interests
    /// deleted since the signup are left out.
    pub fn apply(
        &self,
        conn: &mut AnyConnection,
        subscriber: &subscribers::Subscriber,
        now: NaiveDateTime,
    ) -> diesel::QueryResult<()> {
        let (attributes, _) =
            merge_attributes(&subscriber.attributes, &self.attributes, Merge::Overwrite);
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
}

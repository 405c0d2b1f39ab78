//! Rows written together: a whole batch of signups goes in with one INSERT per table, which on
//! PostgreSQL turns hundreds of round trips into a handful.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::consent::ConsentEvent;
use super::jobs::NewJob;
use super::schema::{confirmation_tokens, consent_events, jobs, subscriber_interests, subscribers};
use super::AnyConnection;

#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = subscribers, treat_none_as_default_value = false)]
pub struct SubscriberRow {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub language: &'static str,
    pub status: &'static str,
    pub attributes: String,
    pub source: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = subscriber_interests)]
pub struct InterestRow {
    pub subscriber_id: String,
    pub interest_slug: String,
    pub created_at: NaiveDateTime,
}

#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = confirmation_tokens)]
pub struct TokenRow {
    pub token_hash: String,
    pub subscriber_id: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    /// A public signup's changes for someone already on the list (`signup::Proposal`, JSON).
    pub proposal: Option<String>,
}

/// Everything a batch will insert, in foreign-key order.
#[derive(Default)]
pub struct Inserts {
    pub subscribers: Vec<SubscriberRow>,
    pub interests: Vec<InterestRow>,
    pub consents: Vec<ConsentEvent>,
    pub tokens: Vec<TokenRow>,
    pub jobs: Vec<NewJob>,
}

/// Rows per statement: well inside both backends' limits on bound parameters.
const CHUNK: usize = 256;

macro_rules! insert_all {
    ($conn:expr, $table:expr, $rows:expr) => {
        for chunk in $rows.chunks(CHUNK) {
            crate::on_backend!(&mut *$conn, |c| diesel::insert_into($table)
                .values(chunk)
                .execute(c))?;
        }
    };
}

impl Inserts {
    pub fn write(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        insert_all!(conn, subscribers::table, self.subscribers);
        insert_all!(conn, subscriber_interests::table, self.interests);
        insert_all!(conn, consent_events::table, self.consents);
        insert_all!(conn, confirmation_tokens::table, self.tokens);
        insert_all!(conn, jobs::table, self.jobs);
        Ok(())
    }
}

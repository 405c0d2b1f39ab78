//! The append-only consent ledger: what each person agreed to, in which words, when and from where.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::consent_events;
use super::AnyConnection;

crate::text_enum! {
    /// What a ledger entry records: a request to join, consent given (by the person's own
    /// confirmation, or elsewhere and recorded by staff), interests chosen again, or consent
    /// withdrawn (an unsubscribe or a complaint).
    pub enum ConsentAction {
        Signup = "signup",
        Confirm = "confirm",
        Preferences = "preferences",
        Unsubscribe = "unsubscribe",
        StaffRecorded = "staff_recorded",
    }
}

/// One entry of the ledger. Entries are made only by the constructors in `signup::consent`
/// (`ConsentEvent::signup`, `::confirmed`, `::staff_recorded`, `::unsubscribed`,
/// `::preferences_changed`, `::complained`), one per action, so each action is worded alike
/// wherever it is recorded.
#[derive(Queryable, Selectable, Insertable, Clone, Debug, serde::Serialize)]
#[diesel(table_name = consent_events, treat_none_as_default_value = false)]
pub struct ConsentEvent {
    pub id: String,
    pub subscriber_id: String,
    pub action: ConsentAction,
    pub interests: String,
    pub wording: String,
    pub wording_version: String,
    pub language: String,
    pub source: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: NaiveDateTime,
}

pub fn insert_consent_event(conn: &mut AnyConnection, event: &ConsentEvent) -> QueryResult<()> {
    diesel::insert_into(consent_events::table)
        .values(event)
        .execute(conn)
        .map(drop)
}

pub fn list_consent_events(
    conn: &mut AnyConnection,
    subscriber_id: &str,
) -> QueryResult<Vec<ConsentEvent>> {
    consent_events::table
        .filter(consent_events::subscriber_id.eq(subscriber_id))
        .order((consent_events::created_at.asc(), consent_events::id.asc()))
        .select(ConsentEvent::as_select())
        .load(conn)
}

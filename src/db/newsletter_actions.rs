//! The `newsletter_actions` table: what people did because of a newsletter (unsubscribed or
//! changed preferences through its links; bounced or complained about it), counted by language
//! and hour. Nothing in it names a person.

use chrono::{NaiveDateTime, Timelike};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel::upsert::excluded;

use super::schema::{deliveries, newsletter_actions, newsletters};
use super::AnyConnection;

/// What a person did, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Unsubscribe,
    Preferences,
    HardBounce,
    SoftBounce,
    Complaint,
}

impl Action {
    pub const ALL: [Self; 5] = [
        Self::Unsubscribe,
        Self::Preferences,
        Self::HardBounce,
        Self::SoftBounce,
        Self::Complaint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsubscribe => "unsubscribe",
            Self::Preferences => "preferences",
            Self::HardBounce => "hard_bounce",
            Self::SoftBounce => "soft_bounce",
            Self::Complaint => "complaint",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw)
    }
}

/// The start of the hour `at` falls in.
pub fn hour_of(at: NaiveDateTime) -> NaiveDateTime {
    at.date().and_hms_opt(at.hour(), 0, 0).unwrap_or(at)
}

/// Counts one action for a newsletter that went out (a draft's id in a forged link counts
/// nothing); returns whether it was counted.
pub fn record(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    language: &str,
    action: Action,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let went_out: bool = diesel::select(diesel::dsl::exists(
        newsletters::table
            .filter(newsletters::id.eq(newsletter_id))
            .filter(newsletters::started_at.is_not_null()),
    ))
    .get_result(conn)?;
    if !went_out {
        return Ok(false);
    }
    let row = (
        newsletter_actions::newsletter_id.eq(newsletter_id),
        newsletter_actions::language.eq(language),
        newsletter_actions::action.eq(action.as_str()),
        newsletter_actions::hour.eq(hour_of(at)),
        newsletter_actions::people.eq(1_i64),
    );
    crate::on_backend!(&mut *conn, |c| diesel::insert_into(
        newsletter_actions::table
    )
    .values(row)
    .on_conflict((
        newsletter_actions::newsletter_id,
        newsletter_actions::language,
        newsletter_actions::action,
        newsletter_actions::hour,
    ))
    .do_update()
    .set(
        newsletter_actions::people
            .eq(newsletter_actions::people + excluded(newsletter_actions::people)),
    )
    .execute(c))?;
    Ok(true)
}

/// The newsletter most recently sent to a subscriber since `since`, if the delivery ledger still
/// holds it: where a bounce or complaint about their address is counted.
pub fn last_sent_to(
    conn: &mut AnyConnection,
    subscriber_id: &str,
    since: NaiveDateTime,
) -> QueryResult<Option<String>> {
    deliveries::table
        .filter(deliveries::subscriber_id.eq(subscriber_id))
        .filter(deliveries::sent_at.ge(since))
        .order(deliveries::sent_at.desc())
        .select(deliveries::newsletter_id)
        .first(conn)
        .optional()
}

/// A newsletter's actions as (language, action, hour, people) lines.
pub fn for_newsletter(
    conn: &mut AnyConnection,
    newsletter_id: &str,
) -> QueryResult<Vec<(String, String, NaiveDateTime, i64)>> {
    newsletter_actions::table
        .filter(newsletter_actions::newsletter_id.eq(newsletter_id))
        .select((
            newsletter_actions::language,
            newsletter_actions::action,
            newsletter_actions::hour,
            newsletter_actions::people,
        ))
        .load(conn)
}

/// One group of a newsletter's deliveries still kept in the ledger.
#[derive(QueryableByName, Debug)]
pub struct LiveGroup {
    #[diesel(sql_type = Nullable<Text>)]
    pub language: Option<String>,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub outcome: Option<String>,
    #[diesel(sql_type = Timestamp)]
    pub hour: NaiveDateTime,
    #[diesel(sql_type = BigInt)]
    pub recipients: i64,
}

/// A newsletter's deliveries still kept, grouped by the subscriber's language (none once they
/// are gone), state, outcome and the hour they were sent (or, unsent, last due), the way the
/// retention job folds them (`delivery_results`), in one query.
pub fn live_groups(conn: &mut AnyConnection, newsletter_id: &str) -> QueryResult<Vec<LiveGroup>> {
    const SQLITE_HOUR: &str = "substr(coalesce(d.sent_at, d.run_at), 1, 13) || ':00:00'";
    const PG_HOUR: &str = "date_trunc('hour', coalesce(d.sent_at, d.run_at))";
    let query = |hour: &str| {
        format!(
            "SELECT s.language AS language, d.state AS state, d.outcome AS outcome, \
             {hour} AS hour, count(*) AS recipients \
             FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id \
             WHERE d.newsletter_id = $1 \
             GROUP BY s.language, d.state, d.outcome, {hour}"
        )
    };
    match conn {
        AnyConnection::Sqlite(c) => diesel::sql_query(query(SQLITE_HOUR).replace("$1", "?"))
            .bind::<Text, _>(newsletter_id)
            .load(c),
        AnyConnection::Postgresql(c) => diesel::sql_query(query(PG_HOUR))
            .bind::<Text, _>(newsletter_id)
            .load(c),
    }
}

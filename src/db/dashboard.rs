//! Counts for the console's dashboard.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::schema::{consent_events, mail_events};
use super::AnyConnection;

diesel::table! {
    /// People by status, kept by triggers on `subscribers` (migration 2026-12-08-000011).
    subscriber_counts (status) {
        status -> Text,
        people -> BigInt,
    }
}

/// People by status, as the triggers on `subscribers` keep them: exact, without counting the
/// list.
pub fn people_by_status(conn: &mut AnyConnection) -> QueryResult<Vec<(String, i64)>> {
    subscriber_counts::table
        .select((subscriber_counts::status, subscriber_counts::people))
        .load(conn)
}

/// Consent records by action made in `[from, to)`.
pub fn consent_actions_between(
    conn: &mut AnyConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> QueryResult<Vec<(String, i64)>> {
    consent_events::table
        .filter(consent_events::created_at.ge(from))
        .filter(consent_events::created_at.lt(to))
        .group_by(consent_events::action)
        .select((consent_events::action, count_star()))
        .load(conn)
}

/// Bounce and complaint reports by kind that happened in `[from, to)`.
pub fn mail_events_between(
    conn: &mut AnyConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> QueryResult<Vec<(String, i64)>> {
    mail_events::table
        .filter(mail_events::occurred_at.ge(from))
        .filter(mail_events::occurred_at.lt(to))
        .group_by(mail_events::kind)
        .select((mail_events::kind, count_star()))
        .load(conn)
}

//! The public archive's reads of the `newsletters` table, and publishing or withdrawing one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ids::NewsletterId;
use super::newsletters::Newsletter;
use super::schema::newsletters;
use super::states::NewsletterState;
use super::AnyConnection;

/// The states in which an archived newsletter is public: from the moment its messages start
/// going out (the first ones already carry the link to its archive page), while it sends, is
/// paused and once it is sent. Drafts, scheduled or overdue sends and cancelled ones never are.
pub const PUBLIC_STATES: [NewsletterState; 3] = [
    NewsletterState::Sending,
    NewsletterState::Paused,
    NewsletterState::Sent,
];

/// One entry of the archive's list: what tells whether its public copy is still the one kept.
#[derive(Queryable, Clone, Debug)]
pub struct Listed {
    pub id: NewsletterId,
    pub started_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

/// Public newsletters, newest send first, `limit` of them after skipping `offset`.
pub fn list_public(conn: &mut AnyConnection, offset: i64, limit: i64) -> QueryResult<Vec<Listed>> {
    newsletters::table
        .filter(newsletters::archived.eq(true))
        .filter(newsletters::status.eq_any(PUBLIC_STATES))
        .filter(newsletters::started_at.is_not_null())
        .select((
            newsletters::id,
            newsletters::started_at,
            newsletters::updated_at,
        ))
        .order((newsletters::started_at.desc(), newsletters::id.desc()))
        .offset(offset)
        .limit(limit)
        .load(conn)
}

/// What tells whether a public newsletter's kept copy is still its own; `None` as `find_public`.
pub fn find_public_listed(
    conn: &mut AnyConnection,
    id: &NewsletterId,
) -> QueryResult<Option<Listed>> {
    newsletters::table
        .find(id)
        .filter(newsletters::archived.eq(true))
        .filter(newsletters::status.eq_any(PUBLIC_STATES))
        .filter(newsletters::started_at.is_not_null())
        .select((
            newsletters::id,
            newsletters::started_at,
            newsletters::updated_at,
        ))
        .first(conn)
        .optional()
}

/// A newsletter if it is public; `None` for one that is not archived, not (yet) sent, or unknown.
pub fn find_public(conn: &mut AnyConnection, id: &NewsletterId) -> QueryResult<Option<Newsletter>> {
    newsletters::table
        .find(id)
        .filter(newsletters::archived.eq(true))
        .filter(newsletters::status.eq_any(PUBLIC_STATES))
        .filter(newsletters::started_at.is_not_null())
        .select(Newsletter::as_select())
        .first(conn)
        .optional()
}

/// Publishes (`true`) or withdraws a newsletter in any state; false when it does not exist.
/// `updated_at` moves, so the copies compiled before (for sending, for the archive) are rebuilt.
pub fn set_archived(
    conn: &mut AnyConnection,
    id: &NewsletterId,
    archived: bool,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(newsletters::table.find(id))
        .set((
            newsletters::archived.eq(archived),
            newsletters::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

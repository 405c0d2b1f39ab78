//! The `console_sessions` table: staff signed in to the console from a browser.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ids::StaffId;
use super::schema::{console_sessions, staff};
use super::AnyConnection;
use crate::domain::Role;

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = console_sessions, treat_none_as_default_value = false)]
pub struct ConsoleSession {
    /// SHA-256 (hex) of the secret the browser holds.
    pub id: String,
    pub staff_id: StaffId,
    /// The role and token generation the member had when signing in.
    pub role: Role,
    pub generation: i32,
    pub csrf_token: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert(conn: &mut AnyConnection, session: &ConsoleSession) -> QueryResult<()> {
    diesel::insert_into(console_sessions::table)
        .values(session)
        .execute(conn)
        .map(drop)
}

/// A session with the member as they are now (`None` when the account is gone).
pub fn find_with_member(
    conn: &mut AnyConnection,
    id: &str,
) -> QueryResult<Option<(ConsoleSession, super::staff::StaffMember)>> {
    console_sessions::table
        .inner_join(staff::table)
        .filter(console_sessions::id.eq(id))
        .select((
            ConsoleSession::as_select(),
            super::staff::StaffMember::as_select(),
        ))
        .first(conn)
        .optional()
}

/// Notes that the session was used at `now` (for the idle limit).
pub fn touch(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(console_sessions::table.find(id))
        .set(console_sessions::last_seen_at.eq(now))
        .execute(conn)
        .map(drop)
}

pub fn delete(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(console_sessions::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

/// Ends every session of a member (a password change, a disable, a demotion).
pub fn delete_for_member(conn: &mut AnyConnection, staff_id: &StaffId) -> QueryResult<usize> {
    diesel::delete(console_sessions::table.filter(console_sessions::staff_id.eq(staff_id)))
        .execute(conn)
}

/// Removes sessions that ended (absolute end before `now`, or idle since before `idle_cutoff`).
pub fn delete_ended(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    idle_cutoff: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        console_sessions::table.filter(
            console_sessions::expires_at
                .le(now)
                .or(console_sessions::last_seen_at.lt(idle_cutoff)),
        ),
    )
    .execute(conn)
}

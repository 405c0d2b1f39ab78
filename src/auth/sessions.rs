//! Console sessions: a staff member signed in from a browser. The browser keeps a random secret
//! in a cookie; the database keeps its SHA-256, the member's role and token generation at
//! sign-in, and a CSRF token for the session's forms.
//!
//! A session ends when the member signs out; after `idle` without use; `absolute` after
//! signing in, however busy; and at once when the member is disabled, demoted, deleted or
//! changes their password (the generation moves on), whatever the browser still holds.

use chrono::{Duration, NaiveDateTime};

use crate::db::{self, sessions as store, staff::StaffMember};

/// How long sessions last.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    pub idle: Duration,
    pub absolute: Duration,
}

/// A session just begun: the secret for the browser's cookie (never stored) and the CSRF token.
pub struct Started {
    pub secret: String,
    pub csrf_token: String,
}

/// A valid session and its member as they are now.
#[derive(Clone, Debug)]
pub struct Current {
    /// The stored id (a hash of the secret).
    pub id: String,
    pub member: StaffMember,
    pub csrf_token: String,
}

/// Uses of a session closer together than this are not written down (a page load asks for
/// several things; the idle limit is counted in minutes).
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// Begins a session for `member`, who has just proved who they are.
pub fn start(
    conn: &mut db::AnyConnection,
    member: &StaffMember,
    now: NaiveDateTime,
    limits: SessionLimits,
) -> diesel::QueryResult<Started> {
    let secret = crate::tokens::random_token();
    let csrf_token = crate::tokens::random_token();
    store::insert(
        conn,
        &store::ConsoleSession {
            id: crate::tokens::hash_token(&secret),
            staff_id: member.id.clone(),
            role: member.role,
            generation: member.token_generation,
            csrf_token: csrf_token.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + limits.absolute,
        },
    )?;
    Ok(Started { secret, csrf_token })
}

/// The session a browser's secret names, if it is still valid at `now`; an ended one is
/// removed.
pub fn resolve(
    conn: &mut db::AnyConnection,
    secret: &str,
    now: NaiveDateTime,
    limits: SessionLimits,
) -> diesel::QueryResult<Option<Current>> {
    if !crate::tokens::is_well_formed(secret) {
        return Ok(None);
    }
    let id = crate::tokens::hash_token(secret);
    let Some((session, member)) = store::find_with_member(conn, &id)? else {
        return Ok(None);
    };
    let valid = now < session.expires_at
        && now - session.last_seen_at < limits.idle
        && !member.disabled
        && member.token_generation == session.generation
        && member.role.rank() >= session.role.rank();
    if !valid {
        store::delete(conn, &id)?;
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_EVERY {
        store::touch(conn, &id, now)?;
    }
    Ok(Some(Current {
        id,
        member,
        csrf_token: session.csrf_token,
    }))
}

/// Ends the session a browser's secret names (signing out); true when there was one.
pub fn end(conn: &mut db::AnyConnection, secret: &str) -> diesel::QueryResult<bool> {
    store::delete(conn, &crate::tokens::hash_token(secret))
}

/// Removes every session that has ended by `now`.
pub fn sweep(
    conn: &mut db::AnyConnection,
    now: NaiveDateTime,
    limits: SessionLimits,
) -> diesel::QueryResult<usize> {
    store::delete_ended(conn, now, now - limits.idle)
}

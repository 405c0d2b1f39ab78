//! The audit log: who changed what, from where and when. Rows are only ever added.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_log;
use super::AnyConnection;

#[derive(Queryable, Selectable, Insertable, Clone, Debug, serde::Serialize)]
#[diesel(table_name = audit_log, treat_none_as_default_value = false)]
pub struct AuditEntry {
    pub id: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub ip: Option<String>,
    pub created_at: NaiveDateTime,
}

pub fn insert_audit_entry(conn: &mut AnyConnection, entry: &AuditEntry) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values(entry)
        .execute(conn)
        .map(drop)
}

/// Which entries a page of the audit log holds: `None` leaves that part open.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// An action exactly (`staff.update`).
    pub action: Option<String>,
    /// The id of the staff member, key or other actor that acted.
    pub actor_id: Option<String>,
    /// At or after this time (UTC).
    pub since: Option<NaiveDateTime>,
    /// Before this time (UTC).
    pub until: Option<NaiveDateTime>,
}

/// Newest first; `before` is the id of the last entry of the previous page (ids sort by time).
pub fn list_audit_entries(
    conn: &mut AnyConnection,
    filter: &AuditFilter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    let mut query = audit_log::table
        .select(AuditEntry::as_select())
        .order(audit_log::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(audit_log::id.lt(before.to_owned()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_log::action.eq(action.clone()));
    }
    if let Some(actor) = &filter.actor_id {
        query = query.filter(audit_log::actor_id.eq(actor.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_log::created_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_log::created_at.lt(until));
    }
    query.load(conn)
}

/// Every action the log holds, in order (for choosing one to filter by).
pub fn audit_actions(conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
    audit_log::table
        .select(audit_log::action)
        .distinct()
        .order(audit_log::action)
        .load(conn)
}

/// The newest `limit` entries about one object (a subscriber, say), newest first.
pub fn list_audit_entries_about(
    conn: &mut AnyConnection,
    object_type: &str,
    object_id: &str,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    audit_log::table
        .select(AuditEntry::as_select())
        .filter(audit_log::object_type.eq(object_type.to_owned()))
        .filter(audit_log::object_id.eq(object_id.to_owned()))
        .order(audit_log::id.desc())
        .limit(limit)
        .load(conn)
}

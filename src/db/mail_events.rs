//! Bounce and complaint reports already processed: the de-duplication record, and the soft
//! bounces an address has had lately.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::schema::{mail_events, provider_tokens};
use super::AnyConnection;

#[derive(Insertable, Queryable, Clone, Debug, PartialEq, Eq)]
#[diesel(table_name = mail_events)]
pub struct MailEventRow {
    pub id: String,
    pub provider: String,
    pub kind: String,
    pub email_hash: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub occurred_at: NaiveDateTime,
    pub received_at: NaiveDateTime,
}

pub fn mail_event_exists(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(mail_events::table.find(id))).get_result(conn)
}

/// Records a processed report. A second report with the same id fails on the primary key (the
/// caller treats that as "already processed").
pub fn insert_mail_event(conn: &mut AnyConnection, row: &MailEventRow) -> QueryResult<()> {
    diesel::insert_into(mail_events::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Soft bounces of an address that happened at or after `since`.
pub fn count_soft_bounces(
    conn: &mut AnyConnection,
    email_hash: &str,
    since: NaiveDateTime,
) -> QueryResult<i64> {
    mail_events::table
        .filter(mail_events::email_hash.eq(email_hash))
        .filter(mail_events::kind.eq("soft_bounce"))
        .filter(mail_events::occurred_at.ge(since))
        .select(count_star())
        .first(conn)
}

/// The reports about one address, oldest first (for access requests).
pub fn list_mail_events_for_address(
    conn: &mut AnyConnection,
    email_hash: &str,
) -> QueryResult<Vec<MailEventRow>> {
    mail_events::table
        .filter(mail_events::email_hash.eq(email_hash))
        .order(mail_events::occurred_at.asc())
        .load(conn)
}

/// Records a provider's one-time token; false when it was seen before (a replay). Tokens older
/// than `forget_before` are dropped first.
pub fn remember_provider_token(
    conn: &mut AnyConnection,
    token: &str,
    now: NaiveDateTime,
    forget_before: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::delete(provider_tokens::table.filter(provider_tokens::seen_at.lt(forget_before)))
        .execute(conn)?;
    let seen: bool =
        diesel::select(diesel::dsl::exists(provider_tokens::table.find(token))).get_result(conn)?;
    if seen {
        return Ok(false);
    }
    diesel::insert_into(provider_tokens::table)
        .values((
            provider_tokens::token.eq(token),
            provider_tokens::seen_at.eq(now),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Erasure: the reports about an address keep their kind and outcome, never their diagnostic
/// text, which may quote the person's name or address in forms no pattern can catch (URL- or
/// MIME-encoded, split across words).
pub fn forget_details(conn: &mut AnyConnection, email_hash: &str) -> QueryResult<usize> {
    diesel::update(
        mail_events::table
            .filter(mail_events::email_hash.eq(email_hash))
            .filter(mail_events::detail.is_not_null()),
    )
    .set(mail_events::detail.eq(None::<String>))
    .execute(conn)
}

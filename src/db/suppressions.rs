//! The suppression list: hashes of addresses that must never be mailed.

use diesel::prelude::*;

use super::schema::suppressions;
use super::AnyConnection;
use crate::domain::SuppressionReason;

pub fn find_suppression(
    conn: &mut AnyConnection,
    email_hash: &str,
) -> QueryResult<Option<SuppressionReason>> {
    suppressions::table
        .find(email_hash)
        .select(suppressions::reason)
        .first(conn)
        .optional()
}

/// (hash, reason) for those of `email_hashes` that are suppressed.
pub fn find_suppressions(
    conn: &mut AnyConnection,
    email_hashes: &[String],
) -> QueryResult<Vec<(String, SuppressionReason)>> {
    suppressions::table
        .filter(suppressions::email_hash.eq_any(email_hashes))
        .select((suppressions::email_hash, suppressions::reason))
        .load(conn)
}

pub fn delete_suppression(
    conn: &mut AnyConnection,
    email_hash: &str,
    reason: SuppressionReason,
) -> QueryResult<()> {
    diesel::delete(
        suppressions::table
            .filter(suppressions::email_hash.eq(email_hash))
            .filter(suppressions::reason.eq(reason)),
    )
    .execute(conn)
    .map(drop)
}

pub fn insert_suppression(
    conn: &mut AnyConnection,
    email_hash: &str,
    reason: SuppressionReason,
    now: chrono::NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(suppressions::table)
        .values((
            suppressions::email_hash.eq(email_hash),
            suppressions::reason.eq(reason),
            suppressions::created_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

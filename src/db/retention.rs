//! Queries of the retention rules: which personal data has outlived its purpose.

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::schema::{confirmation_tokens, subscribers};
use super::AnyConnection;

/// People who signed up (or were added for confirmation) and never confirmed, whose every
/// confirmation link expired before `cutoff` (or who never had one and were added before it):
/// up to `limit` of them, as (id, address).
pub fn unconfirmed_before(
    conn: &mut AnyConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<(String, String)>> {
    subscribers::table
        .filter(subscribers::status.eq("pending"))
        .filter(subscribers::confirmed_at.is_null())
        .filter(subscribers::created_at.lt(cutoff))
        .filter(not(exists(
            confirmation_tokens::table
                .filter(confirmation_tokens::subscriber_id.eq(subscribers::id))
                .filter(confirmation_tokens::expires_at.ge(cutoff)),
        )))
        .order(subscribers::created_at.asc())
        .limit(limit)
        .select((subscribers::id, subscribers::email))
        .load(conn)
}

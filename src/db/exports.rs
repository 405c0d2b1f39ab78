//! Reads for streamed exports: subscribers in id order, one chunk at a time (keyset, so every
//! chunk costs the same however far the export has got), and the interests of a chunk at once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{custom_fields, subscriber_interests, subscribers};
use super::subscribers::Subscriber;
use super::{AnyConnection, Backend};
use crate::domain::SegmentFilter;

/// Whom an export covers.
pub struct ExportScope {
    /// Only the people in this segment (confirmed ones, as for a newsletter).
    pub segment: Option<SegmentFilter>,
    /// Only people changed at or after this time.
    pub updated_since: Option<NaiveDateTime>,
    pub backend: Backend,
}

/// Up to `limit` subscribers in scope whose id sorts after `after`, in id order.
pub fn subscribers_after(
    conn: &mut AnyConnection,
    scope: &ExportScope,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Subscriber>> {
    let mut query = subscribers::table
        .select(Subscriber::as_select())
        .into_boxed();
    if let Some(filter) = &scope.segment {
        query = query.filter(super::segments::condition(filter, scope.backend));
    }
    if let Some(since) = scope.updated_since {
        query = query.filter(subscribers::updated_at.ge(since));
    }
    if let Some(after) = after {
        query = query.filter(subscribers::id.gt(after.to_owned()));
    }
    query.order(subscribers::id.asc()).limit(limit).load(conn)
}

/// (subscriber id, interest slug) for every subscriber id from `first` to `last` inclusive, in
/// that order: one range scan of the primary key per chunk.
pub fn interests_between(
    conn: &mut AnyConnection,
    first: &str,
    last: &str,
) -> QueryResult<Vec<(String, String)>> {
    subscriber_interests::table
        .filter(subscriber_interests::subscriber_id.ge(first))
        .filter(subscriber_interests::subscriber_id.le(last))
        .order((
            subscriber_interests::subscriber_id.asc(),
            subscriber_interests::interest_slug.asc(),
        ))
        .select((
            subscriber_interests::subscriber_id,
            subscriber_interests::interest_slug,
        ))
        .load(conn)
}

/// (subscriber id, interest slug) for the given subscribers, by id then slug.
pub fn interests_of(conn: &mut AnyConnection, ids: &[&str]) -> QueryResult<Vec<(String, String)>> {
    subscriber_interests::table
        .filter(subscriber_interests::subscriber_id.eq_any(ids))
        .order((
            subscriber_interests::subscriber_id.asc(),
            subscriber_interests::interest_slug.asc(),
        ))
        .select((
            subscriber_interests::subscriber_id,
            subscriber_interests::interest_slug,
        ))
        .load(conn)
}

/// The keys of every declared custom field, in order: one CSV column each.
pub fn field_keys(conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
    custom_fields::table
        .order(custom_fields::key.asc())
        .select(custom_fields::key)
        .load(conn)
}

//! The change feed: every change to the list in commit order, erasures as tombstones, so a
//! client that polls it keeps an exact copy.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::SubscriberRecord;
use crate::db::subscribers::{self as store, SubscriberQuery, Tombstone};
use crate::db::{self, Db, DbError};
use crate::domain::SubscriberStatus;

/// Which changes the feed gives, after parsing.
pub struct ChangeFilter {
    pub status: Option<SubscriberStatus>,
    pub language: Option<String>,
    pub interest: Option<String>,
    /// Lowercase.
    pub email_contains: Option<String>,
    pub updated_since: Option<NaiveDateTime>,
    /// The change number the client has seen up to (0: from the start).
    pub after: i64,
    pub limit: i64,
}

/// One entry of the change feed: a subscriber as they are now, or the tombstone of one erased.
pub enum Change {
    Subscriber(SubscriberRecord),
    Erased(Tombstone),
}

pub struct ChangePage {
    pub changes: Vec<Change>,
    /// Where the next poll continues.
    pub next: i64,
    pub has_more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ListChangesError {
    /// The client has seen changes this database never made: it was restored from a backup,
    /// or the cursor is from another list.
    #[error("the cursor is ahead of every change")]
    CursorAhead,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Every change in commit order (erasures as tombstones), filtered, from one snapshot.
pub async fn list_changes(db: &Db, filter: ChangeFilter) -> Result<ChangePage, ListChangesError> {
    let (after, limit) = (filter.after, filter.limit);
    let query = SubscriberQuery {
        status: filter.status,
        language: filter.language,
        interest: filter.interest,
        email_contains: filter.email_contains,
        updated_since: filter.updated_since,
        after,
        // One more than asked, to tell whether more is waiting.
        limit: limit + 1,
    };
    let (mut changes, more, latest, mut interests) = db
        .run(move |conn| {
            db::read_snapshot(conn, |conn| -> Result<_, DbError> {
                let people = store::list_changed_subscribers(conn, &query)?;
                let erased =
                    store::list_tombstones_after(conn, after, query.updated_since, query.limit)?;
                let available = people.len() + erased.len();
                // Merge the two ordered lists by change number.
                let mut changes: Vec<(i64, Change)> = people
                    .into_iter()
                    .map(|(s, seq)| {
                        let record = SubscriberRecord {
                            subscriber: s,
                            interests: Vec::new(),
                        };
                        (seq, Change::Subscriber(record))
                    })
                    .chain(
                        erased
                            .into_iter()
                            .map(|t| (t.change_seq, Change::Erased(t))),
                    )
                    .collect();
                changes.sort_unstable_by_key(|(seq, _)| *seq);
                changes.truncate(limit as usize);
                let more = available > changes.len();
                let latest = store::latest_change(conn)?;
                let ids: Vec<&str> = changes
                    .iter()
                    .filter_map(|(_, c)| match c {
                        Change::Subscriber(r) => Some(r.subscriber.id.as_str()),
                        Change::Erased(_) => None,
                    })
                    .collect();
                let mut interests: HashMap<String, Vec<String>> = HashMap::new();
                for (id, interest) in store::list_interests_of(conn, &ids)? {
                    interests.entry(id).or_default().push(interest.slug);
                }
                Ok((changes, more, latest, interests))
            })
        })
        .await?;
    if after > latest {
        return Err(ListChangesError::CursorAhead);
    }
    for (_, change) in &mut changes {
        if let Change::Subscriber(record) = change {
            record.interests = interests
                .remove(record.subscriber.id.as_str())
                .unwrap_or_default();
        }
    }
    // More waiting: continue after the last change given. Otherwise every change in this
    // snapshot has been seen (filtered or not), so the next poll starts after the newest one.
    let next = match changes.last() {
        Some((seq, _)) if more => *seq,
        last => latest.max(after).max(last.map_or(0, |(seq, _)| *seq)),
    };
    Ok(ChangePage {
        changes: changes.into_iter().map(|(_, c)| c).collect(),
        next,
        has_more: more,
    })
}

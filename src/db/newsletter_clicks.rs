//! The `newsletter_clicks` table: clicks on a newsletter's links per link and hour, human and
//! scanner apart. Nothing in it names a person, an address or a device.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{newsletter_clicks, newsletters};
use super::AnyConnection;

/// Clicks gathered for one link of one newsletter in one hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClickCount {
    pub newsletter_id: String,
    pub link: i32,
    pub hour: NaiveDateTime,
    pub clicks: i64,
    pub scanner_clicks: i64,
}

/// Adds a batch of counts to the table; counts of newsletters deleted meanwhile are dropped.
/// Returns how many rows were written. Call inside a transaction.
pub fn add(conn: &mut AnyConnection, batch: &[ClickCount]) -> QueryResult<usize> {
    let ids: Vec<&str> = batch
        .iter()
        .map(|c| c.newsletter_id.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let existing: HashSet<String> = newsletters::table
        .filter(newsletters::id.eq_any(&ids))
        .select(newsletters::id)
        .load::<String>(conn)?
        .into_iter()
        .collect();
    let mut written = 0;
    for count in batch.iter().filter(|c| existing.contains(&c.newsletter_id)) {
        let row = (
            newsletter_clicks::newsletter_id.eq(&count.newsletter_id),
            newsletter_clicks::link.eq(count.link),
            newsletter_clicks::hour.eq(count.hour),
            newsletter_clicks::clicks.eq(count.clicks),
            newsletter_clicks::scanner_clicks.eq(count.scanner_clicks),
        );
        written +=
            crate::on_backend!(&mut *conn, |c| diesel::insert_into(
                newsletter_clicks::table
            )
            .values(row)
            .on_conflict((
                newsletter_clicks::newsletter_id,
                newsletter_clicks::link,
                newsletter_clicks::hour,
            ))
            .do_update()
            .set((
                newsletter_clicks::clicks
                    .eq(newsletter_clicks::clicks + excluded(newsletter_clicks::clicks)),
                newsletter_clicks::scanner_clicks
                    .eq(newsletter_clicks::scanner_clicks
                        + excluded(newsletter_clicks::scanner_clicks)),
            ))
            .execute(c))?;
    }
    Ok(written)
}

/// A newsletter's click counts, by link and hour.
pub fn for_newsletter(
    conn: &mut AnyConnection,
    newsletter_id: &str,
) -> QueryResult<Vec<ClickCount>> {
    newsletter_clicks::table
        .filter(newsletter_clicks::newsletter_id.eq(newsletter_id))
        .order((newsletter_clicks::hour, newsletter_clicks::link))
        .select((
            newsletter_clicks::newsletter_id,
            newsletter_clicks::link,
            newsletter_clicks::hour,
            newsletter_clicks::clicks,
            newsletter_clicks::scanner_clicks,
        ))
        .load::<(String, i32, NaiveDateTime, i64, i64)>(conn)
        .map(|rows| {
            rows.into_iter()
                .map(
                    |(newsletter_id, link, hour, clicks, scanner_clicks)| ClickCount {
                        newsletter_id,
                        link,
                        hour,
                        clicks,
                        scanner_clicks,
                    },
                )
                .collect()
        })
}

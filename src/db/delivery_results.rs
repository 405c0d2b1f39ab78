//! The `delivery_results` table: a newsletter's deliveries once they are past their retention,
//! folded into counts by the recipient's language, the state, the class of the reason and the
//! hour. Nothing in it names a person; the delivery rows it counts are deleted in the transaction
//! that adds them, so each is counted once.

use chrono::NaiveDateTime;
use diesel::dsl::exists;
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::deliveries::{FAILED, SENDING, SENT, SKIPPED};
use super::schema::{deliveries, delivery_results, newsletters, subscribers};
use super::states::NewsletterState;
use super::AnyConnection;

/// The language counted for a delivery whose subscriber no longer exists.
pub const UNKNOWN_LANGUAGE: &str = "unknown";

/// The deliveries that may be folded once their newsletter is past its retention at `cutoff`:
/// decided ones (sent, failed, skipped), and ones still `sending` under a lease that ran out
/// before `cutoff` (held by a process that died, in a newsletter cancelled meanwhile: nothing
/// takes them again). A `pending` one of a cancelled newsletter waits until the engine marks it
/// skipped.
macro_rules! foldable {
    ($cutoff:expr) => {
        deliveries::state
            .eq_any([SENT, FAILED, SKIPPED])
            .or(deliveries::state
                .eq(SENDING)
                .and(deliveries::locked_until.lt($cutoff)))
    };
}

/// Newsletters that finished (sent or cancelled) before `cutoff` and still have deliveries to
/// fold, the oldest first.
pub fn due_newsletters(
    conn: &mut AnyConnection,
    cutoff: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let foldable = deliveries::table
        .filter(deliveries::newsletter_id.eq(newsletters::id))
        .filter(foldable!(cutoff));
    newsletters::table
        .filter(newsletters::status.eq_any([NewsletterState::Sent, NewsletterState::Cancelled]))
        .filter(newsletters::finished_at.lt(cutoff))
        .filter(exists(foldable))
        .order(newsletters::finished_at.asc())
        .select(newsletters::id)
        .load(conn)
}

/// A delivery as it was when it was taken out of the ledger to be counted.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The subscriber's language, `None` when they no longer exist.
    pub language: Option<String>,
    pub state: String,
    pub outcome: Option<String>,
    pub sent_at: Option<NaiveDateTime>,
    pub run_at: NaiveDateTime,
}

/// Deletes up to `limit` foldable deliveries of one newsletter (see `due_newsletters`) and
/// returns them. Call inside `write_transaction`, and add their counts (`add`) in the same one.
///
/// On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED`, so two processes folding at once
/// take different rows; and only what this transaction deleted is returned, so a row another
/// process deleted meanwhile is never counted twice. SQLite's `BEGIN IMMEDIATE` admits no other
/// writer.
pub fn take_deliveries(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Taken>> {
    let chosen = deliveries::table
        .filter(deliveries::newsletter_id.eq(newsletter_id))
        .filter(foldable!(cutoff))
        .limit(limit)
        .select(deliveries::subscriber_id);
    let ids: Vec<String> = match conn {
        AnyConnection::Postgresql(pg) => chosen.for_update().skip_locked().load(pg)?,
        AnyConnection::Sqlite(lite) => chosen.load(lite)?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // (subscriber id, state, outcome, sent at, run at) of each row deleted.
    type Deleted = (
        String,
        String,
        Option<String>,
        Option<NaiveDateTime>,
        NaiveDateTime,
    );
    let deleted: Vec<Deleted> = diesel::delete(
        deliveries::table
            .filter(deliveries::newsletter_id.eq(newsletter_id))
            .filter(deliveries::subscriber_id.eq_any(&ids)),
    )
    .returning((
        deliveries::subscriber_id,
        deliveries::state,
        deliveries::outcome,
        deliveries::sent_at,
        deliveries::run_at,
    ))
    .get_results(conn)?;
    let languages: std::collections::HashMap<String, String> = subscribers::table
        .filter(subscribers::id.eq_any(&ids))
        .select((subscribers::id, subscribers::language))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    Ok(deleted
        .into_iter()
        .map(|(subscriber_id, state, outcome, sent_at, run_at)| Taken {
            language: languages.get(&subscriber_id).cloned(),
            state,
            outcome,
            sent_at,
            run_at,
        })
        .collect())
}

/// One line of a newsletter's results.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResultKey {
    pub language: String,
    pub state: String,
    pub reason: String,
    pub hour: NaiveDateTime,
}

/// Adds `counts` to a newsletter's results. `counts` is walked in its order (a `BTreeMap`'s),
/// so two processes adding to the same lines at once take their row locks in the same order.
pub fn add<'a>(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    counts: impl IntoIterator<Item = (&'a ResultKey, &'a i64)>,
) -> QueryResult<()> {
    for (key, &n) in counts {
        let row = (
            delivery_results::newsletter_id.eq(newsletter_id),
            delivery_results::language.eq(&key.language),
            delivery_results::state.eq(&key.state),
            delivery_results::reason.eq(&key.reason),
            delivery_results::hour.eq(key.hour),
            delivery_results::recipients.eq(n),
        );
        crate::on_backend!(&mut *conn, |c| diesel::insert_into(delivery_results::table)
            .values(row)
            .on_conflict((
                delivery_results::newsletter_id,
                delivery_results::language,
                delivery_results::state,
                delivery_results::reason,
                delivery_results::hour,
            ))
            .do_update()
            .set(
                delivery_results::recipients
                    .eq(delivery_results::recipients + excluded(delivery_results::recipients)),
            )
            .execute(c))?;
    }
    Ok(())
}

/// The folded deliveries of a newsletter, as (state, how many) lines (a state may repeat).
pub fn counts(conn: &mut AnyConnection, newsletter_id: &str) -> QueryResult<Vec<(String, i64)>> {
    delivery_results::table
        .filter(delivery_results::newsletter_id.eq(newsletter_id))
        .select((delivery_results::state, delivery_results::recipients))
        .load(conn)
}

/// A newsletter's messages that were not sent (`failed`, `skipped`): the live rows counted by
/// state and outcome, and the rows already folded into results by state and class of reason.
/// The caller classes the live outcomes (`sending::outcome_class`) and adds the two up.
#[allow(clippy::type_complexity)]
pub fn unsent(
    conn: &mut AnyConnection,
    newsletter_id: &str,
) -> QueryResult<(
    Vec<(String, Option<String>, i64)>,
    Vec<(String, String, i64)>,
)> {
    use crate::db::schema::deliveries;
    use diesel::dsl::count_star;
    let live = deliveries::table
        .filter(deliveries::newsletter_id.eq(newsletter_id))
        .filter(deliveries::state.eq_any(["failed", "skipped"]))
        .group_by((deliveries::state, deliveries::outcome))
        .select((deliveries::state, deliveries::outcome, count_star()))
        .load(conn)?;
    let folded = delivery_results::table
        .filter(delivery_results::newsletter_id.eq(newsletter_id))
        .filter(delivery_results::state.eq_any(["failed", "skipped"]))
        .select((
            delivery_results::state,
            delivery_results::reason,
            delivery_results::recipients,
        ))
        .load(conn)?;
    Ok((live, folded))
}

/// One folded line of a newsletter's results: (language, state, reason, hour, recipients).
pub type Line = (String, String, String, NaiveDateTime, i64);

/// Every folded line of a newsletter's results.
pub fn lines(conn: &mut AnyConnection, newsletter_id: &str) -> QueryResult<Vec<Line>> {
    delivery_results::table
        .filter(delivery_results::newsletter_id.eq(newsletter_id))
        .select((
            delivery_results::language,
            delivery_results::state,
            delivery_results::reason,
            delivery_results::hour,
            delivery_results::recipients,
        ))
        .load(conn)
}

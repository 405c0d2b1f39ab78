//! The `deliveries` table: one row per recipient of a newsletter send, fixed when the send
//! starts, claimed by workers under an expiring lease, and finished with its outcome.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text, Timestamp};

use super::schema::{deliveries, newsletters, subscribers};
use super::states::{DeliveryState, NewsletterState};
use super::AnyConnection;

// The stored text of each state (see `DeliveryState`), for queries and the engine.
pub const PENDING: &str = DeliveryState::Pending.as_str();
pub const SENDING: &str = DeliveryState::Sending.as_str();
pub const SENT: &str = DeliveryState::Sent.as_str();
pub const FAILED: &str = DeliveryState::Failed.as_str();
pub const SKIPPED: &str = DeliveryState::Skipped.as_str();

/// The condition on `subscribers` that picks a send's recipients (see `db::segments`).
pub type RecipientCondition = Box<
    dyn BoxableExpression<
        subscribers::table,
        <AnyConnection as diesel::Connection>::Backend,
        SqlType = diesel::sql_types::Bool,
    >,
>;

/// Fixes the recipients of a send: one pending row for every subscriber matching `condition`,
/// in a single statement. Returns how many.
pub fn insert_recipients(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    condition: RecipientCondition,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let rows = subscribers::table.filter(condition).select((
        newsletter_id.to_owned().into_sql::<Text>(),
        subscribers::id,
        PENDING.into_sql::<Text>(),
        0.into_sql::<Integer>(),
        now.into_sql::<Timestamp>(),
    ));
    diesel::insert_into(deliveries::table)
        .values(rows)
        .into_columns((
            deliveries::newsletter_id,
            deliveries::subscriber_id,
            deliveries::state,
            deliveries::attempts,
            deliveries::run_at,
        ))
        .execute(conn)
}

/// A delivery as a worker holds it after claiming.
#[derive(Queryable, Clone, Debug)]
pub struct ClaimedDelivery {
    pub newsletter_id: String,
    pub subscriber_id: String,
    pub attempts: i32,
}

/// Claims up to `limit` due deliveries of one newsletter under `claim`, first (when
/// `take_expired`) ones whose lease ran out. Call inside `write_transaction`.
///
/// The rows are chosen and held in the same transaction: PostgreSQL locks them `FOR UPDATE`
/// (re-checking the condition on the newest row version, and skipping rows another process is
/// claiming); SQLite's `BEGIN IMMEDIATE` admits no other writer. So the UPDATE addresses them by
/// primary key alone, and no row is ever held by two claims. (Repeating the state condition
/// there made PostgreSQL's planner, whose statistics predate the send, walk every pending row
/// of the newsletter for each claim.)
///
/// Looking for expired leases reads the `sending` part of the state index, which fills with
/// finished rows' old entries during a send (they are not visible, but still read until vacuum);
/// the caller therefore asks for it only now and then.
pub fn claim_deliveries(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    claim: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
    take_expired: bool,
) -> QueryResult<Vec<ClaimedDelivery>> {
    // Two narrow reads, each served by the (newsletter_id, state, run_at) index: claims whose
    // lease ran out, then the due pending rows in order. (One query with an OR of both would
    // scan and sort the whole newsletter on every claim.)
    let mut ids: Vec<String> = Vec::new();
    if take_expired {
        let expired = deliveries::table
            .filter(deliveries::newsletter_id.eq(newsletter_id))
            .filter(deliveries::state.eq(SENDING))
            .filter(deliveries::locked_until.lt(now))
            .limit(limit)
            .select(deliveries::subscriber_id);
        ids = match conn {
            AnyConnection::Postgresql(pg) => expired.for_update().skip_locked().load(pg)?,
            AnyConnection::Sqlite(lite) => expired.load(lite)?,
        };
    }
    let wanted = limit - ids.len() as i64;
    if wanted > 0 {
        let due = deliveries::table
            .filter(deliveries::newsletter_id.eq(newsletter_id))
            .filter(deliveries::state.eq(PENDING))
            .filter(deliveries::run_at.le(now))
            .order(deliveries::run_at.asc())
            .limit(wanted)
            .select(deliveries::subscriber_id);
        ids.extend(match conn {
            AnyConnection::Postgresql(pg) => due.for_update().skip_locked().load(pg)?,
            AnyConnection::Sqlite(lite) => due.load(lite)?,
        });
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    take(conn, newsletter_id, &ids, claim, lease_until)
}

/// Puts the chosen deliveries under `claim` until `lease_until`, one more attempt each.
fn take(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    ids: &[String],
    claim: &str,
    lease_until: NaiveDateTime,
) -> QueryResult<Vec<ClaimedDelivery>> {
    diesel::update(
        deliveries::table
            .filter(deliveries::newsletter_id.eq(newsletter_id))
            .filter(deliveries::subscriber_id.eq_any(ids)),
    )
    .set((
        deliveries::state.eq(SENDING),
        deliveries::claim.eq(Some(claim)),
        deliveries::locked_until.eq(Some(lease_until)),
        deliveries::attempts.eq(deliveries::attempts + 1),
    ))
    .returning((
        deliveries::newsletter_id,
        deliveries::subscriber_id,
        deliveries::attempts,
    ))
    .get_results(conn)
}

/// What became of the deliveries a claim held when its process died.
pub enum Held {
    /// None is held under it any more (finished, or taken over).
    Gone,
    /// Some are still within the dead claim's lease.
    Leased,
    /// Claimed again under the new claim.
    Claimed(Vec<ClaimedDelivery>),
}

/// Claims again, under `claim`, the deliveries of a newsletter still held under `held` (the
/// claim of a process that died), once their lease has run out; they alone, so that whatever
/// happens while they are rendered is theirs. Call inside `write_transaction`.
pub fn claim_held_deliveries(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    held: &str,
    claim: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Held> {
    let rows = deliveries::table
        .filter(deliveries::newsletter_id.eq(newsletter_id))
        .filter(deliveries::state.eq(SENDING))
        .filter(deliveries::claim.eq(held))
        .select((deliveries::subscriber_id, deliveries::locked_until));
    let rows: Vec<(String, Option<NaiveDateTime>)> = match conn {
        AnyConnection::Postgresql(pg) => rows.for_update().skip_locked().load(pg)?,
        AnyConnection::Sqlite(lite) => rows.load(lite)?,
    };
    if rows.is_empty() {
        return Ok(Held::Gone);
    }
    if rows
        .iter()
        .any(|(_, until)| until.is_some_and(|u| u >= now))
    {
        return Ok(Held::Leased);
    }
    let ids: Vec<String> = rows.into_iter().map(|(id, _)| id).collect();
    take(conn, newsletter_id, &ids, claim, lease_until).map(Held::Claimed)
}

/// Refreshes PostgreSQL's statistics of the deliveries table (`ANALYZE` samples a fixed number
/// of rows, so it stays quick however large the table is). Nothing to do on SQLite, whose
/// planner has no statistics unless asked to keep them.
pub fn refresh_statistics(conn: &mut AnyConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    match conn {
        AnyConnection::Postgresql(pg) => pg.batch_execute("ANALYZE deliveries"),
        AnyConnection::Sqlite(_) => Ok(()),
    }
}

/// Extends to `until` the lease of the deliveries still held under any of `claims` (in
/// `newsletter_ids`, which keeps it on the index); returns the claims that still hold some.
/// Call inside `write_transaction`.
///
/// On PostgreSQL the rows whose outcome is being written at that moment are skipped rather than
/// waited for: they are about to leave `sending`, and the outcome writer locks rows claim by
/// claim in its own order, so waiting for them while holding others could deadlock with it.
/// Which claims still hold deliveries is read first, without locks, so such a row still counts
/// (its claim is kept, and renewed next time should its outcome not commit).
pub fn renew_claims(
    conn: &mut AnyConnection,
    newsletter_ids: &[String],
    claims: &[String],
    until: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let held_rows = || {
        deliveries::table
            .filter(deliveries::newsletter_id.eq_any(newsletter_ids))
            .filter(deliveries::state.eq(SENDING))
            .filter(deliveries::claim.eq_any(claims))
    };
    let held: Vec<String> = held_rows()
        .select(deliveries::claim)
        .distinct()
        .load::<Option<String>>(conn)?
        .into_iter()
        .flatten()
        .collect();
    let renew = deliveries::locked_until.eq(Some(until));
    match conn {
        AnyConnection::Postgresql(pg) => {
            let free: Vec<(String, String)> = held_rows()
                .select((deliveries::newsletter_id, deliveries::subscriber_id))
                .for_update()
                .skip_locked()
                .load(pg)?;
            for newsletter_id in newsletter_ids {
                let ids: Vec<&str> = free
                    .iter()
                    .filter(|(n, _)| n == newsletter_id)
                    .map(|(_, s)| s.as_str())
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                diesel::update(
                    deliveries::table
                        .filter(deliveries::newsletter_id.eq(newsletter_id))
                        .filter(deliveries::subscriber_id.eq_any(&ids)),
                )
                .set(renew)
                .execute(pg)?;
            }
        }
        AnyConnection::Sqlite(lite) => {
            diesel::update(held_rows()).set(renew).execute(lite)?;
        }
    }
    Ok(held)
}

/// Finishes deliveries of one claim in one state (`sent`, `failed`, `skipped`); rows another
/// claim has taken over since are left alone.
pub fn finish(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    claim: &str,
    subscriber_ids: &[&str],
    state: &str,
    outcome: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    if subscriber_ids.is_empty() {
        return Ok(0);
    }
    diesel::update(
        deliveries::table
            .filter(deliveries::newsletter_id.eq(newsletter_id))
            .filter(deliveries::subscriber_id.eq_any(subscriber_ids))
            .filter(deliveries::claim.eq(claim)),
    )
    .set((
        deliveries::state.eq(state),
        deliveries::outcome.eq(outcome),
        deliveries::claim.eq(None::<String>),
        deliveries::locked_until.eq(None::<NaiveDateTime>),
        deliveries::sent_at.eq((state == SENT).then_some(now)),
    ))
    .execute(conn)
}

/// Puts claimed deliveries back to wait until `run_at`: `retry` after a transient failure
/// (the attempt counts), or not (`retry` false: the send was paused before it was tried).
#[allow(clippy::too_many_arguments)]
pub fn put_back(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    claim: &str,
    subscriber_ids: &[&str],
    run_at: NaiveDateTime,
    retry: bool,
    outcome: Option<&str>,
) -> QueryResult<usize> {
    if subscriber_ids.is_empty() {
        return Ok(0);
    }
    let target = deliveries::table
        .filter(deliveries::newsletter_id.eq(newsletter_id))
        .filter(deliveries::subscriber_id.eq_any(subscriber_ids))
        .filter(deliveries::claim.eq(claim));
    let uncount = if retry { 0 } else { 1 };
    diesel::update(target)
        .set((
            deliveries::state.eq(PENDING),
            deliveries::attempts.eq(deliveries::attempts - uncount),
            deliveries::run_at.eq(run_at),
            deliveries::outcome.eq(outcome),
            deliveries::claim.eq(None::<String>),
            deliveries::locked_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
}

/// Marks the deliveries still waiting in cancelled newsletters as skipped.
pub fn skip_cancelled(conn: &mut AnyConnection) -> QueryResult<usize> {
    let cancelled = newsletters::table
        .filter(newsletters::status.eq(NewsletterState::Cancelled))
        .select(newsletters::id);
    diesel::update(
        deliveries::table
            .filter(deliveries::newsletter_id.eq_any(cancelled))
            .filter(deliveries::state.eq(PENDING)),
    )
    .set((
        deliveries::state.eq(SKIPPED),
        deliveries::outcome.eq(Some("newsletter cancelled")),
    ))
    .execute(conn)
}

/// Deliveries of a newsletter by state: the rows still kept and those folded into its results
/// (`db::delivery_results`), so the numbers stay the same once they are folded.
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    pub total: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    pub pending: i64,
    /// Sent in the window given to `progress`.
    pub recent: i64,
}

pub fn progress(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    recent_since: NaiveDateTime,
) -> QueryResult<Progress> {
    let counts: Vec<(String, i64)> = deliveries::table
        .filter(deliveries::newsletter_id.eq(newsletter_id))
        .group_by(deliveries::state)
        .select((deliveries::state, count_star()))
        .load(conn)?;
    let folded = super::delivery_results::counts(conn, newsletter_id)?;
    let mut p = Progress::default();
    for (state, n) in counts.into_iter().chain(folded) {
        p.total += n;
        match DeliveryState::parse(&state) {
            Some(DeliveryState::Sent) => p.sent += n,
            Some(DeliveryState::Failed) => p.failed += n,
            Some(DeliveryState::Skipped) => p.skipped += n,
            _ => p.pending += n,
        }
    }
    if p.sent > 0 {
        p.recent = deliveries::table
            .filter(deliveries::newsletter_id.eq(newsletter_id))
            .filter(deliveries::state.eq(SENT))
            .filter(deliveries::sent_at.ge(recent_since))
            .select(count_star())
            .first(conn)?;
    }
    Ok(p)
}

/// (newsletter id, state, outcome, sent at) of every delivery to a subscriber still kept, for
/// access requests (folded ones name nobody).
pub type DeliveryRecord = (String, String, Option<String>, Option<NaiveDateTime>);

pub fn list_for_subscriber(
    conn: &mut AnyConnection,
    subscriber_id: &str,
) -> QueryResult<Vec<DeliveryRecord>> {
    deliveries::table
        .filter(deliveries::subscriber_id.eq(subscriber_id))
        .select((
            deliveries::newsletter_id,
            deliveries::state,
            deliveries::outcome,
            deliveries::sent_at,
        ))
        .load(conn)
}

/// Clears the outcomes just written for `subscriber_ids` of one newsletter whose subscriber has
/// been erased meanwhile (a message in its SMTP exchange during the erasure): the server's reply
/// may quote the person, and an erased person keeps no data. Call in the transaction that wrote
/// them; an erasure that commits later clears them itself (`forget_outcomes`).
pub fn forget_outcomes_of_erased(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    subscriber_ids: &[&str],
) -> QueryResult<usize> {
    if subscriber_ids.is_empty() {
        return Ok(0);
    }
    let still_there = subscribers::table.filter(subscribers::id.eq(deliveries::subscriber_id));
    diesel::update(
        deliveries::table
            .filter(deliveries::newsletter_id.eq(newsletter_id))
            .filter(deliveries::subscriber_id.eq_any(subscriber_ids))
            .filter(deliveries::outcome.is_not_null())
            .filter(diesel::dsl::not(diesel::dsl::exists(still_there))),
    )
    .set(deliveries::outcome.eq(None::<String>))
    .execute(conn)
}

/// Erasure: the newsletter deliveries to the person keep their state (a send's counts stay
/// right) but lose their outcome text, a server's reply that may quote the address.
pub fn forget_outcomes(conn: &mut AnyConnection, subscriber_id: &str) -> QueryResult<usize> {
    diesel::update(
        deliveries::table
            .filter(deliveries::subscriber_id.eq(subscriber_id))
            .filter(deliveries::outcome.is_not_null()),
    )
    .set(deliveries::outcome.eq(None::<String>))
    .execute(conn)
}

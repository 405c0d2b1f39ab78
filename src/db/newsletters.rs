//! The `newsletters` table: drafts, their state as a send moves on, and the transitions staff
//! and the engine make (each a conditional update, so two processes cannot both make it).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ids::{NewsletterId, SegmentId};
use super::schema::{deliveries, newsletters, render_marks};
use super::states::{DeliveryState, NewsletterState};
use super::AnyConnection;

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = newsletters, treat_none_as_default_value = false)]
pub struct Newsletter {
    pub id: NewsletterId,
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
    pub variants: String,
    pub from_address: Option<String>,
    pub reply_to: Option<String>,
    pub segment_id: Option<SegmentId>,
    pub filter: Option<String>,
    pub status: NewsletterState,
    pub send_at: Option<NaiveDateTime>,
    pub send_key: Option<String>,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Why the engine paused it (its messages could not be rendered, a process died rendering
    /// it, its templates no longer compile); cleared when staff pause or resume it.
    pub pause_reason: Option<String>,
    /// The default version's preview text (see `Content::preheader`).
    pub preheader: Option<String>,
    /// Its links go through Enlace's click-counting redirect (the `clicks` module).
    pub count_clicks: bool,
    /// A copy without personal merge fields is public in the archive once it is sent.
    pub archived: bool,
}

/// A draft's editable fields; `None` leaves a field as it is.
#[derive(AsChangeset, Default)]
#[diesel(table_name = newsletters)]
pub struct NewsletterChanges {
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<Option<String>>,
    pub variants: Option<String>,
    pub from_address: Option<Option<String>>,
    pub reply_to: Option<Option<String>>,
    pub segment_id: Option<Option<SegmentId>>,
    pub filter: Option<Option<String>>,
    pub preheader: Option<Option<String>>,
    pub count_clicks: Option<bool>,
    pub archived: Option<bool>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn insert_newsletter(conn: &mut AnyConnection, newsletter: &Newsletter) -> QueryResult<()> {
    diesel::insert_into(newsletters::table)
        .values(newsletter)
        .execute(conn)
        .map(drop)
}

pub fn find_newsletter(
    conn: &mut AnyConnection,
    id: &NewsletterId,
) -> QueryResult<Option<Newsletter>> {
    newsletters::table
        .find(id)
        .select(Newsletter::as_select())
        .first(conn)
        .optional()
}

/// Newest first; `before` is the (created_at, id) of the last one already seen.
pub fn list_newsletters(
    conn: &mut AnyConnection,
    status: Option<NewsletterState>,
    before: Option<(NaiveDateTime, NewsletterId)>,
    limit: i64,
) -> QueryResult<Vec<Newsletter>> {
    let mut query = newsletters::table
        .select(Newsletter::as_select())
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(newsletters::status.eq(status));
    }
    if let Some((at, id)) = before {
        query = query.filter(
            newsletters::created_at
                .lt(at)
                .or(newsletters::created_at.eq(at).and(newsletters::id.lt(id))),
        );
    }
    query
        .order((newsletters::created_at.desc(), newsletters::id.desc()))
        .limit(limit)
        .load(conn)
}

/// Changes a draft; false when it is not (or no longer) a draft.
pub fn update_draft(
    conn: &mut AnyConnection,
    id: &NewsletterId,
    changes: &NewsletterChanges,
) -> QueryResult<bool> {
    diesel::update(
        newsletters::table
            .find(id)
            .filter(newsletters::status.eq(NewsletterState::Draft)),
    )
    .set(changes)
    .execute(conn)
    .map(|n| n == 1)
}

/// Deletes a draft, or a newsletter cancelled before it started; false otherwise.
pub fn delete_unsent(conn: &mut AnyConnection, id: &NewsletterId) -> QueryResult<bool> {
    diesel::delete(
        newsletters::table.find(id).filter(
            newsletters::status
                .eq(NewsletterState::Draft)
                .or(newsletters::status
                    .eq(NewsletterState::Cancelled)
                    .and(newsletters::started_at.is_null())),
        ),
    )
    .execute(conn)
    .map(|n| n == 1)
}

/// Moves a newsletter from one of `from` to `to`; false when it was in none of them. The reason
/// of an earlier pause by the engine is cleared, and a resumed send may again fail to render
/// `MAX_RENDER_FAILURES` messages before it is paused (see `sending::guard`).
pub fn transition(
    conn: &mut AnyConnection,
    id: &NewsletterId,
    from: &[NewsletterState],
    to: NewsletterState,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let target = newsletters::table
        .find(id)
        .filter(newsletters::status.eq_any(from));
    let changes = (
        newsletters::status.eq(to),
        newsletters::updated_at.eq(now),
        newsletters::pause_reason.eq(None::<String>),
    );
    if to == NewsletterState::Sending {
        diesel::update(target)
            .set((changes, newsletters::render_failures.eq(0)))
            .execute(conn)
    } else {
        diesel::update(target).set(changes).execute(conn)
    }
    .map(|n| n == 1)
}

/// Pauses a sending newsletter for a reason staff read in the API; false when it was not sending.
pub fn pause_with_reason(
    conn: &mut AnyConnection,
    id: &str,
    reason: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        newsletters::table
            .find(id)
            .filter(newsletters::status.eq(NewsletterState::Sending)),
    )
    .set((
        newsletters::status.eq(NewsletterState::Paused),
        newsletters::pause_reason.eq(Some(reason)),
        newsletters::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Adds `count` messages that could not be rendered; returns the newsletter's total since it
/// last started or resumed.
pub fn add_render_failures(conn: &mut AnyConnection, id: &str, count: i32) -> QueryResult<i32> {
    diesel::update(newsletters::table.find(id))
        .set(newsletters::render_failures.eq(newsletters::render_failures + count))
        .returning(newsletters::render_failures)
        .get_result(conn)
}

/// Newsletters that may still be sent: drafts, scheduled, overdue, sending and paused.
pub fn unfinished_newsletters(conn: &mut AnyConnection) -> QueryResult<Vec<Newsletter>> {
    newsletters::table
        .filter(newsletters::status.eq_any(NewsletterState::UNFINISHED))
        .order(newsletters::created_at.asc())
        .select(Newsletter::as_select())
        .load(conn)
}

/// A batch being rendered, rendered again alone, or waiting to be (see `render_marks`).
pub const MARK_BATCH: &str = "batch";
pub const MARK_PROBE: &str = "probe";
pub const MARK_SUSPECT: &str = "suspect";

#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = render_marks)]
pub struct RenderMark {
    pub claim: String,
    pub kind: String,
    pub started_at: NaiveDateTime,
    pub locked_until: NaiveDateTime,
}

/// Marks the batch `claim` of a newsletter (`kind`: one of the `MARK_` kinds) until `until`.
pub fn mark_rendering(
    conn: &mut AnyConnection,
    newsletter_id: &str,
    claim: &str,
    kind: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(render_marks::table)
        .values((
            render_marks::claim.eq(claim),
            render_marks::newsletter_id.eq(newsletter_id),
            render_marks::kind.eq(kind),
            render_marks::started_at.eq(now),
            render_marks::locked_until.eq(until),
        ))
        .execute(conn)
        .map(drop)
}

/// The marks of a newsletter, made by this process or another.
pub fn render_marks_of(
    conn: &mut AnyConnection,
    newsletter_id: &str,
) -> QueryResult<Vec<RenderMark>> {
    render_marks::table
        .filter(render_marks::newsletter_id.eq(newsletter_id))
        .select(RenderMark::as_select())
        .load(conn)
}

/// Removes the marks of rendered batches.
pub fn clear_render_marks(conn: &mut AnyConnection, claims: &[String]) -> QueryResult<usize> {
    if claims.is_empty() {
        return Ok(0);
    }
    diesel::delete(render_marks::table.filter(render_marks::claim.eq_any(claims))).execute(conn)
}

/// Removes every mark of a newsletter (when it is paused because of one).
pub fn clear_render_marks_of(conn: &mut AnyConnection, newsletter_id: &str) -> QueryResult<usize> {
    diesel::delete(render_marks::table.filter(render_marks::newsletter_id.eq(newsletter_id)))
        .execute(conn)
}

/// Extends the marks of batches still being rendered, with their claims' leases.
pub fn renew_render_marks(
    conn: &mut AnyConnection,
    claims: &[String],
    until: NaiveDateTime,
) -> QueryResult<usize> {
    if claims.is_empty() {
        return Ok(0);
    }
    diesel::update(render_marks::table.filter(render_marks::claim.eq_any(claims)))
        .set(render_marks::locked_until.eq(until))
        .execute(conn)
}

/// Schedules (or, with `send_at` = now, starts) a draft or overdue newsletter under `key`.
pub fn schedule(
    conn: &mut AnyConnection,
    id: &NewsletterId,
    send_at: NaiveDateTime,
    key: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        newsletters::table
            .find(id)
            .filter(newsletters::status.eq_any([NewsletterState::Draft, NewsletterState::Overdue])),
    )
    .set((
        newsletters::status.eq(NewsletterState::Scheduled),
        newsletters::send_at.eq(Some(send_at)),
        newsletters::send_key.eq(key),
        newsletters::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Scheduled newsletters whose time has come, oldest first.
pub fn due_newsletters(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
) -> QueryResult<Vec<Newsletter>> {
    newsletters::table
        .filter(newsletters::status.eq(NewsletterState::Scheduled))
        .filter(newsletters::send_at.le(now))
        .order(newsletters::send_at.asc())
        .select(Newsletter::as_select())
        .load(conn)
}

/// Holds every scheduled newsletter whose time passed before `cutoff`: it waits for staff.
pub fn hold_overdue(
    conn: &mut AnyConnection,
    cutoff: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    diesel::update(
        newsletters::table
            .filter(newsletters::status.eq(NewsletterState::Scheduled))
            .filter(newsletters::send_at.lt(cutoff)),
    )
    .set((
        newsletters::status.eq(NewsletterState::Overdue),
        newsletters::updated_at.eq(now),
    ))
    .returning(newsletters::id)
    .get_results(conn)
}

/// Marks a scheduled newsletter as sending from now; false when another process did first.
pub fn start_sending(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(
        newsletters::table
            .find(id)
            .filter(newsletters::status.eq(NewsletterState::Scheduled)),
    )
    .set((
        newsletters::status.eq(NewsletterState::Sending),
        newsletters::started_at.eq(Some(now)),
        newsletters::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Ids of newsletters being sent.
pub fn sending_ids(conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
    newsletters::table
        .filter(newsletters::status.eq(NewsletterState::Sending))
        .select(newsletters::id)
        .load(conn)
}

/// Marks as sent every sending newsletter with no delivery left to make; returns their ids.
pub fn finish_completed(conn: &mut AnyConnection, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    let open = deliveries::table
        .filter(deliveries::state.eq_any([
            DeliveryState::Pending.as_str(),
            DeliveryState::Sending.as_str(),
        ]))
        .filter(deliveries::newsletter_id.eq(newsletters::id));
    diesel::update(
        newsletters::table
            .filter(newsletters::status.eq(NewsletterState::Sending))
            .filter(diesel::dsl::not(diesel::dsl::exists(open))),
    )
    .set((
        newsletters::status.eq(NewsletterState::Sent),
        newsletters::finished_at.eq(Some(now)),
        newsletters::updated_at.eq(now),
    ))
    .returning(newsletters::id)
    .get_results(conn)
}

/// Cancels a newsletter that has not finished; false otherwise.
pub fn cancel(
    conn: &mut AnyConnection,
    id: &NewsletterId,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        newsletters::table
            .find(id)
            .filter(newsletters::status.eq_any([
                NewsletterState::Scheduled,
                NewsletterState::Overdue,
                NewsletterState::Sending,
                NewsletterState::Paused,
            ])),
    )
    .set((
        newsletters::status.eq(NewsletterState::Cancelled),
        newsletters::finished_at.eq(Some(now)),
        newsletters::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

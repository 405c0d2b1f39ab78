//! The console's dashboard: where the list stands, and what happened each day of the last 30
//! in the reader's time zone.

use chrono::{Duration, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::db::{self, Db, DbError};

/// Days the dashboard looks back.
pub const DAYS: usize = 30;

/// One day's events, in the reader's time zone.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub signups: i64,
    pub confirmations: i64,
    pub unsubscribes: i64,
    pub bounces: i64,
    pub complaints: i64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Overview {
    /// People by status, every status present (zero when none).
    pub by_status: Vec<(String, i64)>,
    pub total: i64,
    /// Oldest first; the last is today.
    pub days: Vec<Day>,
    pub recent: Vec<db::audit::AuditEntry>,
}

/// Midnight of `date` in `zone`, as a UTC time (the first instant of the day where midnight
/// does not exist).
fn start_of(date: NaiveDate, zone: Tz) -> NaiveDateTime {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match zone.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.naive_utc(),
        chrono::LocalResult::None => zone
            .from_local_datetime(&(midnight + Duration::hours(1)))
            .earliest()
            .map(|t| t.naive_utc())
            .unwrap_or(midnight),
    }
}

/// Where the list stands at `now`, and the last `DAYS` days in `zone`.
pub async fn overview(db: &Db, now: NaiveDateTime, zone: Tz) -> Result<Overview, DbError> {
    let today = zone.from_utc_datetime(&now).date_naive();
    db.run(move |conn| -> Result<_, DbError> {
        let counts = db::dashboard::people_by_status(conn)?;
        let by_status: Vec<(String, i64)> = crate::domain::SubscriberStatus::ALL
            .iter()
            .map(|status| {
                let n = counts
                    .iter()
                    .filter(|(s, _)| s == status.as_str())
                    .map(|(_, n)| *n)
                    .sum();
                (status.as_str().to_owned(), n)
            })
            .collect();
        let total = by_status.iter().map(|(_, n)| n).sum();
        let mut days = Vec::with_capacity(DAYS);
        for back in (0..DAYS as i64).rev() {
            let date = today - Duration::days(back);
            let (from, to) = (
                start_of(date, zone),
                start_of(date + Duration::days(1), zone),
            );
            let mut day = Day {
                date,
                ..Day::default()
            };
            for (action, n) in db::dashboard::consent_actions_between(conn, from, to)? {
                match action.as_str() {
                    "signup" => day.signups += n,
                    "confirm" => day.confirmations += n,
                    "unsubscribe" => day.unsubscribes += n,
                    _ => {}
                }
            }
            for (kind, n) in db::dashboard::mail_events_between(conn, from, to)? {
                match kind.as_str() {
                    "hard_bounce" | "soft_bounce" => day.bounces += n,
                    "complaint" => day.complaints += n,
                    _ => {}
                }
            }
            days.push(day);
        }
        let recent = db::audit::list_audit_entries(conn, &Default::default(), None, 10)?;
        Ok(Overview {
            by_status,
            total,
            days,
            recent,
        })
    })
    .await
}

//! The dashboard: people by status, the last 30 days as charts (drawn on the server as SVG,
//! with the same numbers in a table for screen readers and for copying), pending confirmations
//! and the latest staff activity.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use minijinja::context;
use serde::Serialize;

use super::frame::Signed;
use crate::auth::AnyStaff;
use crate::services::dashboard::{self as service, Day};

#[derive(serde::Deserialize)]
pub struct NoticeQuery {
    #[serde(default)]
    notice: Option<String>,
}

/// Chart geometry, in the SVG's own units.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 24.0;
/// Room on the right for the last day's label.
const RIGHT: f64 = 24.0;

#[derive(Serialize)]
struct Bar {
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    series: &'static str,
    value: i64,
    date: String,
}

#[derive(Serialize)]
struct Chart {
    bars: Vec<Bar>,
    /// (y, label) of the horizontal grid lines.
    ticks: Vec<(f64, i64)>,
    /// (x, date) of the labelled days.
    labels: Vec<(f64, String)>,
    series: Vec<&'static str>,
    /// Where the plot ends, and the whole drawing's width.
    width: f64,
    view_width: f64,
    height: f64,
    left: f64,
    base: f64,
}

/// A rounded maximum for the axis: 1, 2 or 5 times a power of ten, at least `max`.
fn nice_max(max: i64) -> i64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step >= max.max(1) {
                return m * step;
            }
        }
        step *= 10;
    }
}

/// A named series of a chart and how to read it from a day.
type Series = (&'static str, fn(&Day) -> i64);

fn chart(days: &[Day], series: &[Series]) -> Chart {
    let max = days
        .iter()
        .flat_map(|d| series.iter().map(move |(_, f)| f(d)))
        .max()
        .unwrap_or(0);
    let top = nice_max(max) as f64;
    let plot = HEIGHT - BOTTOM - 8.0;
    let base = HEIGHT - BOTTOM;
    let slot = (WIDTH - LEFT - RIGHT) / days.len().max(1) as f64;
    let bar = (slot - 4.0) / series.len() as f64;
    let mut bars = Vec::new();
    for (i, day) in days.iter().enumerate() {
        for (j, (name, value)) in series.iter().enumerate() {
            let value = value(day);
            let height = value as f64 / top * plot;
            bars.push(Bar {
                x: LEFT + i as f64 * slot + 2.0 + j as f64 * bar,
                y: base - height,
                width: bar,
                height,
                series: name,
                value,
                date: day.date.to_string(),
            });
        }
    }
    // Grid lines at whole numbers only: 0–5 by 1, 0–2 by 1, 0–10 by 2, 0–200 by 40…
    let top_n = top as i64;
    let divisions = [5, 4, 2, 1]
        .into_iter()
        .find(|d| top_n % d == 0 && top_n >= *d)
        .unwrap_or(1);
    let ticks = (0..=divisions)
        .map(|k| {
            let value = top_n * k / divisions;
            (base - value as f64 / top * plot, value)
        })
        .collect();
    let labels = days
        .iter()
        .enumerate()
        .filter(|(i, _)| (days.len() - 1 - i) % 7 == 0)
        .map(|(i, d)| (LEFT + (i as f64 + 0.5) * slot, d.date.to_string()))
        .collect();
    Chart {
        bars,
        ticks,
        labels,
        series: series.iter().map(|(name, _)| *name).collect(),
        width: WIDTH - RIGHT,
        view_width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        base,
    }
}

pub async fn page(signed: Signed<AnyStaff>, query: web::Query<NoticeQuery>) -> HttpResponse {
    let console = &signed.console;
    let overview = match service::overview(&console.state.db, crate::db::now(), console.zone).await
    {
        Ok(overview) => overview,
        Err(e) => return console.internal(e),
    };
    let growth = chart(
        &overview.days,
        &[
            ("signups", |d| d.signups),
            ("confirmations", |d| d.confirmations),
        ],
    );
    let losses = chart(
        &overview.days,
        &[
            ("unsubscribes", |d| d.unsubscribes),
            ("bounces", |d| d.bounces),
            ("complaints", |d| d.complaints),
        ],
    );
    let pending = overview
        .by_status
        .iter()
        .find(|(s, _)| s == "pending")
        .map(|(_, n)| *n)
        .unwrap_or(0);
    let totals = overview.days.iter().fold(Day::default(), |mut t, d| {
        t.signups += d.signups;
        t.confirmations += d.confirmations;
        t.unsubscribes += d.unsubscribes;
        t.bounces += d.bounces;
        t.complaints += d.complaints;
        t
    });
    console.page(
        StatusCode::OK,
        "dashboard",
        context! {
            notice => query.notice.as_deref(),
            by_status => overview.by_status,
            total => overview.total,
            pending => pending,
            days => overview.days,
            totals => totals,
            growth => growth,
            losses => losses,
            recent => overview.recent,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(101), 200);
    }

    #[test]
    fn grid_lines_fall_on_whole_numbers() {
        let days: Vec<Day> = (0..3)
            .map(|i| Day {
                signups: i,
                ..Day::default()
            })
            .collect();
        let drawn = chart(&days, &[("signups", |d| d.signups)]);
        let labels: Vec<i64> = drawn.ticks.iter().map(|(_, v)| *v).collect();
        assert_eq!(labels, [0, 1, 2]);
    }
}

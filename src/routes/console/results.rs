//! A newsletter's results page: what it achieved, counted without tracking anyone (from the
//! delivery ledger, and what people did through its own links or reported about it), by
//! language and over time, with a CSV of the same figures. Counts below the threshold read
//! "fewer than N" here as in the API.

use std::collections::BTreeMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use chrono::{NaiveDateTime, TimeZone};
use minijinja::{context, Value};

use super::chart::chart_hiding;
use super::frame::{Console, Signed};
use crate::auth::ReadNewsletters;
use crate::db::ids::NewsletterId;
use crate::services::newsletters::{self as service, Clicks, Counts, Results, ResultsError, Shown};

/// Over this many hours, the chart shows days instead.
const HOURLY_UP_TO: i64 = 72;

async fn load(console: &Console, id: &str) -> Result<Results, HttpResponse> {
    let Some(id) = NewsletterId::parse(id) else {
        return Err(console.error(StatusCode::NOT_FOUND, "not_found"));
    };
    match service::results(&console.state.db, id).await {
        Ok(results) => Ok(results),
        Err(ResultsError::NotFound) => Err(console.error(StatusCode::NOT_FOUND, "not_found")),
        Err(e) => Err(console.internal(e)),
    }
}

/// A figure as the page shows it: the number, or `None` for "fewer than".
fn figures(counts: &Counts, threshold: u32) -> BTreeMap<&'static str, Option<i64>> {
    counts
        .figures()
        .into_iter()
        .map(|(name, n)| (name, Shown::of(n, threshold).exact()))
        .collect()
}

/// Figures by hour, or by day (in the member's time zone) when they span more than
/// `HOURLY_UP_TO` hours; each with its label, those of one label added up with `add`.
fn buckets<T: Copy>(
    console: &Console,
    hours: &BTreeMap<NaiveDateTime, T>,
    add: impl Fn(&mut T, &T),
) -> Vec<(String, T)> {
    let (Some(first), Some(last)) = (hours.keys().next(), hours.keys().next_back()) else {
        return Vec::new();
    };
    let hourly = (*last - *first).num_hours() <= HOURLY_UP_TO;
    let local = |t: &NaiveDateTime| console.zone.from_utc_datetime(t);
    let mut out: Vec<(String, T)> = Vec::new();
    for (hour, counts) in hours {
        let label = if hourly {
            local(hour).format("%m-%d %H:00").to_string()
        } else {
            local(hour).format("%Y-%m-%d").to_string()
        };
        match out.last_mut() {
            Some((l, c)) if *l == label => add(c, counts),
            _ => out.push((label, *counts)),
        }
    }
    out
}

/// The clicks section: totals, each link, and a chart over time.
fn clicks_section(
    console: &Console,
    clicks: &Clicks,
    shown: impl Fn(i64) -> Option<i64> + Copy,
    hidden: &str,
) -> Value {
    let points = buckets(console, &clicks.hours, |a, b| {
        a.0 += b.0;
        a.1 += b.1;
    });
    let chart = chart_hiding(
        &points,
        |p| p.0.clone(),
        &[("clicks", |p| p.1 .0), ("scanner_clicks", |p| p.1 .1)],
        points.len().div_ceil(8).max(1),
        shown,
        hidden,
    );
    let links: Vec<Value> = clicks
        .links
        .iter()
        .map(|l| {
            context! {
                place => l.place + 1,
                url => &l.url,
                clicks => shown(l.clicks),
                scanner_clicks => shown(l.scanner_clicks),
            }
        })
        .collect();
    context! {
        clicks => shown(clicks.clicks),
        scanner_clicks => shown(clicks.scanner_clicks),
        links => links,
        chart => chart,
        any => !points.is_empty(),
    }
}

pub async fn page(signed: Signed<ReadNewsletters>, id: web::Path<String>) -> HttpResponse {
    let console = &signed.console;
    let r = match load(console, &id).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    let threshold = console.state.settings.results_min_count;
    let hidden = console
        .state
        .templates
        .console_message(console.language, &format!("fewer than {threshold}"));
    let shown = |n: i64| Shown::of(n, threshold).exact();
    let points = buckets(console, &r.hours, Counts::add);
    let every = points.len().div_ceil(8).max(1);
    let delivery = chart_hiding(
        &points,
        |p| p.0.clone(),
        &[
            ("accepted", |p| p.1.accepted),
            ("failed", |p| p.1.failed_permanent + p.1.failed_temporary),
        ],
        every,
        shown,
        &hidden,
    );
    let actions = chart_hiding(
        &points,
        |p| p.0.clone(),
        &[
            ("unsubscribes", |p| p.1.unsubscribes),
            ("preference_changes", |p| p.1.preference_changes),
            ("hard_bounces", |p| p.1.hard_bounces),
            ("complaints", |p| p.1.complaints),
        ],
        every,
        shown,
        &hidden,
    );
    let languages: Vec<Value> = r
        .languages
        .iter()
        .map(|(l, c)| context! { language => l, figures => figures(c, threshold) })
        .collect();
    let table: Vec<Value> = points
        .iter()
        .map(|(label, c)| context! { label => label, figures => figures(c, threshold) })
        .collect();
    let not_sent: Vec<Value> = r
        .reasons
        .iter()
        .map(|(state, reason, n)| context! { state => state, reason => reason, count => shown(*n) })
        .collect();
    console.page(
        StatusCode::OK,
        "newsletters/results",
        context! {
            id => r.newsletter.id.as_str(),
            subject => &r.newsletter.subject,
            status => r.newsletter.status.as_str(),
            threshold => threshold,
            total => figures(&r.total, threshold),
            languages => languages,
            delivery_chart => delivery,
            actions_chart => actions,
            over_time => table,
            not_sent => not_sent,
            clicks => r.clicks.as_ref().map(|c| clicks_section(console, c, shown, &hidden)),
            live => r.newsletter.status == crate::db::states::NewsletterState::Sending,
        },
    )
}

/// The same figures as CSV (as the API's `?format=csv`).
pub async fn csv(signed: Signed<ReadNewsletters>, id: web::Path<String>) -> HttpResponse {
    let console = &signed.console;
    let r = match load(console, &id).await {
        Ok(r) => r,
        Err(page) => return page,
    };
    match crate::routes::results::csv(&r, console.state.settings.results_min_count) {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"results-{}.csv\"",
                    r.newsletter.id.as_str()
                ),
            ))
            .body(body),
        Err(e) => console.internal(e),
    }
}

//! The dashboard: people by status, the last 30 days as charts (drawn on the server as SVG,
//! with the same numbers in a table for screen readers and for copying), pending confirmations
//! and the latest staff activity.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use minijinja::context;

use super::chart::chart;
use super::frame::NoticeQuery;
use super::frame::Signed;
use crate::auth::AnyStaff;
use crate::services::dashboard::{self as service, Day};

pub async fn page(signed: Signed<AnyStaff>, query: web::Query<NoticeQuery>) -> HttpResponse {
    let console = &signed.console;
    let overview = match service::overview(&console.state.db, crate::db::now(), console.zone).await
    {
        Ok(overview) => overview,
        Err(e) => return console.internal(e),
    };
    // Every seventh day labelled (month-day), the last one included.
    let label = |d: &Day| d.date.format("%m-%d").to_string();
    let growth = chart(
        &overview.days,
        label,
        &[
            ("signups", |d| d.signups),
            ("confirmations", |d| d.confirmations),
        ],
        7,
    );
    let losses = chart(
        &overview.days,
        label,
        &[
            ("unsubscribes", |d| d.unsubscribes),
            ("bounces", |d| d.bounces),
            ("complaints", |d| d.complaints),
        ],
        7,
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

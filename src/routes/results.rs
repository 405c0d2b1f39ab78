//! A newsletter's results as the API and the CSV (from the API and the console) give them:
//! every count below the threshold (`ENLACE_RESULTS_MIN_COUNT`) is `null` in JSON and "fewer
//! than N" in CSV, so results on a small audience cannot single anyone out.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::services::newsletters::{Clicks, Counts, Results, Shown};
use crate::views::time as timestamp;

/// Counts as shown: each figure exact, or `null` below the threshold.
fn shown(counts: &Counts, threshold: u32) -> Map<String, Value> {
    counts
        .figures()
        .into_iter()
        .map(|(name, n)| {
            let value = Shown::of(n, threshold)
                .exact()
                .map_or(Value::Null, Value::from);
            (name.to_owned(), value)
        })
        .collect()
}

/// A count as JSON shows it: the number, or `null` below the threshold.
fn one(n: i64, threshold: u32) -> Value {
    Shown::of(n, threshold)
        .exact()
        .map_or(Value::Null, Value::from)
}

/// Clicks as shown (see `Clicks`).
fn clicks_view(c: &Clicks, threshold: u32) -> Value {
    let links: Vec<Value> = c
        .links
        .iter()
        .map(|l| {
            serde_json::json!({
                "link": l.place,
                "url": l.url,
                "clicks": one(l.clicks, threshold),
                "scanner_clicks": one(l.scanner_clicks, threshold),
            })
        })
        .collect();
    let hours: Vec<Value> = c
        .hours
        .iter()
        .map(|(hour, (clicks, scanner))| {
            serde_json::json!({
                "hour": timestamp(*hour),
                "clicks": one(*clicks, threshold),
                "scanner_clicks": one(*scanner, threshold),
            })
        })
        .collect();
    serde_json::json!({
        "clicks": one(c.clicks, threshold),
        "scanner_clicks": one(c.scanner_clicks, threshold),
        "links": links,
        "hours": hours,
    })
}

#[derive(Serialize)]
pub struct ResultsView {
    /// `null` when the newsletter does not count clicks.
    clicks: Value,
    hours: Vec<Map<String, Value>>,
    languages: BTreeMap<String, Map<String, Value>>,
    newsletter_id: String,
    not_sent: Vec<Map<String, Value>>,
    read_at: String,
    status: &'static str,
    /// Counts below this are `null`: "fewer than" it.
    threshold: u32,
    total: Map<String, Value>,
}

impl ResultsView {
    pub fn new(r: &Results, threshold: u32) -> Self {
        let hours = r
            .hours
            .iter()
            .map(|(hour, counts)| {
                let mut m = Map::new();
                m.insert("hour".into(), timestamp(*hour).into());
                m.extend(shown(counts, threshold));
                m
            })
            .collect();
        let not_sent = r
            .reasons
            .iter()
            .map(|(state, reason, n)| {
                let mut m = Map::new();
                m.insert("state".into(), state.clone().into());
                m.insert("reason".into(), reason.clone().into());
                m.insert(
                    "count".into(),
                    Shown::of(*n, threshold)
                        .exact()
                        .map_or(Value::Null, Value::from),
                );
                m
            })
            .collect();
        Self {
            clicks: r
                .clicks
                .as_ref()
                .map_or(Value::Null, |c| clicks_view(c, threshold)),
            newsletter_id: r.newsletter.id.as_str().to_owned(),
            status: r.newsletter.status.as_str(),
            threshold,
            total: shown(&r.total, threshold),
            languages: r
                .languages
                .iter()
                .map(|(l, c)| (l.clone(), shown(c, threshold)))
                .collect(),
            hours,
            not_sent,
            read_at: timestamp(r.read_at),
        }
    }
}

/// The results as CSV: a header, then one line for everyone, one per language and one per hour
/// (`scope`, `key`, then every figure); a count below the threshold reads "fewer than N". A
/// newsletter that counts clicks has `clicks` and `scanner_clicks` on the lines for everyone and
/// per hour, and a `link` line per counted link (its address as the key); a figure a line has
/// no count of is empty.
pub fn csv(r: &Results, threshold: u32) -> anyhow::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["scope".to_owned(), "key".to_owned()];
    header.extend(
        Counts::default()
            .figures()
            .iter()
            .map(|(n, _)| (*n).to_owned()),
    );
    let clicks = r.clicks.as_ref();
    if clicks.is_some() {
        header.extend(["clicks".to_owned(), "scanner_clicks".to_owned()]);
    }
    out.write_record(&header)?;
    let cell = |n: i64| match Shown::of(n, threshold) {
        Shown::Exact(n) => n.to_string(),
        Shown::FewerThan(k) => format!("fewer than {k}"),
    };
    let figures = Counts::default().figures().len();
    let mut line = |scope: &str,
                    key: String,
                    counts: Option<&Counts>,
                    click_counts: Option<(i64, i64)>|
     -> csv::Result<()> {
        let mut record = vec![scope.to_owned(), key];
        match counts {
            Some(counts) => record.extend(counts.figures().iter().map(|(_, n)| cell(*n))),
            None => record.extend(std::iter::repeat_n(String::new(), figures)),
        }
        if clicks.is_some() {
            match click_counts {
                Some((people, scanners)) => record.extend([cell(people), cell(scanners)]),
                None => record.extend([String::new(), String::new()]),
            }
        }
        out.write_record(&record)
    };
    line(
        "all",
        String::new(),
        Some(&r.total),
        clicks.map(|c| (c.clicks, c.scanner_clicks)),
    )?;
    for (language, counts) in &r.languages {
        line("language", language.clone(), Some(counts), None)?;
    }
    let mut hours: BTreeMap<NaiveDateTime, (Option<&Counts>, Option<(i64, i64)>)> = BTreeMap::new();
    for (hour, counts) in &r.hours {
        hours.entry(*hour).or_default().0 = Some(counts);
    }
    for (hour, by_hour) in clicks.iter().flat_map(|c| c.hours.iter()) {
        hours.entry(*hour).or_default().1 = Some(*by_hour);
    }
    let none = Counts::default();
    for (hour, (counts, click_counts)) in hours {
        let click_counts = click_counts.or(clicks.map(|_| (0, 0)));
        line(
            "hour",
            timestamp(hour),
            Some(counts.unwrap_or(&none)),
            click_counts,
        )?;
    }
    for link in clicks.iter().flat_map(|c| c.links.iter()) {
        line(
            "link",
            link.url.clone(),
            None,
            Some((link.clicks, link.scanner_clicks)),
        )?;
    }
    out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

//! A newsletter's results as the CSV (from the API and the console) gives them (the JSON is
//! `sending::results::ResultsView`, which the `newsletter.finished` webhook carries too):
//! every count below the threshold (`ENLACE_RESULTS_MIN_COUNT`) is `null` in JSON and "fewer
//! than N" in CSV, so results on a small audience cannot single anyone out.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use crate::services::newsletters::{Counts, Results, Shown};
use crate::views::time as timestamp;

/// An hour's line: its delivery and action counts, and its (clicks, scanner clicks).
type HourLine<'a> = (Option<&'a Counts>, Option<(i64, i64)>);

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
    let mut hours: BTreeMap<NaiveDateTime, HourLine> = BTreeMap::new();
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

//! A newsletter's results as the API and the CSV (from the API and the console) give them:
//! every count below the threshold (`ENLACE_RESULTS_MIN_COUNT`) is `null` in JSON and "fewer
//! than N" in CSV, so results on a small audience cannot single anyone out.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::services::newsletters::{Counts, Results, Shown};
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

#[derive(Serialize)]
pub struct ResultsView {
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
/// (`scope`, `key`, then every figure); a count below the threshold reads "fewer than N".
pub fn csv(r: &Results, threshold: u32) -> anyhow::Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["scope".to_owned(), "key".to_owned()];
    header.extend(
        Counts::default()
            .figures()
            .iter()
            .map(|(n, _)| (*n).to_owned()),
    );
    out.write_record(&header)?;
    let cell = |n: i64| match Shown::of(n, threshold) {
        Shown::Exact(n) => n.to_string(),
        Shown::FewerThan(k) => format!("fewer than {k}"),
    };
    let mut line = |scope: &str, key: String, counts: &Counts| -> csv::Result<()> {
        let mut record = vec![scope.to_owned(), key];
        record.extend(counts.figures().iter().map(|(_, n)| cell(*n)));
        out.write_record(&record)
    };
    line("all", String::new(), &r.total)?;
    for (language, counts) in &r.languages {
        line("language", language.clone(), counts)?;
    }
    for (hour, counts) in &r.hours {
        line("hour", timestamp(*hour), counts)?;
    }
    out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

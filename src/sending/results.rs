//! A newsletter's results, without tracking anyone: from the delivery ledger (whom it went to,
//! whether the relay took it, why not), from the counts of what people did through its own
//! links or reported about it (`newsletter_actions`) and from its link clicks
//! (`newsletter_clicks`). By language and by hour. Nothing here is about a person, and a small
//! count is never given exactly (`Shown`). Read by the results API and pages, and summed up in
//! the `newsletter.finished` webhook.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::db;
use crate::db::newsletter_actions::{self as actions, Action};
use crate::db::newsletters::Newsletter;
use crate::views::time as timestamp;

/// Everything counted for a newsletter, in one language, one hour, or all together.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Everyone it was addressed to.
    pub recipients: i64,
    /// Taken by the relay (SMTP 250).
    pub accepted: i64,
    /// Refused for good by the relay (a 5xx reply).
    pub failed_permanent: i64,
    /// Given up after temporary refusals (4xx replies) or failures on Enlace's side.
    pub failed_temporary: i64,
    /// Left out when their turn came (unsubscribed or suppressed meanwhile).
    pub skipped: i64,
    /// Not decided yet (the send is still going, paused or scheduled).
    pub pending: i64,
    pub unsubscribes: i64,
    pub preference_changes: i64,
    pub hard_bounces: i64,
    pub soft_bounces: i64,
    pub complaints: i64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.recipients += other.recipients;
        self.accepted += other.accepted;
        self.failed_permanent += other.failed_permanent;
        self.failed_temporary += other.failed_temporary;
        self.skipped += other.skipped;
        self.pending += other.pending;
        self.unsubscribes += other.unsubscribes;
        self.preference_changes += other.preference_changes;
        self.hard_bounces += other.hard_bounces;
        self.soft_bounces += other.soft_bounces;
        self.complaints += other.complaints;
    }

    /// Deliveries in `state` whose reason is of `class` (`550 5.1.1`, a word, or none).
    fn deliveries(&mut self, state: &str, class: &str, n: i64) {
        self.recipients += n;
        match state {
            "sent" => self.accepted += n,
            "failed" if class.starts_with('5') => self.failed_permanent += n,
            "failed" => self.failed_temporary += n,
            "skipped" => self.skipped += n,
            _ => self.pending += n,
        }
    }

    fn action(&mut self, action: Action, n: i64) {
        match action {
            Action::Unsubscribe => self.unsubscribes += n,
            Action::Preferences => self.preference_changes += n,
            Action::HardBounce => self.hard_bounces += n,
            Action::SoftBounce => self.soft_bounces += n,
            Action::Complaint => self.complaints += n,
        }
    }

    /// Every figure as JSON shows it: the count, or `null` below `threshold`.
    pub fn shown(&self, threshold: u32) -> Map<String, Value> {
        self.figures()
            .into_iter()
            .map(|(name, n)| (name.to_owned(), Shown::json(n, threshold)))
            .collect()
    }

    /// (name, count) of every figure, in the order results list them.
    pub fn figures(&self) -> [(&'static str, i64); 11] {
        [
            ("recipients", self.recipients),
            ("accepted", self.accepted),
            ("failed_permanent", self.failed_permanent),
            ("failed_temporary", self.failed_temporary),
            ("skipped", self.skipped),
            ("pending", self.pending),
            ("hard_bounces", self.hard_bounces),
            ("soft_bounces", self.soft_bounces),
            ("complaints", self.complaints),
            ("unsubscribes", self.unsubscribes),
            ("preference_changes", self.preference_changes),
        ]
    }
}

/// A count as results may show it: exact from the threshold up, else only "fewer than".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Exact(i64),
    FewerThan(u32),
}

impl Shown {
    /// With a threshold of 1 every count is exact (zero included).
    pub fn of(n: i64, threshold: u32) -> Self {
        if n >= i64::from(threshold) || threshold <= 1 {
            Self::Exact(n)
        } else {
            Self::FewerThan(threshold)
        }
    }

    /// A count as JSON shows it: the number, or `null` below the threshold.
    pub fn json(n: i64, threshold: u32) -> Value {
        Self::of(n, threshold)
            .exact()
            .map_or(Value::Null, Value::from)
    }

    /// The exact count, `None` when it is below the threshold.
    pub fn exact(self) -> Option<i64> {
        match self {
            Self::Exact(n) => Some(n),
            Self::FewerThan(_) => None,
        }
    }
}

/// The clicks on one counted link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClicks {
    /// Its place among the newsletter's counted links.
    pub place: i32,
    /// Where it leads.
    pub url: String,
    pub clicks: i64,
    pub scanner_clicks: i64,
}

/// Clicks on a newsletter's links, counted per link and hour and never per person. `clicks` are
/// people's; `scanner_clicks` came from link scanners and prefetchers and are left out of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Clicks {
    pub clicks: i64,
    pub scanner_clicks: i64,
    /// Every counted link, in its order in the newsletter, clicked or not.
    pub links: Vec<LinkClicks>,
    /// (clicks, scanner clicks) by hour, oldest first.
    pub hours: BTreeMap<NaiveDateTime, (i64, i64)>,
}

/// A newsletter's results.
#[derive(Debug)]
pub struct Results {
    pub newsletter: Newsletter,
    pub total: Counts,
    /// By the recipient's language (`unknown` once a person is gone).
    pub languages: BTreeMap<String, Counts>,
    /// By hour (when sent, or last due; when the action happened), oldest first.
    pub hours: BTreeMap<NaiveDateTime, Counts>,
    /// Messages not sent, by state and class of reason (`failed`, `550 5.1.1`), most first.
    pub reasons: Vec<(String, String, i64)>,
    /// Its clicks, when it counts them (`count_clicks`).
    pub clicks: Option<Clicks>,
    pub read_at: NaiveDateTime,
}

/// The results of a newsletter, read on `conn` (in one snapshot, for figures that add up).
pub fn summarize(
    conn: &mut db::AnyConnection,
    newsletter: Newsletter,
    now: NaiveDateTime,
) -> QueryResult<Results> {
    let id = newsletter.id.clone();
    let mut languages: BTreeMap<String, Counts> = BTreeMap::new();
    let mut hours: BTreeMap<NaiveDateTime, Counts> = BTreeMap::new();
    let mut reasons: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut tally = |language: &str, hour: NaiveDateTime, f: &dyn Fn(&mut Counts)| {
        f(languages.entry(language.to_owned()).or_default());
        f(hours.entry(hour).or_default());
    };
    for g in actions::live_groups(conn, id.as_str())? {
        let class = super::outcome_class(g.outcome.as_deref());
        let language = g
            .language
            .unwrap_or_else(|| db::delivery_results::UNKNOWN_LANGUAGE.to_owned());
        if g.state == "failed" || g.state == "skipped" {
            *reasons.entry((g.state.clone(), class.clone())).or_default() += g.recipients;
        }
        tally(&language, g.hour, &|c| {
            c.deliveries(&g.state, &class, g.recipients)
        });
    }
    for (language, state, reason, hour, n) in db::delivery_results::lines(conn, id.as_str())? {
        if state == "failed" || state == "skipped" {
            *reasons.entry((state.clone(), reason.clone())).or_default() += n;
        }
        tally(&language, hour, &|c| c.deliveries(&state, &reason, n));
    }
    for (language, action, hour, n) in actions::for_newsletter(conn, id.as_str())? {
        if let Some(action) = Action::parse(&action) {
            tally(&language, hour, &|c| c.action(action, n));
        }
    }
    let mut total = Counts::default();
    for counts in languages.values() {
        total.add(counts);
    }
    let mut reasons: Vec<(String, String, i64)> = reasons
        .into_iter()
        .map(|((state, reason), n)| (state, reason, n))
        .collect();
    reasons.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.cmp(b)));
    let clicks = if newsletter.count_clicks {
        Some(clicks_of(conn, &newsletter)?)
    } else {
        None
    };
    Ok(Results {
        newsletter,
        total,
        languages,
        hours,
        reasons,
        clicks,
        read_at: now,
    })
}

/// A newsletter's clicks: its counted links (read from its content, as the redirect reads them)
/// with their counts.
fn clicks_of(conn: &mut db::AnyConnection, n: &Newsletter) -> QueryResult<Clicks> {
    let urls = super::prepare::content_of(n)
        .map(|c| crate::clicks::links(&c))
        .unwrap_or_default();
    let mut out = Clicks {
        links: urls
            .into_iter()
            .enumerate()
            .map(|(place, url)| LinkClicks {
                place: place as i32,
                url,
                clicks: 0,
                scanner_clicks: 0,
            })
            .collect(),
        ..Clicks::default()
    };
    for row in crate::db::newsletter_clicks::for_newsletter(conn, n.id.as_str())? {
        out.clicks += row.clicks;
        out.scanner_clicks += row.scanner_clicks;
        let hour = out.hours.entry(row.hour).or_default();
        hour.0 += row.clicks;
        hour.1 += row.scanner_clicks;
        if let Some(link) = out.links.get_mut(row.link as usize) {
            link.clicks += row.clicks;
            link.scanner_clicks += row.scanner_clicks;
        }
    }
    Ok(out)
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
                "clicks": Shown::json(l.clicks, threshold),
                "scanner_clicks": Shown::json(l.scanner_clicks, threshold),
            })
        })
        .collect();
    let hours: Vec<Value> = c
        .hours
        .iter()
        .map(|(hour, (clicks, scanner))| {
            serde_json::json!({
                "hour": timestamp(*hour),
                "clicks": Shown::json(*clicks, threshold),
                "scanner_clicks": Shown::json(*scanner, threshold),
            })
        })
        .collect();
    serde_json::json!({
        "clicks": Shown::json(c.clicks, threshold),
        "scanner_clicks": Shown::json(c.scanner_clicks, threshold),
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
                m.extend(counts.shown(threshold));
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
                m.insert("count".into(), Shown::json(*n, threshold));
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
            total: r.total.shown(threshold),
            languages: r
                .languages
                .iter()
                .map(|(l, c)| (l.clone(), c.shown(threshold)))
                .collect(),
            hours,
            not_sent,
            read_at: timestamp(r.read_at),
        }
    }
}

/// The results as JSON: what the results API answers and the `newsletter.finished` webhook
/// carries.
pub fn summary_json(r: &Results, threshold: u32) -> Value {
    serde_json::to_value(ResultsView::new(r, threshold)).unwrap_or(Value::Null)
}

//! Newsletters on the wire: a draft with its content, the list's summary, the progress of a send,
//! a preview and the answer to a test send.
//! Its times are written as `views::offset_time` writes them.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::Value;

use super::{empty_object, offset_time, stored_json};
use crate::db::deliveries::Progress;
use crate::db::newsletters::Newsletter;
use crate::db::states::NewsletterState;

/// A newsletter with its content, and the progress of its send when the reader may see it.
#[derive(Serialize)]
pub struct NewsletterView<'a> {
    pub archived: bool,
    pub count_clicks: bool,
    pub created_at: String,
    pub filter: Option<Value>,
    pub finished_at: Option<String>,
    pub from: Option<&'a str>,
    pub html: &'a str,
    pub id: &'a str,
    pub pause_reason: Option<&'a str>,
    pub preheader: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressView>,
    pub reply_to: Option<&'a str>,
    pub segment_id: Option<&'a str>,
    pub send_at: Option<String>,
    pub started_at: Option<String>,
    pub status: &'a str,
    pub subject: &'a str,
    pub text: Option<&'a str>,
    pub updated_at: String,
    pub variants: Value,
}

impl<'a> NewsletterView<'a> {
    pub fn new(n: &'a Newsletter, progress: Option<ProgressView>) -> Self {
        Self {
            archived: n.archived,
            count_clicks: n.count_clicks,
            created_at: offset_time(n.created_at),
            filter: n
                .filter
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok()),
            finished_at: n.finished_at.map(offset_time),
            from: n.from_address.as_deref(),
            html: &n.html,
            id: &n.id,
            pause_reason: n.pause_reason.as_deref(),
            preheader: n.preheader.as_deref(),
            progress,
            reply_to: n.reply_to.as_deref(),
            segment_id: n.segment_id.as_deref(),
            send_at: n.send_at.map(offset_time),
            started_at: n.started_at.map(offset_time),
            status: n.status.as_str(),
            subject: &n.subject,
            text: n.text.as_deref(),
            updated_at: offset_time(n.updated_at),
            variants: stored_json(&n.variants, empty_object),
        }
    }
}

/// A newsletter as the list shows it: without its content.
#[derive(Serialize)]
pub struct NewsletterSummaryView<'a> {
    pub created_at: String,
    pub finished_at: Option<String>,
    pub id: &'a str,
    pub pause_reason: Option<&'a str>,
    pub segment_id: Option<&'a str>,
    pub send_at: Option<String>,
    pub started_at: Option<String>,
    pub status: &'a str,
    pub subject: &'a str,
    pub updated_at: String,
}

impl<'a> From<&'a Newsletter> for NewsletterSummaryView<'a> {
    fn from(n: &'a Newsletter) -> Self {
        Self {
            created_at: offset_time(n.created_at),
            finished_at: n.finished_at.map(offset_time),
            id: &n.id,
            pause_reason: n.pause_reason.as_deref(),
            segment_id: n.segment_id.as_deref(),
            send_at: n.send_at.map(offset_time),
            started_at: n.started_at.map(offset_time),
            status: n.status.as_str(),
            subject: &n.subject,
            updated_at: offset_time(n.updated_at),
        }
    }
}

/// A page of the newsletter list; the cursor of the next page is the last id of this one.
#[derive(Serialize)]
pub struct NewsletterPageView<'a> {
    pub data: Vec<NewsletterSummaryView<'a>>,
    pub next_cursor: Option<&'a str>,
}

/// The progress of a send: counts by state, the rate over the last 30 s, and the time left.
#[derive(Serialize)]
pub struct ProgressView {
    pub eta_seconds: Option<i64>,
    pub failed: i64,
    pub pending: i64,
    pub per_second: f64,
    pub sent: i64,
    pub skipped: i64,
    pub total: i64,
}

impl ProgressView {
    /// The progress `p` of `newsletter`'s send, read at `now`.
    pub fn new(p: &Progress, newsletter: &Newsletter, now: NaiveDateTime) -> Self {
        let window = newsletter
            .started_at
            .map(|s| (now - s).num_milliseconds().clamp(1, 30_000) as f64 / 1000.0)
            .unwrap_or(30.0);
        let per_second = if newsletter.status == NewsletterState::Sending {
            p.recent as f64 / window
        } else {
            0.0
        };
        let eta = (per_second > 0.0).then(|| (p.pending as f64 / per_second).ceil() as i64);
        Self {
            eta_seconds: eta,
            failed: p.failed,
            pending: p.pending,
            per_second: (per_second * 10.0).round() / 10.0,
            sent: p.sent,
            skipped: p.skipped,
            total: p.total,
        }
    }
}

/// The message one subscriber (or a sample person) would get.
#[derive(Serialize)]
pub struct PreviewView<'a> {
    pub from: &'a str,
    pub html: &'a str,
    pub language: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
}

/// How many test copies were queued.
#[derive(Serialize)]
pub struct QueuedTestsView {
    pub queued: usize,
}

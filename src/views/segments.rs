//! Segments on the wire: a saved filter (with the number of people it reaches, for callers who
//! may read contacts) and the preview of who a filter reaches.

use serde::Serialize;
use serde_json::Value;

use super::offset_time;
use crate::db::segments::Segment;
use crate::db::subscribers::Subscriber;

/// A saved segment. `count` is left out of the list and for callers who may not read contacts.
#[derive(Serialize)]
pub struct SegmentView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    pub created_at: String,
    pub filter: Value,
    pub id: &'a str,
    pub name: &'a str,
    pub updated_at: String,
}

impl<'a> SegmentView<'a> {
    pub fn new(segment: &'a Segment, count: Option<i64>) -> Self {
        Self {
            count,
            created_at: offset_time(segment.created_at),
            filter: serde_json::from_str(&segment.filter).unwrap_or(Value::Null),
            id: &segment.id,
            name: &segment.name,
            updated_at: offset_time(segment.updated_at),
        }
    }
}

/// How many confirmed subscribers a filter reaches, and a few of them.
#[derive(Serialize)]
pub struct SegmentPreviewView<'a> {
    pub count: i64,
    pub sample: Vec<SampleView<'a>>,
}

/// One person in a segment preview: who, and in which language they read.
#[derive(Serialize)]
pub struct SampleView<'a> {
    pub email: &'a str,
    pub id: &'a str,
    pub language: &'a str,
    pub name: Option<&'a str>,
}

impl<'a> From<&'a Subscriber> for SampleView<'a> {
    fn from(s: &'a Subscriber) -> Self {
        Self {
            email: &s.email,
            id: &s.id,
            language: &s.language,
            name: s.name.as_deref(),
        }
    }
}

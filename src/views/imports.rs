//! Imports on the wire: an import's progress and counts, with one page of its per-row report
//! when asked for, and the description of the uploaded file stored with it.

use serde::Serialize;
use serde_json::Value;

use super::time;
use crate::db::imports::{Import, ImportProblem};

/// The uploaded file as an import records it (stored as JSON with the import, shown as `file`).
#[derive(Serialize)]
pub struct FileView<'a> {
    pub bytes: i64,
    pub sha256: &'a str,
}

/// An import as staff and scripts follow it; `problems` and the keys beside it are one page of
/// the report, present only when the report was asked for.
#[derive(Serialize)]
pub struct ImportView<'a> {
    pub columns: Option<Vec<ColumnView>>,
    pub consent_note: Option<&'a str>,
    pub counts: CountsView,
    pub created_at: String,
    pub created_by: ActorView<'a>,
    pub error: Option<&'a str>,
    pub file: Value,
    pub finished_at: Option<String>,
    pub id: &'a str,
    pub interests: Option<Vec<String>>,
    pub language: Option<&'static str>,
    pub mode: &'a str,
    #[serde(flatten)]
    pub report: Option<ProblemPageView<'a>>,
    pub source: Option<&'a str>,
    pub started_at: Option<String>,
    pub status: &'a str,
}

impl<'a> ImportView<'a> {
    /// The import, with what its stored plan says (`imports::plan::Plan::summary_of`) and
    /// `report` as (one page of problems, how many in all, the page's offset).
    pub fn new(
        import: &'a Import,
        plan: Option<PlanSummary>,
        report: Option<(&'a [ImportProblem], i64, i64)>,
    ) -> Self {
        let counts = import.counts();
        let (actor_type, actor_id) = import
            .created_by
            .split_once(':')
            .unwrap_or((import.created_by.as_str(), ""));
        Self {
            columns: plan.as_ref().map(|p| {
                p.columns
                    .iter()
                    .map(|(column, field)| ColumnView {
                        column: column.clone(),
                        field: field.clone(),
                    })
                    .collect()
            }),
            consent_note: import.consent_note.as_deref(),
            counts: CountsView {
                created: counts.created,
                failed: counts.failed,
                processed: counts.processed(),
                rows: import.total_rows,
                skipped: counts.skipped,
                unchanged: counts.unchanged,
                updated: counts.updated,
            },
            created_at: time(import.created_at),
            created_by: ActorView {
                id: actor_id,
                actor_type,
            },
            error: import.error.as_deref(),
            file: serde_json::from_str(&import.file).unwrap_or(Value::Null),
            finished_at: import.finished_at.map(time),
            id: &import.id,
            interests: plan.as_ref().map(|p| p.interests.clone()),
            language: plan.as_ref().map(|p| p.language),
            mode: &import.mode,
            report: report.map(|(rows, total, offset)| {
                let next = offset + rows.len() as i64;
                ProblemPageView {
                    next_problems_offset: (next < total).then_some(next),
                    problems: rows.iter().map(Into::into).collect(),
                    problems_total: total,
                }
            }),
            source: import.source.as_deref(),
            started_at: import.started_at.map(time),
            status: import.status.as_str(),
        }
    }
}

/// What an import's plan says, as its view shows it.
pub struct PlanSummary {
    /// (the file's header, the field it fills)
    pub columns: Vec<(String, String)>,
    pub interests: Vec<String>,
    pub language: &'static str,
}

/// A column of the file and the field it fills.
#[derive(Serialize)]
pub struct ColumnView {
    pub column: String,
    pub field: String,
}

/// How the rows imported so far went, out of `rows` in the file.
#[derive(Serialize)]
pub struct CountsView {
    pub created: i64,
    pub failed: i64,
    pub processed: i64,
    pub rows: i64,
    pub skipped: i64,
    pub unchanged: i64,
    pub updated: i64,
}

/// Who started an import: `{"type": "staff" | "api_key", "id": ...}`.
#[derive(Serialize)]
pub struct ActorView<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub actor_type: &'a str,
}

/// One page of an import's report.
#[derive(Serialize)]
pub struct ProblemPageView<'a> {
    pub next_problems_offset: Option<i64>,
    pub problems: Vec<ProblemView<'a>>,
    pub problems_total: i64,
}

/// A row (or cell) the import skipped or failed, and why.
#[derive(Serialize)]
pub struct ProblemView<'a> {
    pub column: Option<&'a str>,
    pub line: i64,
    pub outcome: &'a str,
    pub problem: &'a str,
}

impl<'a> From<&'a ImportProblem> for ProblemView<'a> {
    fn from(p: &'a ImportProblem) -> Self {
        Self {
            column: p.column_name.as_deref(),
            line: p.line,
            outcome: &p.outcome,
            problem: &p.problem,
        }
    }
}

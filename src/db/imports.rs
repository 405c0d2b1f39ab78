//! The `imports`, `import_parts` and `import_problems` tables: an import, the not yet imported
//! parts of its file, and its per-row report.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ids::ImportId;
use super::schema::{confirmation_tokens, import_parts, import_problems, imports, subscribers};
use super::AnyConnection;

crate::text_enum! {
    /// Where an import stands: `running` once a part of its file is in and more remain.
    pub enum ImportStatus {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = imports, treat_none_as_default_value = false)]
pub struct Import {
    pub id: ImportId,
    pub status: ImportStatus,
    pub mode: String,
    pub source: Option<String>,
    pub consent_note: Option<String>,
    pub plan: String,
    pub file: String,
    pub total_rows: i64,
    pub parts: i64,
    pub next_part: i64,
    pub counts: String,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
}

impl Import {
    pub fn counts(&self) -> Counts {
        serde_json::from_str(&self.counts).unwrap_or_default()
    }
}

/// A run of whole records of the file, imported in one transaction.
#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = import_parts)]
pub struct ImportPart {
    pub import_id: ImportId,
    pub part: i64,
    pub first_line: i64,
    pub body: String,
    pub duplicates: String,
}

/// One entry of the per-row report.
#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = import_problems, treat_none_as_default_value = false)]
pub struct ImportProblem {
    pub import_id: ImportId,
    pub line: i64,
    pub seq: i32,
    pub column_name: Option<String>,
    pub outcome: String,
    pub problem: String,
}

/// How the rows imported so far went (stored as JSON with the import).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Counts {
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub skipped: i64,
    pub failed: i64,
}

impl Counts {
    pub fn processed(&self) -> i64 {
        self.created + self.updated + self.unchanged + self.skipped + self.failed
    }

    pub fn add(&mut self, other: &Counts) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }
}

/// Rows per INSERT statement: well inside both backends' limits on bound parameters.
const CHUNK: usize = 200;

/// Stores a new import and its file parts.
pub fn insert_import(
    conn: &mut AnyConnection,
    import: &Import,
    parts: &[ImportPart],
) -> QueryResult<()> {
    diesel::insert_into(imports::table)
        .values(import)
        .execute(conn)?;
    // Parts can be large: a few per statement.
    for chunk in parts.chunks(8) {
        crate::on_backend!(&mut *conn, |c| diesel::insert_into(import_parts::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

pub fn find_import(conn: &mut AnyConnection, id: &ImportId) -> QueryResult<Option<Import>> {
    imports::table
        .find(id)
        .select(Import::as_select())
        .first(conn)
        .optional()
}

/// Newest first; `before` is the id of the last import of the previous page (ids sort by time).
pub fn list_imports(
    conn: &mut AnyConnection,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Import>> {
    let mut query = imports::table
        .select(Import::as_select())
        .order(imports::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(imports::id.lt(before.to_owned()));
    }
    query.load(conn)
}

pub fn find_part(
    conn: &mut AnyConnection,
    import_id: &str,
    part: i64,
) -> QueryResult<Option<ImportPart>> {
    import_parts::table
        .find((import_id, part))
        .select(ImportPart::as_select())
        .first(conn)
        .optional()
}

/// Every part not yet imported, with its import's plan (JSON).
pub fn pending_parts(conn: &mut AnyConnection) -> QueryResult<Vec<(ImportPart, String)>> {
    import_parts::table
        .inner_join(imports::table)
        .select((ImportPart::as_select(), imports::plan))
        .load(conn)
}

/// Replaces a part's text (same records and lines, some of them blanked).
pub fn replace_part_body(
    conn: &mut AnyConnection,
    import_id: &str,
    part: i64,
    body: &str,
) -> QueryResult<usize> {
    diesel::update(import_parts::table.find((import_id, part)))
        .set(import_parts::body.eq(body))
        .execute(conn)
}

/// Deletes parts of the file: one once imported, or all (`None`) when the import ends.
pub fn delete_parts(
    conn: &mut AnyConnection,
    import_id: &str,
    part: Option<i64>,
) -> QueryResult<usize> {
    let of_import = import_parts::table.filter(import_parts::import_id.eq(import_id));
    match part {
        Some(part) => diesel::delete(of_import.filter(import_parts::part.eq(part))).execute(conn),
        None => diesel::delete(of_import).execute(conn),
    }
}

pub fn insert_problems(conn: &mut AnyConnection, problems: &[ImportProblem]) -> QueryResult<()> {
    for chunk in problems.chunks(CHUNK) {
        crate::on_backend!(&mut *conn, |c| diesel::insert_into(import_problems::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

pub fn count_problems(conn: &mut AnyConnection, import_id: &str) -> QueryResult<i64> {
    import_problems::table
        .filter(import_problems::import_id.eq(import_id))
        .count()
        .get_result(conn)
}

/// The report in file order, one page.
pub fn list_problems(
    conn: &mut AnyConnection,
    import_id: &str,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<ImportProblem>> {
    import_problems::table
        .filter(import_problems::import_id.eq(import_id))
        .order((import_problems::line.asc(), import_problems::seq.asc()))
        .offset(offset)
        .limit(limit)
        .select(ImportProblem::as_select())
        .load(conn)
}

/// Records that part `part` was imported, with the counts so far; finishes the import with the
/// last part. Returns false when the import is no longer at that part (another run got there
/// first), so a part is never counted twice.
pub fn record_part(
    conn: &mut AnyConnection,
    import_id: &str,
    part: i64,
    counts: &Counts,
    last: bool,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        imports::table
            .find(import_id)
            .filter(imports::started_at.is_null()),
    )
    .set(imports::started_at.eq(Some(now)))
    .execute(conn)?;
    let target = imports::table
        .find(import_id)
        .filter(imports::next_part.eq(part))
        .filter(imports::status.eq_any([ImportStatus::Queued, ImportStatus::Running]));
    diesel::update(target)
        .set((
            imports::status.eq(if last {
                ImportStatus::Done
            } else {
                ImportStatus::Running
            }),
            imports::next_part.eq(part + 1),
            imports::counts.eq(serde_json::to_string(counts).unwrap_or_default()),
            imports::finished_at.eq(last.then_some(now)),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Ends an import that cannot go on; its remaining parts (personal data) go with it.
pub fn fail_import(
    conn: &mut AnyConnection,
    import_id: &str,
    error: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    end_import(conn, import_id, ImportStatus::Failed, Some(error), now)
}

/// Stops an import that has not finished: the rows not imported yet are left out.
pub fn cancel_import(
    conn: &mut AnyConnection,
    import_id: &ImportId,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    end_import(conn, import_id, ImportStatus::Cancelled, None, now)
}

fn end_import(
    conn: &mut AnyConnection,
    import_id: &str,
    status: ImportStatus,
    error: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let changed = diesel::update(
        imports::table
            .find(import_id)
            .filter(imports::status.eq_any([ImportStatus::Queued, ImportStatus::Running])),
    )
    .set((
        imports::status.eq(status),
        imports::error.eq(error),
        imports::finished_at.eq(Some(now)),
    ))
    .execute(conn)?;
    delete_parts(conn, import_id, None)?;
    Ok(changed == 1)
}

/// What an import needs to know about an existing person (read by
/// `subscribers::find_known_people`, the one loader of addresses already on the list).
pub use super::subscribers::KnownPerson as Person;

/// Those of `subscriber_ids` holding a confirmation link that still works.
pub fn with_open_confirmation(
    conn: &mut AnyConnection,
    subscriber_ids: &[&str],
    now: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    if subscriber_ids.is_empty() {
        return Ok(Vec::new());
    }
    confirmation_tokens::table
        .filter(confirmation_tokens::subscriber_id.eq_any(subscriber_ids))
        .filter(confirmation_tokens::used_at.is_null())
        .filter(confirmation_tokens::expires_at.gt(now))
        .select(confirmation_tokens::subscriber_id)
        .distinct()
        .load(conn)
}

/// Stamps the confirmation time of people an import created as confirmed.
pub fn stamp_confirmed(
    conn: &mut AnyConnection,
    subscriber_ids: &[&str],
    now: NaiveDateTime,
) -> QueryResult<()> {
    for chunk in subscriber_ids.chunks(CHUNK) {
        diesel::update(subscribers::table.filter(subscribers::id.eq_any(chunk)))
            .set(subscribers::confirmed_at.eq(Some(now)))
            .execute(conn)?;
    }
    Ok(())
}

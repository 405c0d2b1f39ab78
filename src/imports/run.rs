//! Importing one part of a file in one transaction: each row is read (`rows`), then decided
//! against what the database knows (suppressions, existing people) and written (`people`),
//! together with the report and the import's progress.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::NaiveDateTime;

use super::people::{Outcome, Writer};
use super::plan::{is_blank, reader, Field, Lines, Plan, Prepared};
use super::rows::{read_row, Problem};
use super::Mode;
use crate::db::batch::Inserts;
use crate::db::ids::ImportId;
use crate::db::imports::{self as store, Counts, Import, ImportPart, ImportProblem, Person};
use crate::db::{self, subscribers, AnyConnection};
use crate::domain::{FieldDeclaration, SubscriberStatus, SuppressionReason};
use crate::email::Templates;
use crate::signup::{PublicCatalog, SignupPolicy};
use crate::tokens;
use crate::webhooks::{self, EventType};

/// Why a part could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Pool(#[from] db::DbError),
    /// Another run recorded this part first; nothing of this run was kept.
    #[error("the import moved on meanwhile")]
    Moved,
    /// The stored import cannot be read: retrying will not help.
    #[error("{0}")]
    Broken(String),
}

/// What a run achieved.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A part was imported and more remain.
    More { mail_queued: bool },
    /// The last part was imported.
    Finished { mail_queued: bool },
    /// The import ended earlier (done or failed): nothing to do.
    Over,
    /// The import no longer exists.
    Gone,
}

/// Why an address is never imported, in the report's words.
fn suppressed_because(reason: SuppressionReason) -> &'static str {
    match reason {
        SuppressionReason::Erased => "this person's data was erased at their request: an import never adds them back (they can sign up again themselves)",
        SuppressionReason::Manual => "this address is on the suppression list: it is never imported",
        SuppressionReason::HardBounce | SuppressionReason::Complaint => {
            "this address bounced or complained and is suppressed: it is never imported"
        }
    }
}

/// Everything one part needs from outside the rows.
pub struct PartContext<'a> {
    pub templates: &'a Templates,
    pub policy: &'a SignupPolicy,
    pub now: NaiveDateTime,
}

/// Imports the next part of `import_id`, in one transaction with its report and progress.
pub fn next_part(
    conn: &mut AnyConnection,
    ctx: &PartContext,
    import_id: &str,
) -> Result<Step, RunError> {
    db::write_transaction(conn, |conn| {
        let Some(import) = ImportId::parse(import_id)
            .map(|id| store::find_import(conn, &id))
            .transpose()?
            .flatten()
        else {
            return Ok(Step::Gone);
        };
        if !matches!(
            import.status,
            store::ImportStatus::Queued | store::ImportStatus::Running
        ) {
            return Ok(Step::Over);
        }
        let Some(part) = store::find_part(conn, import_id, import.next_part)? else {
            return Err(RunError::Broken(format!(
                "part {} of the file is missing",
                import.next_part + 1
            )));
        };
        let last = import.next_part + 1 >= import.parts;
        let (added, problems, mail_queued) = import_rows(conn, ctx, &import, &part)?;
        store::insert_problems(conn, &problems)?;
        let mut counts = import.counts();
        counts.add(&added);
        if !store::record_part(conn, import_id, part.part, &counts, last, ctx.now)? {
            return Err(RunError::Moved);
        }
        // The file is personal data: each part goes once imported.
        store::delete_parts(conn, import_id, Some(part.part))?;
        if last {
            store::delete_parts(conn, import_id, None)?;
            Ok(Step::Finished { mail_queued })
        } else {
            Ok(Step::More { mail_queued })
        }
    })
}

/// One row as `read_prepared` sees it: its line, and the address it would import or the
/// problems that keep it out.
pub type ReadRow = (i64, Result<String, Vec<String>>);

/// Reads every row of a checked upload as the runs will, asking no database: each row's line,
/// and the address it would import or the problems that keep it out. Lets the reader be
/// exercised on its own (property tests, fuzzing).
pub fn read_prepared(
    prepared: &Prepared,
    catalog: &PublicCatalog,
    fields: &[FieldDeclaration],
) -> Result<Vec<ReadRow>, String> {
    let fields: HashMap<String, FieldDeclaration> =
        fields.iter().map(|f| (f.key.clone(), f.clone())).collect();
    let mut out = Vec::new();
    for part in &prepared.parts {
        let mut csv = reader(&part.body, prepared.plan.delimiter, false);
        let mut record = csv::StringRecord::new();
        let mut lines = Lines::new(&part.body);
        while csv.read_record(&mut record).map_err(|e| e.to_string())? {
            if is_blank(&record) {
                continue;
            }
            let byte = record.position().map(|p| p.byte()).unwrap_or(0);
            let line = part.first_line + lines.locate(byte).1 - 1;
            let outcome = read_row(&prepared.plan, catalog, &fields, &record, line)
                .map(|row| row.email.as_str().to_owned())
                .map_err(|problems| problems.into_iter().map(|p| p.text).collect());
            out.push((line, outcome));
        }
    }
    Ok(out)
}

/// Decides and writes every row of the part; returns the counts, the report entries and
/// whether mail was queued.
fn import_rows(
    conn: &mut AnyConnection,
    ctx: &PartContext,
    import: &Import,
    part: &ImportPart,
) -> Result<(Counts, Vec<ImportProblem>, bool), RunError> {
    let plan: Plan = serde_json::from_str(&import.plan)
        .map_err(|e| RunError::Broken(format!("the stored plan cannot be read: {e}")))?;
    let mode = Mode::parse(&import.mode)
        .ok_or_else(|| RunError::Broken(format!("unknown mode {}", import.mode)))?;
    let duplicates: HashMap<i64, i64> = serde_json::from_str::<Vec<(i64, i64)>>(&part.duplicates)
        .map_err(|e| RunError::Broken(format!("the stored part cannot be read: {e}")))?
        .into_iter()
        .collect();
    let catalog = PublicCatalog::load_for_staff(conn)?;
    let fields: HashMap<String, FieldDeclaration> =
        crate::db::interests::list_field_declarations(conn)?
            .into_iter()
            .map(|f| (f.key.clone(), f))
            .collect();
    let email_column = plan.column(&Field::Email);

    let mut counts = Counts::default();
    let mut report: Vec<(i64, Problem)> = Vec::new();
    let mut rows = Vec::new();
    let mut csv = reader(&part.body, plan.delimiter, false);
    let mut record = csv::StringRecord::new();
    let mut lines = Lines::new(&part.body);
    while csv
        .read_record(&mut record)
        .map_err(|e| RunError::Broken(format!("the stored file cannot be read: {e}")))?
    {
        if is_blank(&record) {
            continue;
        }
        let byte = record.position().map(|p| p.byte()).unwrap_or(0);
        let line = part.first_line + lines.locate(byte).1 - 1;
        if let Some(first) = duplicates.get(&line) {
            counts.skipped += 1;
            report.push((
                line,
                Problem::new(
                    email_column,
                    "skipped",
                    format!("repeats the address on line {first}: only the first line with an address is imported"),
                ),
            ));
            continue;
        }
        match read_row(&plan, &catalog, &fields, &record, line) {
            Ok(row) => rows.push(row),
            Err(problems) => {
                counts.failed += 1;
                report.extend(problems.into_iter().map(|p| (line, p)));
            }
        }
    }

    // What the database knows about these addresses, one query each.
    let suppressed = crate::signup::known_suppressions(conn, rows.iter().map(|r| &r.email))?;
    let emails: Vec<&str> = rows.iter().map(|r| r.email.as_str()).collect();
    let people: HashMap<String, Person> = crate::db::subscribers::find_known_people(conn, &emails)?
        .into_iter()
        .collect();
    let ids: Vec<&str> = people.values().map(|p| p.id.as_str()).collect();
    let mut held: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (id, interest) in subscribers::list_interests_of(conn, &ids)? {
        held.entry(id).or_default().insert(interest.slug);
    }
    let pending: Vec<&str> = people
        .values()
        .filter(|p| p.status == SubscriberStatus::Pending)
        .map(|p| p.id.as_str())
        .collect();
    let open: HashSet<String> = store::with_open_confirmation(conn, &pending, ctx.now)?
        .into_iter()
        .collect();

    let writer = Writer {
        ctx,
        import,
        mode,
        default_language: plan.language,
    };
    let mut inserts = Inserts::default();
    let mut confirmed_now: Vec<String> = Vec::new();
    let mut created: Vec<String> = Vec::new();
    let mut updated: Vec<String> = Vec::new();
    let mut confirmed_existing: Vec<String> = Vec::new();
    for row in &rows {
        let hash = tokens::email_hash(row.email.as_str());
        if let Some(reason) = suppressed.get(&hash) {
            counts.skipped += 1;
            report.push((
                row.line,
                Problem::new(email_column, "skipped", suppressed_because(*reason)),
            ));
            continue;
        }
        let outcome = match people.get(row.email.as_str()) {
            None => {
                let id = writer.create(&mut inserts, row);
                if mode == Mode::Consented {
                    confirmed_now.push(id.clone());
                }
                created.push(id);
                Outcome::Created
            }
            Some(person) => {
                let held = held.get(person.id.as_str()).cloned().unwrap_or_default();
                let outcome = writer.update(
                    conn,
                    &mut inserts,
                    row,
                    person,
                    &held,
                    open.contains(person.id.as_str()),
                )?;
                if matches!(outcome, Outcome::Updated | Outcome::Noted(true, _)) {
                    // Consent given elsewhere confirms a pending person: that is what an
                    // integration listening for confirmations needs to hear.
                    if mode == Mode::Consented && person.status == SubscriberStatus::Pending {
                        confirmed_existing.push(person.id.to_string());
                    } else {
                        updated.push(person.id.to_string());
                    }
                }
                outcome
            }
        };
        match outcome {
            Outcome::Created => counts.created += 1,
            Outcome::Updated => counts.updated += 1,
            Outcome::Unchanged => counts.unchanged += 1,
            Outcome::Skipped(why) => {
                counts.skipped += 1;
                report.push((row.line, Problem::new(email_column, "skipped", why)));
            }
            Outcome::Noted(changed, note) => {
                if changed {
                    counts.updated += 1;
                } else {
                    counts.unchanged += 1;
                }
                report.push((
                    row.line,
                    Problem::new(plan.column(&Field::Interests), "note", note),
                ));
            }
        }
    }
    let mail_queued = !inserts.jobs.is_empty();
    inserts.write(conn)?;
    let confirmed: Vec<&str> = confirmed_now.iter().map(String::as_str).collect();
    store::stamp_confirmed(conn, &confirmed, ctx.now)?;
    // Integrations hear of the import like of any other change, in the same transaction.
    let outbox = webhooks::Outbox::load(conn)?;
    let created: Vec<&str> = created.iter().map(String::as_str).collect();
    let updated: Vec<&str> = updated.iter().map(String::as_str).collect();
    outbox.emit_subscribers(conn, EventType::SubscriberCreated, &created, ctx.now)?;
    outbox.emit_subscribers(conn, EventType::SubscriberConfirmed, &confirmed, ctx.now)?;
    let confirmed_existing: Vec<&str> = confirmed_existing.iter().map(String::as_str).collect();
    outbox.emit_subscribers(
        conn,
        EventType::SubscriberConfirmed,
        &confirmed_existing,
        ctx.now,
    )?;
    outbox.emit_subscribers(conn, EventType::SubscriberUpdated, &updated, ctx.now)?;

    report.sort_by_key(|(line, _)| *line);
    let mut problems = Vec::with_capacity(report.len());
    let mut seq = 0;
    let mut previous = None;
    for (line, problem) in report {
        seq = if previous == Some(line) { seq + 1 } else { 0 };
        previous = Some(line);
        problems.push(ImportProblem {
            import_id: import.id.clone(),
            line,
            seq,
            column_name: problem.column,
            outcome: problem.outcome.to_owned(),
            problem: problem.text,
        });
    }
    Ok((counts, problems, mail_queued))
}

/// Erasure's part in imports still running: in every part not yet imported, the records whose
/// address is `email` are blanked (each character but its line breaks removed), so that the
/// file's copy of the person goes with the rest of their data. Blank records are passed over
/// when the part is imported, and every other record keeps its line. Returns how many records
/// were blanked. Call in the erasure's transaction. (A part that cannot be read is never
/// imported either: its import fails and deletes it.)
pub fn forget_address(
    conn: &mut AnyConnection,
    email: &str,
) -> Result<usize, diesel::result::Error> {
    let mut blanked = 0;
    for (part, plan) in store::pending_parts(conn)? {
        let Ok(plan) = serde_json::from_str::<Plan>(&plan) else {
            continue;
        };
        let Some(column) = plan.column(&Field::Email).map(|c| c.index) else {
            continue;
        };
        let spans = records_with_address(&part.body, plan.delimiter, column, email);
        if spans.is_empty() {
            continue;
        }
        let mut body = String::with_capacity(part.body.len());
        let mut from = 0;
        for (start, end) in &spans {
            body.push_str(&part.body[from..*start]);
            body.extend(part.body[*start..*end].chars().filter(|&c| c == '\n'));
            from = *end;
        }
        body.push_str(&part.body[from..]);
        store::replace_part_body(conn, &part.import_id, part.part, &body)?;
        blanked += spans.len();
    }
    Ok(blanked)
}

/// Where the records of `body` whose address (in `column`) is `email` start and end (as far as
/// the text can be read).
fn records_with_address(
    body: &str,
    delimiter: u8,
    column: usize,
    email: &str,
) -> Vec<(usize, usize)> {
    let mut csv = reader(body, delimiter, false);
    let mut lines = Lines::new(body);
    let mut record = csv::StringRecord::new();
    let mut starts = Vec::new();
    while csv.read_record(&mut record).unwrap_or(false) {
        let byte = record.position().map(|p| p.byte()).unwrap_or(0);
        let (start, _) = lines.locate(byte);
        let matches = record
            .get(column)
            .and_then(|cell| crate::domain::Email::parse(cell).ok())
            .is_some_and(|address| address.as_str() == email);
        starts.push((start, matches));
    }
    let mut spans = Vec::new();
    for (i, (start, matches)) in starts.iter().enumerate() {
        if *matches {
            let end = starts.get(i + 1).map_or(body.len(), |(next, _)| *next);
            spans.push((*start, end));
        }
    }
    spans
}

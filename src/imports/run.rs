//! Importing one part of a file in one transaction: each row is read with the staff API's own
//! checks, then decided against what the database knows (suppressions, existing people), and
//! the result written together with the report and the import's progress.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::plan::{is_blank, reader, Column, Field, Plan};
use super::Mode;
use crate::db::batch::{Inserts, InterestRow, SubscriberRow, TokenRow};
use crate::db::consent::ConsentEvent;
use crate::db::imports::{self as store, Counts, Import, ImportPart, ImportProblem, Person};
use crate::db::{self, confirmations, subscribers, suppressions, AnyConnection};
use crate::domain::{
    Email, FieldDeclaration, FieldType, InterestSlug, Language, Name, SubscriberStatus,
    SuppressionReason,
};
use crate::email::Templates;
use crate::jobs::{self, MailKind};
use crate::signup::{throttled, PublicCatalog, Signup, SignupPolicy};
use crate::tokens;

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

/// A row that passed every check.
struct Row {
    line: i64,
    email: Email,
    name: Option<Name>,
    language: Option<Language>,
    /// The row's own and the import's, without repeats.
    interests: Vec<InterestSlug>,
    attributes: Map<String, Value>,
}

/// One entry of the report, before it gets its place.
struct Problem {
    column: Option<String>,
    outcome: &'static str,
    text: String,
}

impl Problem {
    fn new(column: Option<&Column>, outcome: &'static str, text: impl Into<String>) -> Self {
        Self {
            column: column.map(|c| c.header.clone()),
            outcome,
            text: text.into(),
        }
    }
}

/// A value read from a cell, typed as the field is declared so the declaration's own check
/// decides (a number column holding "abc" fails with the same words as the staff API).
fn cell_value(field: Option<&FieldDeclaration>, cell: &str) -> Value {
    match field.map(|f| f.field_type) {
        Some(FieldType::Number) => cell
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| {
                cell.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            })
            .unwrap_or_else(|| Value::String(cell.to_owned())),
        Some(FieldType::Boolean) => match cell.to_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "sí" | "si" | "x" => Value::Bool(true),
            "false" | "no" | "n" | "0" => Value::Bool(false),
            _ => Value::String(cell.to_owned()),
        },
        _ => Value::String(cell.to_owned()),
    }
}

/// A language cell: `en`/`es`, a tag such as `es-MX`, or the language's name.
fn language_cell(cell: &str) -> Result<Language, &'static str> {
    Language::parse(cell)
        .ok()
        .or_else(|| Language::from_tag(cell.trim()))
        .or_else(|| match cell.trim().to_lowercase().as_str() {
            "english" | "inglés" | "ingles" => Some(Language::En),
            "spanish" | "español" | "espanol" => Some(Language::Es),
            _ => None,
        })
        .ok_or("must be en or es")
}

/// Reads one record; every problem with it is reported, and a row with any is not imported.
fn read_row(
    plan: &Plan,
    catalog: &PublicCatalog,
    fields: &HashMap<String, FieldDeclaration>,
    record: &csv::StringRecord,
    line: i64,
) -> Result<Row, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut email = None;
    let mut name = None;
    let mut language = None;
    let mut interests = Vec::new();
    let mut attributes = Map::new();
    for column in &plan.columns {
        let cell = record.get(column.index).unwrap_or_default();
        let mut fail = |text: &str| problems.push(Problem::new(Some(column), "failed", text));
        match &column.field {
            Field::Email => match Email::parse(cell) {
                Ok(e) => email = Some(e),
                Err(e) => fail(e),
            },
            Field::Name => match Name::parse(cell) {
                Ok(n) => name = n,
                Err(e) => fail(e),
            },
            Field::Language if cell.trim().is_empty() => {}
            Field::Language => match language_cell(cell) {
                Ok(l) => language = Some(l),
                Err(e) => fail(e),
            },
            Field::Interests => {
                for raw in cell
                    .split([';', ','])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    match InterestSlug::parse(&raw.to_lowercase()) {
                        Ok(slug) if !interests.contains(&slug) => interests.push(slug),
                        Ok(_) => {}
                        Err(_) => fail(&format!("\"{raw}\" is not a valid interest")),
                    }
                }
            }
            Field::Attribute(key) if cell.trim().is_empty() => {
                let _ = key;
            }
            Field::Attribute(key) => {
                attributes.insert(key.clone(), cell_value(fields.get(key), cell.trim()));
            }
            Field::Ignore => {}
        }
    }
    for slug in plan
        .interests
        .iter()
        .filter_map(|s| InterestSlug::parse(s).ok())
    {
        if !interests.contains(&slug) {
            interests.push(slug);
        }
    }
    let Some(email) = email else {
        return Err(problems);
    };
    // The staff API's own check of interests and attributes.
    let probe = Signup {
        email: email.clone(),
        name: None,
        language: Language::En,
        interests: interests.clone(),
        source: None,
        attributes,
        evidence: Default::default(),
    };
    let attributes = match catalog.check(&probe) {
        Ok(checked) => checked,
        Err(errors) => {
            for (key, messages) in errors {
                let field = match key.strip_prefix("attributes.") {
                    Some(attribute) => Field::Attribute(attribute.to_owned()),
                    None => Field::Interests,
                };
                for message in messages {
                    problems.push(Problem::new(plan.column(&field), "failed", message));
                }
            }
            Map::new()
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Row {
        line,
        email,
        name,
        language,
        interests,
        attributes,
    })
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
        let Some(import) = store::find_import(conn, import_id)? else {
            return Ok(Step::Gone);
        };
        if ![store::QUEUED, store::RUNNING].contains(&import.status.as_str()) {
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
    while csv
        .read_record(&mut record)
        .map_err(|e| RunError::Broken(format!("the stored file cannot be read: {e}")))?
    {
        if is_blank(&record) {
            continue;
        }
        let relative = record.position().map(|p| p.line() as i64).unwrap_or(1);
        let line = part.first_line + relative - 1;
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
    let hashes: Vec<String> = rows
        .iter()
        .map(|r| tokens::email_hash(r.email.as_str()))
        .collect();
    let suppressed: HashMap<String, SuppressionReason> =
        suppressions::find_suppressions(conn, &hashes)?
            .into_iter()
            .filter_map(|(hash, reason)| Some((hash, SuppressionReason::parse(&reason)?)))
            .collect();
    let emails: Vec<&str> = rows.iter().map(|r| r.email.as_str()).collect();
    let people: HashMap<String, Person> = store::find_people(conn, &emails)?.into_iter().collect();
    let ids: Vec<&str> = people.values().map(|p| p.id.as_str()).collect();
    let mut held: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (id, interest) in subscribers::list_interests_of(conn, &ids)? {
        held.entry(id).or_default().insert(interest.slug);
    }
    let pending: Vec<&str> = people
        .values()
        .filter(|p| p.status == SubscriberStatus::Pending.as_str())
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
                    confirmed_now.push(id);
                }
                Outcome::Created
            }
            Some(person) => {
                let held = held.get(&person.id).cloned().unwrap_or_default();
                writer.update(
                    conn,
                    &mut inserts,
                    row,
                    person,
                    &held,
                    open.contains(&person.id),
                )?
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

enum Outcome {
    Created,
    Updated,
    Unchanged,
    Skipped(&'static str),
    /// Updated (or not), with a note for the report.
    Noted(bool, String),
}

/// Writes the decisions about rows: new people, filled-in profiles, consent evidence, mail.
struct Writer<'a> {
    ctx: &'a PartContext<'a>,
    import: &'a Import,
    mode: Mode,
    default_language: Language,
}

impl Writer<'_> {
    fn consent(
        &self,
        subscriber_id: &str,
        language: Language,
        interests: &BTreeSet<String>,
    ) -> ConsentEvent {
        let (action, wording, version, source) = match self.mode {
            Mode::Consented => (
                "staff_recorded",
                self.import.consent_note.clone().unwrap_or_default(),
                "staff-recorded".to_owned(),
                self.import.source.clone(),
            ),
            Mode::Confirm => (
                "signup",
                self.ctx.templates.text(language, "consent.signup"),
                self.ctx.templates.text(language, "consent_wording_version"),
                Some(
                    self.import
                        .source
                        .clone()
                        .unwrap_or_else(|| "import".into()),
                ),
            ),
        };
        ConsentEvent {
            id: db::new_id(),
            subscriber_id: subscriber_id.to_owned(),
            action: action.into(),
            interests: serde_json::to_string(interests).unwrap_or_else(|_| "[]".into()),
            wording,
            wording_version: version,
            language: language.as_str().into(),
            source,
            ip: None,
            user_agent: Some(format!(
                "import:{} ({})",
                self.import.id, self.import.created_by
            )),
            created_at: self.ctx.now,
        }
    }

    /// A confirmation link and the mail carrying it, through the outbox as signups do.
    fn confirmation(&self, inserts: &mut Inserts, subscriber_id: &str) {
        let token = tokens::random_token();
        inserts.tokens.push(TokenRow {
            token_hash: tokens::hash_token(&token),
            subscriber_id: subscriber_id.to_owned(),
            created_at: self.ctx.now,
            expires_at: self.ctx.now + self.ctx.policy.confirm_ttl,
        });
        inserts.jobs.push(jobs::mail_job(
            subscriber_id,
            MailKind::Confirmation,
            Some(&token),
            self.ctx.now,
        ));
    }

    fn add_interests(&self, inserts: &mut Inserts, subscriber_id: &str, slugs: &[String]) {
        inserts
            .interests
            .extend(slugs.iter().map(|slug| InterestRow {
                subscriber_id: subscriber_id.to_owned(),
                interest_slug: slug.clone(),
                created_at: self.ctx.now,
            }));
    }

    /// A new person: confirmed with the given evidence, or pending with a confirmation mail.
    fn create(&self, inserts: &mut Inserts, row: &Row) -> String {
        let id = db::new_id();
        let language = row.language.unwrap_or(self.default_language);
        let status = match self.mode {
            Mode::Consented => SubscriberStatus::Confirmed,
            Mode::Confirm => SubscriberStatus::Pending,
        };
        inserts.subscribers.push(SubscriberRow {
            id: id.clone(),
            email: row.email.as_str().to_owned(),
            name: row.name.as_ref().map(|n| n.as_str().to_owned()),
            language: language.as_str(),
            status: status.as_str(),
            attributes: Value::Object(row.attributes.clone()).to_string(),
            source: Some(
                self.import
                    .source
                    .clone()
                    .unwrap_or_else(|| "import".into()),
            ),
            created_at: self.ctx.now,
            updated_at: self.ctx.now,
        });
        let slugs: Vec<String> = row
            .interests
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        self.add_interests(inserts, &id, &slugs);
        inserts
            .consents
            .push(self.consent(&id, language, &slugs.into_iter().collect()));
        if self.mode == Mode::Confirm {
            self.confirmation(inserts, &id);
        }
        id
    }

    /// An existing person. An import fills gaps (a missing name, attributes not yet set,
    /// interests not yet held) and never overwrites what is there; it never resubscribes.
    fn update(
        &self,
        conn: &mut AnyConnection,
        inserts: &mut Inserts,
        row: &Row,
        person: &Person,
        held: &BTreeSet<String>,
        open_confirmation: bool,
    ) -> Result<Outcome, RunError> {
        let status = SubscriberStatus::parse(&person.status);
        let (pending, confirmed) = match status {
            Some(SubscriberStatus::Pending) => (true, false),
            Some(SubscriberStatus::Confirmed) => (false, true),
            Some(SubscriberStatus::Unsubscribed) => {
                return Ok(Outcome::Skipped("this person unsubscribed: an import never subscribes them again (they can sign up again themselves)"))
            }
            _ => {
                return Ok(Outcome::Skipped(
                    "this address bounced or complained: it is not imported",
                ))
            }
        };
        let mut attributes: Map<String, Value> =
            serde_json::from_str(&person.attributes).unwrap_or_default();
        let mut attributes_changed = false;
        for (key, value) in &row.attributes {
            if !attributes.contains_key(key) {
                attributes.insert(key.clone(), value.clone());
                attributes_changed = true;
            }
        }
        let name = row.name.as_ref().filter(|_| person.name.is_none());
        let missing: Vec<String> = row
            .interests
            .iter()
            .map(|s| s.as_str().to_owned())
            .filter(|s| !held.contains(s))
            .collect();
        // Interests reveal opinions: a confirmed person gets more only with evidence of consent.
        let withheld = confirmed && self.mode == Mode::Confirm && !missing.is_empty();
        let adding: &[String] = if withheld { &[] } else { &missing };
        let mut changed = attributes_changed || name.is_some() || !adding.is_empty();
        let now = self.ctx.now;
        let language = Language::parse(&person.language).unwrap_or_default();
        let all: BTreeSet<String> = held.iter().cloned().chain(adding.iter().cloned()).collect();
        match (self.mode, pending) {
            // Evidence given elsewhere confirms a pending person.
            (Mode::Consented, true) => {
                let from = [SubscriberStatus::Pending.as_str()];
                subscribers::set_status(
                    conn,
                    &person.id,
                    &from,
                    SubscriberStatus::Confirmed.as_str(),
                    now,
                )?;
                confirmations::use_confirmation_tokens(conn, &person.id, now)?;
                inserts
                    .consents
                    .push(self.consent(&person.id, language, &all));
                changed = true;
            }
            (Mode::Consented, false) if !adding.is_empty() => {
                inserts
                    .consents
                    .push(self.consent(&person.id, language, &all));
            }
            (Mode::Confirm, true) if !open_confirmation && !throttled(conn, &person.id, now)? => {
                inserts
                    .consents
                    .push(self.consent(&person.id, language, &all));
                self.confirmation(inserts, &person.id);
                changed = true;
            }
            _ => {}
        }
        if attributes_changed || name.is_some() || !adding.is_empty() {
            let attributes = Value::Object(attributes).to_string();
            subscribers::update_profile(
                conn,
                &person.id,
                &subscribers::ProfileChanges {
                    name: name.map(|n| Some(n.as_str())),
                    language: None,
                    attributes: attributes_changed.then_some(attributes.as_str()),
                    source: None,
                    updated_at: now,
                },
            )?;
        }
        self.add_interests(inserts, &person.id, adding);
        if withheld {
            return Ok(Outcome::Noted(
                changed,
                format!(
                    "already subscribed: interests {} were not added, since this import asks for no consent (import with mode=consented and its evidence, or the person chooses on their preferences page)",
                    missing.join(", ")
                ),
            ));
        }
        Ok(if changed {
            Outcome::Updated
        } else {
            Outcome::Unchanged
        })
    }
}

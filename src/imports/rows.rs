//! Reading one record of a file as a row, with the same domain types and checks the staff API
//! uses; every problem is reported with its column.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::plan::{Column, Field, Plan};
use crate::domain::{Email, FieldDeclaration, FieldType, InterestSlug, Language, Name};
use crate::signup::{PublicCatalog, Signup};

/// A row that passed every check.
pub struct Row {
    pub line: i64,
    pub email: Email,
    pub name: Option<Name>,
    pub language: Option<Language>,
    /// The row's own and the import's, without repeats.
    pub interests: Vec<InterestSlug>,
    pub attributes: Map<String, Value>,
}

/// One entry of the report, before it gets its place.
pub struct Problem {
    pub column: Option<String>,
    pub outcome: &'static str,
    pub text: String,
}

impl Problem {
    pub fn new(column: Option<&Column>, outcome: &'static str, text: impl Into<String>) -> Self {
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
pub fn read_row(
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
                        // Quoted back only when it looks like a slug: a cell may hold anything,
                        // an address included, and the report never repeats those.
                        Err(_)
                            if raw.len() <= 64
                                && raw
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b" -_".contains(&b)) =>
                        {
                            fail(&format!("\"{raw}\" is not a valid interest"))
                        }
                        Err(_) => fail("holds a value that is not an interest slug"),
                    }
                }
            }
            Field::Attribute(_) if cell.trim().is_empty() => {}
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

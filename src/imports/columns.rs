//! Which column of a file feeds which field: headers matched by name (English or Spanish, any
//! case), custom field keys, and the caller's `map=<column>:<field>`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::plan::{Catalog, Options, Refusal};
use crate::error::FieldErrors;

/// Where a column's values go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Email,
    Name,
    Language,
    Interests,
    Attribute(String),
    Ignore,
}

impl Field {
    /// How the API names the field: `email`, `attributes.city`, `ignore`…
    pub fn label(&self) -> String {
        match self {
            Self::Email => "email".into(),
            Self::Name => "name".into(),
            Self::Language => "language".into(),
            Self::Interests => "interests".into(),
            Self::Attribute(key) => format!("attributes.{key}"),
            Self::Ignore => "ignore".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Column {
    pub index: usize,
    pub header: String,
    pub field: Field,
}

/// Column names and messages quoted back in an error, at most.
const MAX_SHOWN: usize = 10;

/// A header as quoted back in an error: trimmed, and cut at 60 characters.
fn shown(header: &str) -> String {
    let header = header.trim();
    match header.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &header[..at]),
        None => header.to_owned(),
    }
}

/// Header names (lower case, `_` and runs of spaces as one space) each built-in field answers to.
const ALIASES: &[(&str, Field)] = &[
    ("email", Field::Email),
    ("e-mail", Field::Email),
    ("email address", Field::Email),
    ("e-mail address", Field::Email),
    ("correo", Field::Email),
    ("correo electrónico", Field::Email),
    ("correo electronico", Field::Email),
    ("name", Field::Name),
    ("full name", Field::Name),
    ("nombre", Field::Name),
    ("nombre completo", Field::Name),
    ("language", Field::Language),
    ("lang", Field::Language),
    ("idioma", Field::Language),
    ("interests", Field::Interests),
    ("intereses", Field::Interests),
];

fn normalise(header: &str) -> String {
    header
        .trim()
        .to_lowercase()
        .replace('_', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The field a header names by itself, if any.
pub(super) fn field_for_header(header: &str, catalog: &Catalog) -> Option<Field> {
    let wanted = normalise(header);
    if let Some((_, field)) = ALIASES.iter().find(|(alias, _)| *alias == wanted) {
        return Some(field.clone());
    }
    let key = wanted.strip_prefix("attributes.").unwrap_or(&wanted);
    catalog
        .fields
        .iter()
        .find(|f| normalise(&f.key) == key)
        .map(|f| Field::Attribute(f.key.clone()))
}

/// The field a `map=` target names: a built-in field, `ignore`, or a declared custom field
/// (`attributes.KEY` or just `KEY`).
fn field_for_target(target: &str, catalog: &Catalog) -> Option<Field> {
    let target = target.trim().to_lowercase();
    Some(match target.as_str() {
        "email" => Field::Email,
        "name" => Field::Name,
        "language" => Field::Language,
        "interests" => Field::Interests,
        "ignore" => Field::Ignore,
        other => {
            let key = other.strip_prefix("attributes.").unwrap_or(other);
            let field = catalog.fields.iter().find(|f| f.key == key)?;
            Field::Attribute(field.key.clone())
        }
    })
}

/// Decides which column feeds which field; every column must be accounted for.
pub fn plan_columns(
    headers: &csv::StringRecord,
    options: &Options,
    catalog: &Catalog,
) -> Result<Vec<Column>, Refusal> {
    let mut errors = FieldErrors::new();
    let mut mapped: HashMap<usize, Field> = HashMap::new();
    for (name, target) in &options.map {
        let Some(field) = field_for_target(target, catalog) else {
            errors.add("map", format!(
                "\"{}\" is not a field: use email, name, language, interests, ignore or a declared custom field",
                shown(target)
            ));
            continue;
        };
        // The exact header first, then the same words in any case.
        let exact: Vec<usize> = (0..headers.len())
            .filter(|&i| headers[i].trim() == name.trim())
            .collect();
        let matches = if exact.is_empty() {
            (0..headers.len())
                .filter(|&i| normalise(&headers[i]) == normalise(name))
                .collect()
        } else {
            exact
        };
        if matches.is_empty() {
            errors.add(
                "map",
                format!("the file has no column named \"{}\"", shown(name)),
            );
        }
        for i in matches {
            mapped.insert(i, field.clone());
        }
    }
    let mut columns = Vec::with_capacity(headers.len());
    let mut unknown = Vec::new();
    for (index, header) in headers.iter().enumerate() {
        let field = match mapped.remove(&index) {
            Some(field) => field,
            None => match field_for_header(header, catalog) {
                Some(field) => field,
                None => {
                    unknown.push(format!("\"{}\"", shown(header)));
                    continue;
                }
            },
        };
        columns.push(Column {
            index,
            header: header.trim().to_owned(),
            field,
        });
    }
    if unknown.len() > MAX_SHOWN {
        let more = unknown.len() - MAX_SHOWN;
        unknown.truncate(MAX_SHOWN);
        unknown.push(format!("and {more} more"));
    }
    if !unknown.is_empty() {
        errors.add("columns", format!(
            "unknown column{} {}: name a column email, name, language, interests or a declared custom field, or map it (map=<column>:<field>, or map=<column>:ignore to leave it out)",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        ));
    }
    let mut seen: HashMap<String, &str> = HashMap::new();
    for column in columns.iter().filter(|c| c.field != Field::Ignore) {
        if let Some(first) = seen.insert(column.field.label(), &column.header) {
            errors.add(
                "columns",
                format!(
                    "columns \"{}\" and \"{}\" both hold {}: map one of them to ignore",
                    shown(first),
                    shown(&column.header),
                    column.field.label()
                ),
            );
        }
    }
    if !columns.iter().any(|c| c.field == Field::Email) {
        errors.add("columns", 
            "no column holds the e-mail address: call it email (or e-mail, email address), or map it with map=<column>:email",
        );
    }
    errors.truncate_each(MAX_SHOWN);
    if errors.is_empty() {
        Ok(columns)
    } else {
        Err(errors)
    }
}

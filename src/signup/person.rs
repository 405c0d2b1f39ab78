//! A person's record as every way onto the list writes it: the new subscriber row, the merge
//! of field values into what is held, and what the database already knows about a set of
//! addresses (their suppressions).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use crate::db::batch::SubscriberRow;
use crate::db::{suppressions, AnyConnection};
use crate::domain::{Email, Language, Name, SubscriberStatus, SuppressionReason};
use crate::tokens;

/// Someone new to the list, before they are written.
pub struct NewPerson<'a> {
    pub email: &'a Email,
    pub name: Option<&'a Name>,
    pub language: Language,
    pub status: SubscriberStatus,
    /// Field values, already checked against their declarations.
    pub attributes: Map<String, Value>,
    pub source: Option<String>,
}

impl NewPerson<'_> {
    /// The row that adds them, with a fresh id.
    pub fn row(self, id: String, now: NaiveDateTime) -> SubscriberRow {
        SubscriberRow {
            id,
            email: self.email.as_str().to_owned(),
            name: self.name.map(|n| n.as_str().to_owned()),
            language: self.language.as_str(),
            status: self.status.as_str(),
            attributes: Value::Object(self.attributes).to_string(),
            source: self.source,
            created_at: now,
            updated_at: now,
        }
    }
}

/// How new field values meet the ones held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Given values replace held ones; a null removes the field (staff, or the person confirming).
    Overwrite,
    /// Only fields not held yet are set (imports never overwrite).
    FillGaps,
}

/// Field values merged into the stored ones: the JSON text to keep in `subscribers.attributes`,
/// and whether it differs from what was held.
pub fn merge_attributes(stored: &str, given: &Map<String, Value>, how: Merge) -> (String, bool) {
    let mut attributes: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
    let before = attributes.clone();
    for (key, value) in given {
        match how {
            Merge::Overwrite if value.is_null() => {
                attributes.remove(key);
            }
            Merge::Overwrite => {
                attributes.insert(key.clone(), value.clone());
            }
            Merge::FillGaps if attributes.contains_key(key) => {}
            Merge::FillGaps => {
                attributes.insert(key.clone(), value.clone());
            }
        }
    }
    let changed = attributes != before;
    (Value::Object(attributes).to_string(), changed)
}

/// Suppressed addresses among `emails`, by address hash, read with one query.
pub fn known_suppressions<'a>(
    conn: &mut AnyConnection,
    emails: impl IntoIterator<Item = &'a Email>,
) -> diesel::QueryResult<HashMap<String, SuppressionReason>> {
    let hashes: Vec<String> = emails
        .into_iter()
        .map(|e| tokens::email_hash(e.as_str()))
        .collect();
    Ok(suppressions::find_suppressions(conn, &hashes)?
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{merge_attributes, Merge};

    fn given(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn overwriting_sets_and_removes() {
        let stored = r#"{"city":"Lima","plan":"free"}"#;
        let (merged, changed) = merge_attributes(
            stored,
            &given(json!({"plan": "pro", "city": null, "age": 3})),
            Merge::Overwrite,
        );
        assert_eq!(merged, r#"{"age":3,"plan":"pro"}"#);
        assert!(changed);
        let (same, changed) = merge_attributes(stored, &given(json!({})), Merge::Overwrite);
        assert_eq!(same, r#"{"city":"Lima","plan":"free"}"#);
        assert!(!changed);
    }

    #[test]
    fn filling_gaps_never_overwrites() {
        let stored = r#"{"city":"Lima"}"#;
        let (merged, changed) = merge_attributes(
            stored,
            &given(json!({"city": "Quito", "plan": "pro"})),
            Merge::FillGaps,
        );
        assert_eq!(merged, r#"{"city":"Lima","plan":"pro"}"#);
        assert!(changed);
        let (_, changed) =
            merge_attributes(stored, &given(json!({"city": "Quito"})), Merge::FillGaps);
        assert!(!changed);
    }
}

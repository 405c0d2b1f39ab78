//! The catalog on the wire: the interests staff offer (named and described in English and
//! Spanish) and the custom fields they declare.

use serde::Serialize;

use super::offset_time;
use crate::db::interests::{CustomField, Interest};

/// An interest as staff read it.
#[derive(Serialize)]
pub struct InterestView<'a> {
    pub created_at: String,
    pub description: BilingualView<'a>,
    pub name: BilingualView<'a>,
    pub public: bool,
    pub slug: &'a str,
    pub updated_at: String,
}

/// A text in each language the service writes: `{"en": ..., "es": ...}`.
#[derive(Serialize)]
pub struct BilingualView<'a> {
    pub en: &'a str,
    pub es: &'a str,
}

impl<'a> From<&'a Interest> for InterestView<'a> {
    fn from(i: &'a Interest) -> Self {
        Self {
            created_at: offset_time(i.created_at),
            description: BilingualView {
                en: &i.description_en,
                es: &i.description_es,
            },
            name: BilingualView {
                en: &i.name_en,
                es: &i.name_es,
            },
            public: i.public,
            slug: &i.slug,
            updated_at: offset_time(i.updated_at),
        }
    }
}

/// What deleting an interest did: `memberships_removed` only for a forced delete by a caller
/// who may read contacts.
#[derive(Serialize)]
pub struct DeletedInterestView {
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memberships_removed: Option<i64>,
}

/// A custom field as staff read it; `allowed_values` is `null` for a field that takes any value.
#[derive(Serialize)]
pub struct FieldView<'a> {
    pub allowed_values: Option<Vec<String>>,
    pub created_at: String,
    pub key: &'a str,
    pub public: bool,
    #[serde(rename = "type")]
    pub field_type: &'a str,
    pub updated_at: String,
}

impl<'a> From<&'a CustomField> for FieldView<'a> {
    fn from(f: &'a CustomField) -> Self {
        Self {
            allowed_values: f
                .allowed_values
                .as_deref()
                .and_then(|v| serde_json::from_str(v).ok()),
            created_at: offset_time(f.created_at),
            key: &f.key,
            public: f.public,
            field_type: &f.field_type,
            updated_at: offset_time(f.updated_at),
        }
    }
}

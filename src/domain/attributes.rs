//! Custom fields: what staff declare, and the check every write of an attribute goes through.

use chrono::NaiveDate;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Number,
    Date,
    Boolean,
    OneOf,
}

impl FieldType {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "text" => Self::Text,
            "number" => Self::Number,
            "date" => Self::Date,
            "boolean" => Self::Boolean,
            "one_of" => Self::OneOf,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Number => "number",
            Self::Date => "date",
            Self::Boolean => "boolean",
            Self::OneOf => "one_of",
        }
    }
}

/// One declared attribute.
#[derive(Clone, Debug)]
pub struct FieldDeclaration {
    pub key: String,
    pub field_type: FieldType,
    pub allowed_values: Vec<String>,
    /// Whether public signup forms may set it.
    pub public: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("is not a declared field")]
    Undeclared,
    #[error("must be {0}")]
    WrongType(&'static str),
    #[error("must be one of: {0}")]
    NotAllowed(String),
}

pub const MAX_TEXT_CHARS: usize = 500;

impl FieldDeclaration {
    /// Checks `value` against the declaration and returns the value to store.
    pub fn check(&self, value: &Value) -> Result<Value, AttributeError> {
        match (self.field_type, value) {
            (_, Value::Null) => Ok(Value::Null),
            (FieldType::Text, Value::String(s)) => {
                if s.chars().count() > MAX_TEXT_CHARS
                    || s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
                {
                    Err(AttributeError::WrongType("text of at most 500 characters"))
                } else {
                    Ok(Value::String(s.trim().to_owned()))
                }
            }
            (FieldType::Number, Value::Number(n)) if n.as_f64().is_some_and(f64::is_finite) => {
                Ok(value.clone())
            }
            (FieldType::Date, Value::String(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
                .map_err(|_| AttributeError::WrongType("a date like 2026-05-01")),
            (FieldType::Boolean, Value::Bool(_)) => Ok(value.clone()),
            (FieldType::OneOf, Value::String(s)) if self.allowed_values.iter().any(|a| a == s) => {
                Ok(value.clone())
            }
            (FieldType::OneOf, _) => {
                Err(AttributeError::NotAllowed(self.allowed_values.join(", ")))
            }
            (FieldType::Text, _) => Err(AttributeError::WrongType("text")),
            (FieldType::Number, _) => Err(AttributeError::WrongType("a number")),
            (FieldType::Date, _) => Err(AttributeError::WrongType("a date like 2026-05-01")),
            (FieldType::Boolean, _) => Err(AttributeError::WrongType("true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(field_type: FieldType) -> FieldDeclaration {
        FieldDeclaration {
            key: "k".into(),
            field_type,
            allowed_values: vec!["a".into(), "b".into()],
            public: true,
        }
    }

    #[test]
    fn typed_checks() {
        assert_eq!(field(FieldType::Number).check(&json!(3.5)), Ok(json!(3.5)));
        assert!(field(FieldType::Number).check(&json!("3")).is_err());
        assert_eq!(
            field(FieldType::Date).check(&json!("2026-02-03")),
            Ok(json!("2026-02-03"))
        );
        assert!(field(FieldType::Date).check(&json!("2026-02-30")).is_err());
        assert!(field(FieldType::Boolean).check(&json!("yes")).is_err());
        assert!(field(FieldType::OneOf).check(&json!("c")).is_err());
        assert_eq!(field(FieldType::OneOf).check(&json!("a")), Ok(json!("a")));
        assert!(field(FieldType::Text)
            .check(&json!("x".repeat(501)))
            .is_err());
    }
}

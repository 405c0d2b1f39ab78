//! The interests and fields a signup may name, and the check of what it gives for them.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::Signup;
use crate::db::interests::{list_field_declarations, list_public_interests, Interest};
use crate::db::AnyConnection;
use crate::domain::{AttributeError, FieldDeclaration, FieldErrors, InterestSlug};

/// Interests and fields a public form may use, read once per batch.
pub struct PublicCatalog {
    interests: HashMap<String, Interest>,
    fields: HashMap<String, FieldDeclaration>,
    /// Staff may use private interests and fields too.
    staff: bool,
}

impl PublicCatalog {
    /// Reads what `batch` refers to: interests only if some signup names one, fields only if
    /// some signup sets an attribute (most signups need neither query).
    pub fn load(conn: &mut AnyConnection, batch: &[Signup]) -> diesel::QueryResult<Self> {
        let interests = if batch.iter().any(|s| !s.interests.is_empty()) {
            list_public_interests(conn)?
                .into_iter()
                .map(|i| (i.slug.clone(), i))
                .collect()
        } else {
            HashMap::new()
        };
        let fields = if batch.iter().any(|s| !s.attributes.is_empty()) {
            list_field_declarations(conn)?
                .into_iter()
                .map(|f| (f.key.clone(), f))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(Self {
            interests,
            fields,
            staff: false,
        })
    }

    /// Every interest and field, public or not, for checking a staff write.
    pub fn load_for_staff(conn: &mut AnyConnection) -> diesel::QueryResult<Self> {
        let interests = crate::db::interests::list_interests(conn)?
            .into_iter()
            .map(|i| (i.slug.clone(), i))
            .collect();
        let fields = list_field_declarations(conn)?
            .into_iter()
            .map(|f| (f.key.clone(), f))
            .collect();
        Ok(Self {
            interests,
            fields,
            staff: true,
        })
    }

    /// Checks interests and attributes; returns the attributes to store.
    pub fn check(&self, signup: &Signup) -> Result<Map<String, Value>, FieldErrors> {
        self.check_fields(&signup.interests, &signup.attributes)
    }

    /// Checks interests and field values (the way `check` does for a signup).
    pub fn check_fields(
        &self,
        interests: &[InterestSlug],
        given: &Map<String, Value>,
    ) -> Result<Map<String, Value>, FieldErrors> {
        let mut errors = FieldErrors::new();
        for slug in interests {
            if !self.interests.contains_key(slug.as_str()) {
                errors.add("interests", format!("unknown interest: {}", slug.as_str()));
            }
        }
        let mut attributes = Map::new();
        for (key, value) in given {
            let checked = match self.fields.get(key) {
                None => Err(AttributeError::Undeclared),
                // Private fields are not revealed: they read as undeclared.
                Some(field) if !field.public && !self.staff => Err(AttributeError::Undeclared),
                Some(field) => field.check(value),
            };
            match checked {
                Ok(Value::Null) => {}
                Ok(v) => {
                    attributes.insert(key.clone(), v);
                }
                Err(e) => errors.add(format!("attributes.{key}"), e.to_string()),
            }
        }
        errors.into_result().map(|()| attributes)
    }
}

//! What is wrong with a request's fields: field name → the problems found with it, in the order
//! found. Every use case and every parser reports invalid input with this one type; the HTTP
//! layer answers it as a 422 problem with an `errors` member.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// One problem with one field.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// Records a problem with `field`; a field may have several.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    /// Every problem of `other`, with each field name prefixed by `prefix` (`"items[3]."`).
    pub fn merge_prefixed(&mut self, prefix: &str, other: FieldErrors) {
        for (field, messages) in other.0 {
            self.0
                .entry(format!("{prefix}{field}"))
                .or_default()
                .extend(messages);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains_key(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// Keeps at most `n` problems per field.
    pub fn truncate_each(&mut self, n: usize) {
        for messages in self.0.values_mut() {
            messages.truncate(n);
        }
    }

    /// `Ok(())` when nothing was found wrong, or these problems.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.0.iter()
    }

    pub fn into_inner(self) -> BTreeMap<String, Vec<String>> {
        self.0
    }
}

/// Problems of another check, field by field; a field already here takes the other's list
/// (as a map's `extend` does).
impl Extend<(String, Vec<String>)> for FieldErrors {
    fn extend<I: IntoIterator<Item = (String, Vec<String>)>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl FieldErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems with one field.
    pub fn get(&self, field: &str) -> Option<&Vec<String>> {
        self.0.get(field)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

impl IntoIterator for FieldErrors {
    type Item = (String, Vec<String>);
    type IntoIter = std::collections::btree_map::IntoIter<String, Vec<String>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<(String, Vec<String>)> for FieldErrors {
    fn from_iter<I: IntoIterator<Item = (String, Vec<String>)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a FieldErrors {
    type Item = (&'a String, &'a Vec<String>);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Vec<String>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The problems with `field`; panics when there are none, as a map does.
impl std::ops::Index<&str> for FieldErrors {
    type Output = Vec<String>;
    fn index(&self, field: &str) -> &Vec<String> {
        &self.0[field]
    }
}

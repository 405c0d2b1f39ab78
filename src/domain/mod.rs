//! The service's vocabulary, parsed once at the edge: nothing here knows HTTP or SQL.

mod attributes;
mod subscriber;

pub use attributes::{AttributeError, FieldDeclaration, FieldType};
pub use subscriber::{Email, InterestSlug, Language, Name, SubscriberStatus, SuppressionReason};

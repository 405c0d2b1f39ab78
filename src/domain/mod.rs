//! The service's vocabulary, parsed once at the edge: nothing here knows HTTP or SQL.

mod attributes;
mod email;
mod field_errors;
pub mod segment;
mod subscriber;

pub use attributes::{AttributeError, FieldDeclaration, FieldType};
pub use email::{canonical_domain, redact_addresses, Email};
pub use field_errors::FieldErrors;
pub use segment::{
    AttributeCondition, AttributeOp, AttributeValue, FilterErrors, Scalar, SegmentFilter, TimeRange,
};
pub use subscriber::{InterestSlug, Language, Name, Role, SubscriberStatus, SuppressionReason};

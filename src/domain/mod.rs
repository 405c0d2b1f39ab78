//! The service's vocabulary, parsed once at the edge: nothing here knows HTTP or SQL.

mod attributes;
pub mod segment;
mod subscriber;

pub use attributes::{AttributeError, FieldDeclaration, FieldType};
pub use segment::{
    AttributeCondition, AttributeOp, AttributeValue, FilterErrors, Scalar, SegmentFilter, TimeRange,
};
pub use subscriber::{Email, InterestSlug, Language, Name, SubscriberStatus, SuppressionReason};

//! The service layer: what staff, scripts, the public and the background workers can do, one
//! module per resource. Every entrance (the HTTP handlers, the staff console, the command line and
//! the job handlers) calls these use cases and nothing else to change the list, so a rule is
//! written once.
//!
//! Rules for a use case:
//! - it takes input already parsed into domain types (or a plain input struct it checks itself)
//!   and, where staff act, the acting `auth::Principal`;
//! - it does its work in one transaction (`Db::transaction`, or `read_snapshot` for reads) and
//!   wakes the worker concerned only after that transaction has committed;
//! - it returns an outcome and its own `thiserror` error enum; invalid input is
//!   `domain::FieldErrors`, and database failures are `DbError`;
//! - it knows nothing of HTTP: no actix-web, no `ApiError`, no status codes. The routes map each
//!   error enum to an answer (`impl From<…Error> for ApiError` beside the handlers);
//! - nothing here imports `routes` or `startup`.

pub mod archive;
pub mod catalog;
pub mod clicks;
pub mod consent;
pub mod dashboard;
pub mod exports;
pub mod imports;
pub mod newsletters;
pub mod retention;
pub mod segments;
pub mod staff;
pub mod subscribers;
pub mod webhooks;

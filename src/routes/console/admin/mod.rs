//! The admins' screens: staff accounts, API keys and the audit log. Every change goes through
//! `services::staff`, the same use cases as the JSON API.

pub mod audit;
pub mod keys;
pub mod staff;
pub mod webhooks;

use serde::Deserialize;

/// A page's notice after a change (`?notice=…`), worded under `console.admin.notices`.
#[derive(Deserialize)]
pub struct NoticeQuery {
    #[serde(default)]
    notice: Option<String>,
}

//! The admins' screens: staff accounts and invitations, API keys, webhooks and the audit log,
//! and the public page an invitation's link opens. Every change goes through `services::staff`
//! and `services::webhooks`, the same use cases as the JSON API.

pub mod audit;
pub mod invitation;
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

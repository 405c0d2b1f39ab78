//! The admins' screens: staff accounts and invitations, API keys, webhooks and the audit log,
//! and the public page an invitation's link opens. Every change goes through `services::staff`
//! and `services::webhooks`, the same use cases as the JSON API.

pub mod audit;
pub mod invitation;
pub mod keys;
pub mod staff;
pub mod webhooks;

pub use super::frame::NoticeQuery;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use minijinja::context;

use crate::routes::console::frame::Console;

/// A page's notice after a change (`?notice=…`), worded under `console.admin.notices`.
/// The second step before an action that cannot be undone: a page saying what it will do
/// (`console.admin.confirm_action.{what}`, about `name`), with a form that posts to `action`
/// again, confirmed, and a way `back`.
pub fn confirm_page(
    console: &Console,
    what: &str,
    name: &str,
    action: &str,
    back: &str,
) -> HttpResponse {
    console.page(
        StatusCode::OK,
        "admin/confirm_action",
        context! { what => what, name => name, action => action, back => back },
    )
}

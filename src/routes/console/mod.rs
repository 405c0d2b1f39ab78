//! The staff console: a web interface in English and Spanish for the people who run the list,
//! served under `ENLACE_CONSOLE_PATH` (`/admin`) by the same process as the API.
//!
//! Every screen is rendered on the server from the same auto-escaping templates as the public
//! pages and works without JavaScript; `assets/console.js` only adds to it. Every change goes
//! through the same use cases (`services::…`) as the JSON API, so a rule is never written twice.
//!
//! Security: a session cookie (HttpOnly, SameSite=Strict, Secure when the public URL is HTTPS,
//! for the console's path only) naming a server-side session with an idle and an absolute
//! lifetime; a CSRF token in every form; a Content-Security-Policy with no inline script or
//! style; no framing. Roles are the API's.

mod account;
mod admin;
pub mod assets;
mod catalog;
mod chart;
mod dashboard;
mod exports;
pub mod frame;
mod imports;
mod newsletters;
mod people;
mod results;
mod segments;
mod sign_in;

use actix_web::web;

use crate::auth::{Principal, Role};

/// Who may use a console route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the sign-in page, the stylesheet).
    Public,
    /// Any signed-in member.
    Viewer,
    /// Editors and admins.
    Editor,
    /// Admins.
    Admin,
}

impl Access {
    pub fn allows(self, role: Role) -> bool {
        match self {
            Self::Public | Self::Viewer => true,
            Self::Editor => role.rank() >= Role::Editor.rank(),
            Self::Admin => role == Role::Admin,
        }
    }
}

/// `"path" (middleware)? => { method => handler [Access] , … }`: registers the console's routes
/// below its path and lists them (with who may use each) for the test that walks them all.
macro_rules! console_routes {
    ($( $path:literal $(($wrap:expr))? => { $( $method:ident => $handler:path [$access:ident] ),+ $(,)? } ),* $(,)?) => {
        /// (method, path below the console's path, who may use it) of every console route.
        pub const ROUTES: &[(&str, &str, Access)] =
            &[ $( $( (stringify!($method), $path, Access::$access) ),+ ),* ];

        fn register(scope: actix_web::Scope) -> actix_web::Scope {
            scope $( .service(web::resource($path) $( .wrap($wrap) )? $( .route(web::$method().to($handler)) )+ ) )*
        }
    };
}

console_routes! {
    "" => { get => dashboard::page [Viewer] },
    "/" => { get => dashboard::page [Viewer] },
    "/sign-in" => { get => sign_in::page [Public], post => sign_in::submit [Public] },
    "/sign-out" => { post => sign_in::sign_out [Viewer] },
    "/account" => { get => account::page [Viewer] },
    "/account/preferences" => { post => account::preferences [Viewer] },
    "/account/password" => { post => account::password [Viewer] },
    "/static/{file}" => { get => assets::asset [Public] },
    // People
    "/people" => { get => people::list [Viewer] },
    "/people/new" => { get => people::new_page [Editor], post => people::add [Editor] },
    "/people/{id}" => { get => people::show [Viewer] },
    "/people/{id}/edit" => { get => people::edit_page [Editor], post => people::edit [Editor] },
    "/people/{id}/unsubscribe" => { post => people::unsubscribe [Editor] },
    "/people/{id}/erase" => { get => people::erase_page [Editor], post => people::erase [Editor] },
    "/people/{id}/data" => { get => people::data [Editor] },

    // Interests and custom fields
    "/interests" => { get => catalog::interests [Viewer], post => catalog::create_interest [Editor] },
    "/interests/{slug}" => { get => catalog::interest [Viewer], post => catalog::update_interest [Editor] },
    "/interests/{slug}/delete" => { post => catalog::delete_interest [Editor] },
    "/interests/{slug}/move" => { post => catalog::move_interest [Editor] },
    "/fields" => { get => catalog::fields [Viewer], post => catalog::create_field [Editor] },
    "/fields/{key}" => { get => catalog::field [Viewer], post => catalog::update_field [Editor] },
    "/fields/{key}/delete" => { post => catalog::delete_field [Editor] },
    "/fields/{key}/move" => { post => catalog::move_field [Editor] },

    // Imports
    "/imports" => { get => imports::list [Viewer] },
    "/imports/upload" => { post => imports::upload [Editor] },
    "/imports/new/{upload}" => { get => imports::new [Editor], post => imports::start [Editor] },
    "/imports/{id}" => { get => imports::show [Viewer] },
    "/imports/{id}/cancel" => { post => imports::cancel [Editor] },
    "/imports/{id}/report.csv" => { get => imports::download [Viewer] },

    // Newsletters
    "/newsletters" => { get => newsletters::list [Viewer], post => newsletters::create [Editor] },
    "/newsletters/new" => { get => newsletters::new_page [Editor] },
    "/newsletters/{id}" => { get => newsletters::show [Viewer] },
    "/newsletters/{id}/edit" => { get => newsletters::edit_page [Editor], post => newsletters::edit [Editor] },
    "/newsletters/{id}/autosave" => { post => newsletters::autosave [Editor] },
    "/newsletters/{id}/duplicate" => { post => newsletters::duplicate [Editor] },
    "/newsletters/{id}/delete" => { post => newsletters::delete [Editor] },
    "/newsletters/{id}/send-state" => { post => newsletters::transition [Editor] },
    "/newsletters/{id}/archived" => { post => newsletters::set_archived [Editor] },
    "/newsletters/{id}/send" => { get => newsletters::send_page [Editor], post => newsletters::send [Editor] },
    "/newsletters/{id}/test" => { post => newsletters::test [Editor] },
    "/newsletters/{id}/preview" => { get => newsletters::preview [Viewer] },
    "/newsletters/{id}/preview/frame" => { get => newsletters::preview_frame [Viewer] },
    "/newsletters/{id}/results" => { get => results::page [Viewer] },
    "/newsletters/{id}/results.csv" => { get => results::csv [Viewer] },

    // Segments
    "/segments" => { get => segments::list [Viewer], post => segments::create [Editor] },
    "/segments/new" => { get => segments::new_page [Editor] },
    "/segments/count" => { post => segments::count [Viewer] },
    "/segments/{id}" => { get => segments::show [Viewer], post => segments::update [Editor] },
    "/segments/{id}/delete" => { post => segments::delete [Editor] },

    // Exports
    "/exports" => { get => exports::page [Editor] },
    // gzip when the browser accepts it, as the API's export: the files are large and compress well.
    "/exports/download" (actix_web::middleware::Compress::default()) => { get => exports::download [Editor] },

    // Staff, API keys, webhooks, audit log
    "/staff" => { get => admin::staff::page [Admin], post => admin::staff::create [Admin] },
    "/staff/{id}/role" => { post => admin::staff::role [Admin] },
    "/staff/{id}/access" => { post => admin::staff::access [Admin] },
    "/staff/invitations" => { post => admin::staff::invite [Admin] },
    "/staff/invitations/{id}/resend" => { post => admin::staff::resend [Admin] },
    "/staff/invitations/{id}/withdraw" => { post => admin::staff::withdraw [Admin] },
    "/invitation/{token}" => { get => admin::invitation::page [Public], post => admin::invitation::accept [Public] },
    "/api-keys" => { get => admin::keys::page [Admin], post => admin::keys::create [Admin] },
    "/api-keys/{id}/revoke" => { post => admin::keys::revoke [Admin] },
    "/audit-log" => { get => admin::audit::page [Admin] },
    "/webhooks" => { get => admin::webhooks::page [Admin], post => admin::webhooks::create [Admin] },
    "/webhooks/{id}" => { get => admin::webhooks::show [Admin], post => admin::webhooks::update [Admin] },
    "/webhooks/{id}/enabled" => { post => admin::webhooks::switch [Admin] },
    "/webhooks/{id}/delete" => { post => admin::webhooks::delete [Admin] },
    "/webhooks/{id}/test" => { post => admin::webhooks::test [Admin] },
    "/webhooks/{id}/rotate" => { post => admin::webhooks::rotate [Admin] },
}

/// The console's areas in the navigation: (path, catalog key under `console.nav`, who sees it).
const NAV: &[(&str, &str, Access)] = &[
    ("/", "dashboard", Access::Viewer),
    // People
    ("/people", "people", Access::Viewer),
    // Newsletters
    ("/newsletters", "newsletters", Access::Viewer),
    ("/segments", "segments", Access::Viewer),
    // Interests and custom fields
    ("/interests", "interests", Access::Viewer),
    ("/fields", "fields", Access::Viewer),
    // Imports
    ("/imports", "imports", Access::Viewer),
    // Exports
    ("/exports", "exports", Access::Editor),
    // Staff, API keys, webhooks, audit log
    ("/staff", "staff", Access::Admin),
    ("/api-keys", "api_keys", Access::Admin),
    ("/webhooks", "webhooks", Access::Admin),
    ("/audit-log", "audit_log", Access::Admin),
];

/// The navigation a member sees, the area holding `here` (the path asked for) marked current.
pub fn nav(principal: &Principal, here: &str) -> Vec<minijinja::Value> {
    let role = match principal {
        Principal::Staff { role, .. } => *role,
        Principal::ApiKey { .. } => return Vec::new(),
    };
    let current = |path: &str| match path {
        "/" => here.is_empty() || here == "/",
        _ => here == path || here.starts_with(&format!("{path}/")),
    };
    NAV.iter()
        .filter(|(_, _, access)| access.allows(role))
        .map(|(path, key, _)| minijinja::context! { path => path, key => key, current => current(path) })
        .collect()
}

/// The console under `path` (`/admin`), with its own security headers. An address under it that
/// names no page gets the console's own "not found" page in the browser's language (or `?lang=`).
pub fn scope(path: &str) -> actix_web::Scope {
    register(web::scope(path)).default_service(web::to(not_found))
}

async fn not_found(
    req: actix_web::HttpRequest,
    state: web::Data<crate::state::AppState>,
) -> actix_web::HttpResponse {
    // The page's "other language" link adds ?lang=.
    let chosen = req
        .query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("lang="));
    let language = chosen
        .and_then(crate::domain::Language::from_tag)
        .unwrap_or_else(|| frame::browser_language(&req));
    frame::error_page(
        &state,
        language,
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
    )
}

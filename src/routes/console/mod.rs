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
pub mod assets;
mod dashboard;
pub mod frame;
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

/// `"path" => { method => handler [Access] , … }`: registers the console's routes below its
/// path and lists them (with who may use each) for the test that walks them all.
macro_rules! console_routes {
    ($( $path:literal => { $( $method:ident => $handler:path [$access:ident] ),+ $(,)? } ),* $(,)?) => {
        /// (method, path below the console's path, who may use it) of every console route.
        pub const ROUTES: &[(&str, &str, Access)] =
            &[ $( $( (stringify!($method), $path, Access::$access) ),+ ),* ];

        fn register(scope: actix_web::Scope) -> actix_web::Scope {
            scope $( .service(web::resource($path) $( .route(web::$method().to($handler)) )+ ) )*
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

    // Interests and custom fields

    // Imports

    // Exports

    // Staff, API keys, webhooks, audit log

}

/// The console's areas in the navigation: (path, catalog key under `console.nav`, who sees it).
const NAV: &[(&str, &str, Access)] = &[
    ("/", "dashboard", Access::Viewer),
    // People

    // Interests and custom fields

    // Imports

    // Exports

    // Staff, API keys, webhooks, audit log
];

/// The navigation a member sees.
pub fn nav(principal: &Principal) -> Vec<minijinja::Value> {
    let role = match principal {
        Principal::Staff { role, .. } => *role,
        Principal::ApiKey { .. } => return Vec::new(),
    };
    NAV.iter()
        .filter(|(_, _, access)| access.allows(role))
        .map(|(path, key, _)| minijinja::context! { path => path, key => key })
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

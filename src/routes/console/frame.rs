//! What every console page stands on: the signed-in member (from the session cookie), the check
//! of their role, the CSRF check of every form, and the page around each screen.
//!
//! - `Signed<P>` is extracted by pages: without a valid session the browser is sent to the
//!   sign-in page; a member whose role `P` refuses gets a 403 page.
//! - `Posted<P, T>` is extracted by every handler that changes something: the same, then the
//!   form's `csrf` field must equal the session's token (else 403, nothing changed), then the
//!   rest of the form is read as `T`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono_tz::Tz;
use minijinja::{context, Value};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::auth::sessions::{Current, SessionLimits};
use crate::auth::{Policy, Principal};
use crate::domain::{FieldErrors, Language};
use crate::routes::pages::Page;
use crate::services::staff as service;
use crate::state::AppState;

/// The cookie holding a console session's secret.
pub const SESSION_COOKIE: &str = "enlace_console";
/// The cookie holding the sign-in form's anti-forgery token (before there is a session).
pub const SIGN_IN_COOKIE: &str = "enlace_console_signin";
/// A form's anti-forgery field.
pub const CSRF_FIELD: &str = "csrf";
/// Forms larger than this are refused (uploads have their own limit).
const FORM_LIMIT: usize = 256 * 1024;

/// The console's own headers: scripts and styles only from Enlace itself, never in a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    frame-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Where the console lives: the public URL's path and the console's path (`/lista/admin`).
pub fn prefix(state: &AppState) -> String {
    format!(
        "{}{}",
        state.settings.public_url.path().trim_end_matches('/'),
        state.settings.console_path
    )
}

pub fn limits(state: &AppState) -> SessionLimits {
    SessionLimits {
        idle: chrono::Duration::minutes(i64::from(state.settings.console_idle_minutes)),
        absolute: chrono::Duration::hours(i64::from(state.settings.console_session_hours)),
    }
}

/// Cookies are sent only over HTTPS when the public URL is HTTPS.
fn secure(state: &AppState) -> bool {
    state.settings.public_url.scheme() == "https"
}

/// A console cookie: HttpOnly, SameSite=Strict, for the console's path only.
pub fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(prefix(state))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(state))
        .finish()
}

/// A cookie that removes `name`.
pub fn removal(state: &AppState, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(state, name, String::new());
    c.make_removal();
    c
}

/// The language of a page for someone not signed in: the browser's.
pub fn browser_language(req: &HttpRequest) -> Language {
    crate::routes::negotiate_language(req)
}

/// `?notice=…` on a page a change redirected to: which notice of its area to show.
#[derive(serde::Deserialize)]
pub struct NoticeQuery {
    #[serde(default)]
    pub notice: Option<String>,
}

/// A signed-in member's page context.
#[derive(Clone)]
pub struct Console {
    pub state: web::Data<AppState>,
    pub session: Current,
    pub principal: Principal,
    /// The client address, for the audit log.
    pub ip: Option<String>,
    pub language: Language,
    pub zone: Tz,
    /// The path asked for, below the console's path (`/people/…`), for the navigation.
    pub here: String,
}

impl Console {
    /// Renders `console/{name}.html` inside the console's frame.
    pub fn page(&self, status: StatusCode, name: &str, ctx: Value) -> HttpResponse {
        let member = &self.session.member;
        let full = context! {
            me => context! {
                id => member.id.as_str(),
                email => &member.email,
                role => member.role.as_str(),
            },
            csrf => &self.session.csrf_token,
            zone => self.zone.name(),
            nav => super::nav(&self.principal, &self.here),
            section => name.split('/').next().unwrap_or(name),
            ..ctx
        };
        render(&self.state, self.language, status, name, full)
    }

    /// A 303 to a console path (`/people`), with a notice key shown on arrival.
    pub fn redirect(&self, path: &str, notice: Option<&str>) -> HttpResponse {
        redirect(&self.state, path, notice)
    }

    /// Field errors in this member's language (the services word them in English).
    pub fn field_errors(&self, errors: &FieldErrors) -> Value {
        field_errors(&self.state, self.language, errors)
    }

    pub fn error(&self, status: StatusCode, message: &str) -> HttpResponse {
        error_page(&self.state, self.language, status, message)
    }

    /// The answer to an unexpected failure: logged, and a page that says so.
    pub fn internal(&self, e: impl std::fmt::Display) -> HttpResponse {
        tracing::error!(error = %e, "a console request failed");
        self.error(StatusCode::INTERNAL_SERVER_ERROR, "server")
    }
}

/// A 303 to a console path, with a notice key shown on arrival.
pub fn redirect(state: &AppState, path: &str, notice: Option<&str>) -> HttpResponse {
    let mut location = format!("{}{}", prefix(state), path);
    if let Some(notice) = notice {
        location.push(if location.contains('?') { '&' } else { '?' });
        location.push_str("notice=");
        location.push_str(notice);
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Renders a console template with what every console page has.
pub fn render(
    state: &AppState,
    language: Language,
    status: StatusCode,
    name: &str,
    ctx: Value,
) -> HttpResponse {
    let full = context! {
        console => prefix(state),
        assets => super::assets::version(),
        other_language => match language { Language::En => "es", Language::Es => "en" },
        ..ctx
    };
    let template = format!("console/{name}.html");
    let mut response = Page::render_template(state, language, status, &template, full);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// A console error page (`console.errors.{message}` and its title).
pub fn error_page(
    state: &AppState,
    language: Language,
    status: StatusCode,
    message: &str,
) -> HttpResponse {
    render(
        state,
        language,
        status,
        "error",
        context! { message => message, status => status.as_u16() },
    )
}

pub fn field_errors(state: &AppState, language: Language, errors: &FieldErrors) -> Value {
    let errors: std::collections::BTreeMap<String, Vec<String>> = errors
        .iter()
        .map(|(field, messages)| {
            let worded = messages
                .iter()
                .map(|m| state.templates.console_message(language, m))
                .collect();
            (field.clone(), worded)
        })
        .collect();
    Value::from_serialize(&errors)
}

/// The session the request's cookie names, if it is valid.
async fn current(req: &HttpRequest, state: &AppState) -> Result<Option<Current>, HttpResponse> {
    let Some(secret) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(None);
    };
    service::console_session(&state.db, secret, limits(state))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading a console session failed");
            error_page(
                state,
                browser_language(req),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            )
        })
}

/// Where someone without a session goes: the sign-in page, coming back here after (pages only).
fn to_sign_in(req: &HttpRequest, state: &AppState) -> HttpResponse {
    let back = (req.method() == actix_web::http::Method::GET)
        .then(|| req.uri().path_and_query().map(|p| p.as_str().to_owned()))
        .flatten()
        .and_then(|path| {
            // The path as routed (a proxy may have stripped the public URL's path).
            let console = &state.settings.console_path;
            let rest = path
                .find(console.as_str())
                .map(|i| path[i + console.len()..].to_owned())?;
            super::sign_in::safe_next(&rest).map(str::to_owned)
        });
    let mut response = redirect(state, "/sign-in", None);
    if let Some(back) = back {
        let location = format!(
            "{}/sign-in?next={}",
            prefix(state),
            url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
        );
        if let Ok(value) = header::HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
    }
    // A cookie that no longer names a session is dropped.
    if req.cookie(SESSION_COOKIE).is_some() {
        let _ = response.add_cookie(&removal(state, SESSION_COOKIE));
    }
    response
}

async fn console_for<P: Policy>(req: HttpRequest) -> Result<Console, actix_web::Error> {
    let fail = |response: HttpResponse| {
        actix_web::error::InternalError::from_response("console", response).into()
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(actix_web::error::ErrorInternalServerError("no state"));
    };
    let Some(session) = current(&req, &state).await.map_err(fail)? else {
        return Err(fail(to_sign_in(&req, &state)));
    };
    let member = &session.member;
    let language = member
        .language
        .as_deref()
        .and_then(|l| Language::parse(l).ok())
        .unwrap_or_else(|| browser_language(&req));
    let zone = member
        .time_zone
        .as_deref()
        .or(Some(state.settings.time_zone.as_str()))
        .and_then(|z| z.parse::<Tz>().ok())
        .unwrap_or(Tz::UTC);
    let principal = Principal::Staff {
        id: member.id.clone(),
        role: member.role,
    };
    if !principal.passes::<P>() {
        return Err(fail(error_page(
            &state,
            language,
            StatusCode::FORBIDDEN,
            "forbidden",
        )));
    }
    let ip =
        crate::client::client_ip(&req, &state.settings.trusted_proxies).map(|ip| ip.to_string());
    let console_path = state.settings.console_path.as_str();
    let here = req
        .path()
        .find(console_path)
        .map(|i| req.path()[i + console_path.len()..].to_owned())
        .unwrap_or_default();
    Ok(Console {
        here,
        state,
        session,
        principal,
        ip,
        language,
        zone,
    })
}

/// A console page for members whose role `P` allows.
pub struct Signed<P: Policy> {
    pub console: Console,
    policy: PhantomData<P>,
}

impl<P: Policy + 'static> FromRequest for Signed<P> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Ok(Self {
                console: console_for::<P>(req).await?,
                policy: PhantomData,
            })
        })
    }
}

/// A change made from a console form: a member whose role `P` allows, the form's CSRF token
/// checked, and the form read as `T`.
pub struct Posted<P: Policy, T> {
    pub console: Console,
    pub form: T,
    policy: PhantomData<P>,
}

#[derive(serde::Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// Whether `given` is the session's CSRF token (compared in constant time).
pub fn csrf_matches(session: &Current, given: &str) -> bool {
    !given.is_empty() && bool::from(given.as_bytes().ct_eq(session.csrf_token.as_bytes()))
}

impl<P: Policy + 'static, T: DeserializeOwned + 'static> FromRequest for Posted<P, T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let console = console_for::<P>(req.clone()).await?;
            let fail = |status: StatusCode, message: &str| -> actix_web::Error {
                actix_web::error::InternalError::from_response(
                    "console",
                    console.error(status, message),
                )
                .into()
            };
            let body = web::Bytes::from_request(&req, &mut payload)
                .await
                .map_err(|_| fail(StatusCode::PAYLOAD_TOO_LARGE, "form_too_large"))?;
            if body.len() > FORM_LIMIT {
                return Err(fail(StatusCode::PAYLOAD_TOO_LARGE, "form_too_large"));
            }
            let token = serde_html_form::from_bytes::<CsrfOnly>(&body)
                .map(|c| c.csrf)
                .unwrap_or_default();
            if !csrf_matches(&console.session, &token) {
                return Err(fail(StatusCode::FORBIDDEN, "csrf"));
            }
            let form = serde_html_form::from_bytes::<T>(&body)
                .map_err(|_| fail(StatusCode::BAD_REQUEST, "bad_form"))?;
            Ok(Self {
                console,
                form,
                policy: PhantomData,
            })
        })
    }
}

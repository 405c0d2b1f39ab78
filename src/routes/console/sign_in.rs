//! Signing in to and out of the console. The checks are the API's (`services::staff`): the same
//! password rules, the same attempt limits per client network and per account, and the same
//! answer for an unknown address, a wrong password and a disabled account.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::frame::{self, Posted, SESSION_COOKIE, SIGN_IN_COOKIE};
use crate::auth::AnyStaff;
use crate::domain::Language;
use crate::services::staff::{self as service, Gate, SignInError};
use crate::state::AppState;

/// A path inside the console to go back to after signing in (`/people?q=x`); anything else
/// (another site, a scheme, backslashes) is ignored, so the sign-in page redirects nowhere else.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 512
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && !next.starts_with("/sign-in")
        && !next.starts_with("/sign-out");
    ok.then_some(next)
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

fn language(req: &HttpRequest, chosen: Option<&str>) -> Language {
    chosen
        .and_then(|l| Language::parse(l).ok())
        .unwrap_or_else(|| frame::browser_language(req))
}

/// The sign-in form's anti-forgery token: the one the browser already holds, or a new one.
fn form_token(req: &HttpRequest) -> (String, bool) {
    match req.cookie(SIGN_IN_COOKIE) {
        Some(c) if crate::tokens::is_well_formed(c.value()) => (c.value().to_owned(), false),
        _ => (crate::tokens::random_token(), true),
    }
}

#[allow(clippy::too_many_arguments)]
fn form_page(
    state: &AppState,
    req: &HttpRequest,
    language: Language,
    status: StatusCode,
    next: Option<&str>,
    email: &str,
    failure: Option<&str>,
    notice: Option<&str>,
) -> HttpResponse {
    let (token, fresh) = form_token(req);
    let mut response = frame::render(
        state,
        language,
        status,
        "sign_in",
        context! {
            csrf => &token,
            next => next.and_then(safe_next),
            email => email,
            failure => failure,
            notice => notice,
            lang_choice => language.as_str(),
        },
    );
    if fresh {
        let _ = response.add_cookie(&frame::cookie(state, SIGN_IN_COOKIE, token));
    }
    response
}

pub async fn page(
    req: HttpRequest,
    query: web::Query<SignInQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let query = query.into_inner();
    let language = language(&req, query.lang.as_deref());
    form_page(
        &state,
        &req,
        language,
        StatusCode::OK,
        query.next.as_deref(),
        "",
        None,
        query.notice.as_deref(),
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Ok(form) = serde_html_form::from_bytes::<SignInForm>(&body) else {
        let language = frame::browser_language(&req);
        return frame::error_page(&state, language, StatusCode::BAD_REQUEST, "bad_form");
    };
    let language = language(&req, form.lang.as_deref());
    // Login forgery: the form must carry the token this browser was given with it.
    let expected = req.cookie(SIGN_IN_COOKIE).map(|c| c.value().to_owned());
    let genuine = expected.is_some_and(|expected| {
        !form.csrf.is_empty() && bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes()))
    });
    if !genuine {
        return form_page(
            &state,
            &req,
            language,
            StatusCode::FORBIDDEN,
            form.next.as_deref(),
            &form.email,
            Some("expired_form"),
            None,
        );
    }
    let origin = crate::client::client_network(&req, &state.settings)
        .map(|network| network.to_string())
        .unwrap_or_default();
    let gate = Gate {
        limiter: &state.login_limiter,
        password_slots: &state.password_slots,
        jwt: &state.jwt,
    };
    let email = form.email.clone();
    match service::start_console_session(
        &state.db,
        &gate,
        &origin,
        form.email,
        form.password,
        frame::limits(&state),
    )
    .await
    {
        Ok((started, _member)) => {
            // A session this browser held before is ended, not left to run out.
            if let Some(previous) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) {
                if let Err(e) = service::end_console_session(&state.db, previous).await {
                    tracing::warn!(error = %e, "ending the browser's previous console session failed");
                }
            }
            let target = form.next.as_deref().and_then(safe_next).unwrap_or("/");
            let mut response = frame::redirect(&state, target, None);
            let _ = response.add_cookie(&frame::cookie(&state, SESSION_COOKIE, started.secret));
            let _ = response.add_cookie(&frame::removal(&state, SIGN_IN_COOKIE));
            response
        }
        Err(SignInError::Refused) => form_page(
            &state,
            &req,
            language,
            StatusCode::UNAUTHORIZED,
            form.next.as_deref(),
            &email,
            Some("refused"),
            None,
        ),
        Err(SignInError::TooManyAttempts { retry_after_secs }) => {
            let mut response = form_page(
                &state,
                &req,
                language,
                StatusCode::TOO_MANY_REQUESTS,
                form.next.as_deref(),
                &email,
                Some("too_many"),
                None,
            );
            if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "console sign-in failed");
            frame::error_page(
                &state,
                language,
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            )
        }
    }
}

#[derive(Deserialize)]
pub struct Empty {}

/// Ends this browser's session.
pub async fn sign_out(
    req: HttpRequest,
    posted: Posted<AnyStaff, Empty>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(secret) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) {
        if let Err(e) = service::end_console_session(&state.db, secret).await {
            return posted.console.internal(e);
        }
    }
    let mut response = frame::redirect(&state, "/sign-in?notice=signed_out", None);
    let _ = response.add_cookie(&frame::removal(&state, SESSION_COOKIE));
    response
}

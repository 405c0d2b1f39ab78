//! The public page an invitation's link opens: the invitee chooses a password and is signed in.
//! Anyone can reach it, so it assumes hostile traffic: an unknown, expired, used or withdrawn
//! link gets one page, the same for each; every look counts against the client network's
//! attempts as signing in does; and the form carries its own anti-forgery token, as the sign-in
//! form does, so nobody can be signed in to an account from another site.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::{context, Value};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::domain::Language;
use crate::routes::console::frame::{self, SESSION_COOKIE, SIGN_IN_COOKIE};
use crate::services::staff::end_console_session;
use crate::services::staff::invitations::{self as service, InvitationLink, LinkError};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct LangQuery {
    #[serde(default)]
    lang: Option<String>,
}

/// The form's anti-forgery token: the one the browser already holds, or a new one.
fn form_token(req: &HttpRequest) -> (String, bool) {
    match req.cookie(SIGN_IN_COOKIE) {
        Some(c) if crate::tokens::is_well_formed(c.value()) => (c.value().to_owned(), false),
        _ => (crate::tokens::random_token(), true),
    }
}

fn origin(req: &HttpRequest, state: &AppState) -> String {
    crate::client::client_network(req, &state.settings)
        .map(|network| network.to_string())
        .unwrap_or_default()
}

/// The page's language: the one asked for, else the invitation's, else the browser's.
fn language(req: &HttpRequest, chosen: Option<&str>, link: Option<&InvitationLink>) -> Language {
    chosen
        .and_then(|l| Language::parse(l).ok())
        .or(link.map(|l| l.language))
        .unwrap_or_else(|| frame::browser_language(req))
}

/// The same page for every link that does not work, or when there were too many attempts.
fn refused(state: &AppState, language: Language, error: LinkError) -> HttpResponse {
    let (status, invalid) = match &error {
        LinkError::Invalid => (StatusCode::NOT_FOUND, "invalid"),
        LinkError::TooManyAttempts { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many"),
        _ => {
            tracing::error!(error = %error, "an invitation page failed");
            return frame::error_page(
                state,
                language,
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            );
        }
    };
    let mut response = frame::render(
        state,
        language,
        status,
        "admin/invitation",
        context! { invalid => invalid },
    );
    if let LinkError::TooManyAttempts { retry_after_secs } = error {
        if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

struct Form<'a> {
    link: &'a InvitationLink,
    token: &'a str,
    errors: Value,
    failure: Option<&'a str>,
}

fn form_page(
    state: &AppState,
    req: &HttpRequest,
    language: Language,
    status: StatusCode,
    form: Form<'_>,
) -> HttpResponse {
    let (csrf, fresh) = form_token(req);
    let mut response = frame::render(
        state,
        language,
        status,
        "admin/invitation",
        context! {
            invalid => false,
            csrf => &csrf,
            token => form.token,
            email => &form.link.email,
            role => form.link.role.as_str(),
            errors => form.errors,
            failure => form.failure,
            lang_choice => language.as_str(),
        },
    );
    if fresh {
        let _ = response.add_cookie(&frame::cookie(state, SIGN_IN_COOKIE, csrf));
    }
    response
}

pub async fn page(
    req: HttpRequest,
    token: web::Path<String>,
    query: web::Query<LangQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let token = token.into_inner();
    let chosen = query.lang.as_deref();
    let opened = service::open_link(
        &state.db,
        &state.login_limiter,
        &origin(&req, &state),
        token.clone(),
    )
    .await;
    match opened {
        Ok(link) => {
            let language = language(&req, chosen, Some(&link));
            let form = Form {
                link: &link,
                token: &token,
                errors: Value::from(()),
                failure: None,
            };
            form_page(&state, &req, language, StatusCode::OK, form)
        }
        Err(e) => refused(&state, language(&req, chosen, None), e),
    }
}

#[derive(Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
    #[serde(default)]
    lang: Option<String>,
}

pub async fn accept(
    req: HttpRequest,
    token: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let token = token.into_inner();
    let Ok(form) = serde_html_form::from_bytes::<AcceptForm>(&body) else {
        let language = frame::browser_language(&req);
        return frame::error_page(&state, language, StatusCode::BAD_REQUEST, "bad_form");
    };
    let origin = origin(&req, &state);
    let chosen = form.lang.as_deref();
    let expected = req.cookie(SIGN_IN_COOKIE).map(|c| c.value().to_owned());
    let genuine = expected.is_some_and(|expected| {
        !form.csrf.is_empty() && bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes()))
    });
    if !genuine {
        // Nothing is changed; the form comes back (only for a valid link) to be sent again.
        return match service::open_link(&state.db, &state.login_limiter, &origin, token.clone())
            .await
        {
            Ok(link) => {
                let language = language(&req, chosen, Some(&link));
                let form = Form {
                    link: &link,
                    token: &token,
                    errors: Value::from(()),
                    failure: Some("expired_form"),
                };
                form_page(&state, &req, language, StatusCode::FORBIDDEN, form)
            }
            Err(e) => refused(&state, language(&req, chosen, None), e),
        };
    }
    let ip =
        crate::client::client_ip(&req, &state.settings.trusted_proxies).map(|ip| ip.to_string());
    let accepted = service::accept(
        &state.db,
        &state.login_limiter,
        &origin,
        ip.as_deref(),
        token.clone(),
        service::ChosenPassword {
            password: form.password,
            repeated: form.password_again,
        },
        frame::limits(&state),
    )
    .await;
    match accepted {
        Ok((started, _member)) => {
            // A session this browser held before is ended, not left to run out.
            if let Some(previous) = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()) {
                if let Err(e) = end_console_session(&state.db, previous).await {
                    tracing::warn!(error = %e, "ending the browser's previous console session failed");
                }
            }
            let mut response = frame::redirect(&state, "/", None);
            let _ = response.add_cookie(&frame::cookie(&state, SESSION_COOKIE, started.secret));
            let _ = response.add_cookie(&frame::removal(&state, SIGN_IN_COOKIE));
            response
        }
        Err(LinkError::Password(errors, link)) => {
            let language = language(&req, chosen, Some(&link));
            let form = Form {
                link: &link,
                token: &token,
                errors: frame::field_errors(&state, language, &errors),
                failure: None,
            };
            form_page(
                &state,
                &req,
                language,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
            )
        }
        Err(e) => refused(&state, language(&req, chosen, None), e),
    }
}

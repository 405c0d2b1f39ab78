//! Unsubscribe and preferences pages behind the signed link in every mail.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::{check_rate_limit, evidence, negotiate_language, Page};
use crate::db::{self, interests, subscribers, DbError};
use crate::domain::{InterestSlug, Language, Name};
use crate::error::{ApiError, FieldErrors};
use crate::signup::manage::{self, PreferencesChange, PreferencesOutcome};
use crate::startup::AppState;

/// The subscriber id inside a genuine link.
fn verify(state: &AppState, token: &str) -> Option<String> {
    state.manage_tokens.verify(token).map(|id| id.to_string())
}

fn invalid_link(state: &AppState, req: &HttpRequest) -> HttpResponse {
    Page::render(
        state,
        negotiate_language(req),
        StatusCode::NOT_FOUND,
        "link_invalid",
        context! {},
    )
}

async fn subscriber_language(state: &AppState, req: &HttpRequest, id: &str) -> Language {
    let id = id.to_owned();
    let found = state
        .db
        .run(move |conn| subscribers::find_subscriber(conn, &id).map_err(DbError::from))
        .await
        .ok()
        .flatten();
    found
        .and_then(|s| Language::parse(&s.language).ok())
        .unwrap_or_else(|| negotiate_language(req))
}

fn urls(state: &AppState, token: &str) -> String {
    format!("{}/preferences/{token}", state.settings.base_url())
}

pub async fn unsubscribe_page(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(id) = verify(&state, &token) else {
        return invalid_link(&state, &req);
    };
    let language = subscriber_language(&state, &req, &id).await;
    Page::render(
        &state,
        language,
        StatusCode::OK,
        "unsubscribe",
        context! { token => token.as_str(), preferences_url => urls(&state, &token) },
    )
}

/// RFC 8058 one-click and the page's button alike: no cookie, no auth, no redirect, any body
/// (`List-Unsubscribe=One-Click` urlencoded or multipart). Mail providers send these from shared
/// addresses, so this POST is not rate limited per address; the signed token is the guard.
pub async fn unsubscribe(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(id) = verify(&state, &token) else {
        return invalid_link(&state, &req);
    };
    let templates = state.templates.clone();
    let evidence = evidence(&state, &req);
    let target = id.clone();
    let result = state
        .db
        .write(move |conn| {
            manage::unsubscribe(conn, &templates, &target, &evidence, db::now())
                .map_err(DbError::from)
        })
        .await;
    match result {
        Ok(changed) => {
            if changed {
                state.metrics.unsubscribe();
                tracing::info!(subscriber_id = %id, "unsubscribed");
            }
            let language = subscriber_language(&state, &req, &id).await;
            Page::render(
                &state,
                language,
                StatusCode::OK,
                "unsubscribed",
                context! { preferences_url => urls(&state, &token) },
            )
        }
        Err(e) => Page::error(&state, negotiate_language(&req), ApiError::from(e)),
    }
}

pub async fn preferences_page(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(id) = verify(&state, &token) else {
        return invalid_link(&state, &req);
    };
    render_preferences(&state, &req, &token, &id, false, FieldErrors::new()).await
}

async fn render_preferences(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    id: &str,
    saved: bool,
    errors: FieldErrors,
) -> HttpResponse {
    let lookup = id.to_owned();
    let loaded = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            let Some(subscriber) = subscribers::find_subscriber(conn, &lookup)? else {
                return Ok(None);
            };
            let mine = subscribers::list_subscriber_interests(conn, &lookup)?;
            let public = interests::list_public_interests(conn)?;
            Ok(Some((subscriber, mine, public)))
        })
        .await;
    let (subscriber, mine, public) = match loaded {
        Ok(Some(found)) => found,
        // Erased since the mail was sent: nothing is held any more.
        Ok(None) => return invalid_link(state, req),
        Err(e) => return Page::error(state, negotiate_language(req), ApiError::from(e)),
    };
    let language = Language::parse(&subscriber.language).unwrap_or_default();
    let mut shown = public;
    for interest in &mine {
        if !shown.iter().any(|i| i.slug == interest.slug) {
            shown.push(interest.clone());
        }
    }
    let interests: Vec<_> = shown
        .iter()
        .map(|i| {
            context! {
                slug => &i.slug,
                name => i.name(language),
                description => i.description(language),
                checked => mine.iter().any(|m| m.slug == i.slug),
            }
        })
        .collect();
    let errors: Vec<_> = errors
        .iter()
        .map(|(field, messages)| context! { field => field, messages => messages })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Page::render(
        state,
        language,
        status,
        "preferences",
        context! {
            token => token,
            name => subscriber.name.unwrap_or_default(),
            language => language.as_str(),
            status => subscriber.status,
            saved => saved,
            errors => errors,
            interests => interests,
        },
    )
}

#[derive(Deserialize)]
pub struct PreferencesForm {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    interests: Vec<String>,
}

pub async fn update_preferences(
    req: HttpRequest,
    token: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(id) = verify(&state, &token) else {
        return invalid_link(&state, &req);
    };
    if let Err(e) = check_rate_limit(&state, &req) {
        return Page::error(&state, negotiate_language(&req), e);
    }
    let form: PreferencesForm = match serde_html_form::from_bytes::<PreferencesForm>(&body) {
        Ok(form) if form.interests.len() <= 100 => form,
        _ => {
            return Page::error(
                &state,
                negotiate_language(&req),
                ApiError::field("form", "could not be read"),
            )
        }
    };
    if form.action.as_deref() == Some("unsubscribe") {
        return unsubscribe(req, token, state).await;
    }
    let mut errors = FieldErrors::new();
    let mut add =
        |field: &str, message: String| errors.entry(field.to_owned()).or_default().push(message);
    let name = Name::parse(form.name.as_deref().unwrap_or_default())
        .map_err(|e| add("name", e.into()))
        .ok()
        .flatten();
    let current = subscriber_language(&state, &req, &id).await;
    let language = match form.language.as_deref() {
        None | Some("") => current,
        Some(raw) => Language::parse(raw).unwrap_or_else(|e| {
            add("language", e.into());
            current
        }),
    };
    let mut interests = Vec::new();
    for raw in &form.interests {
        match InterestSlug::parse(raw) {
            Ok(slug) => interests.push(slug),
            Err(e) => add("interests", e.into()),
        }
    }
    if !errors.is_empty() {
        return render_preferences(&state, &req, &token, &id, false, errors).await;
    }
    let change = PreferencesChange {
        name,
        language,
        interests,
    };
    let templates = state.templates.clone();
    let evidence = evidence(&state, &req);
    let target = id.clone();
    let result = state
        .db
        .write(move |conn| {
            manage::update_preferences(conn, &templates, &target, &change, &evidence, db::now())
                .map_err(DbError::from)
        })
        .await;
    match result {
        Ok(PreferencesOutcome::Saved) => {
            render_preferences(&state, &req, &token, &id, true, FieldErrors::new()).await
        }
        Ok(PreferencesOutcome::UnknownInterest(slug)) => {
            let mut errors = FieldErrors::new();
            errors.insert(
                "interests".into(),
                vec![format!("unknown interest: {slug}")],
            );
            render_preferences(&state, &req, &token, &id, false, errors).await
        }
        Ok(PreferencesOutcome::NotFound) => invalid_link(&state, &req),
        Err(e) => Page::error(&state, negotiate_language(&req), ApiError::from(e)),
    }
}

//! Unsubscribe and preferences pages behind the signed link in every mail.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::{check_rate_limit, evidence, negotiate_language, Page};
use crate::db::ids::NewsletterId;
use crate::domain::{FieldErrors, InterestSlug, Language, Name};
use crate::error::ApiError;
use crate::services::consent::{self as service, PreferencesError};
use crate::signup::manage::PreferencesChange;
use crate::state::AppState;

/// `?from=` on a link in a newsletter: which newsletter it came from (the same for every
/// recipient), so what the person does through it is counted in that newsletter's results.
#[derive(Deserialize, Default)]
pub struct FromNewsletter {
    #[serde(default)]
    from: Option<String>,
}

impl FromNewsletter {
    fn newsletter(&self) -> Option<NewsletterId> {
        self.from.as_deref().and_then(NewsletterId::parse)
    }

    /// The query to keep on the page's own forms.
    fn query(&self) -> String {
        self.newsletter()
            .map(|id| format!("?from={}", id.as_str()))
            .unwrap_or_default()
    }
}

/// The subscriber id inside a genuine link.
fn verify(state: &AppState, token: &str) -> Option<String> {
    state.manage_tokens.verify(token).map(|id| id.to_string())
}

/// The page for a link that is not (or no longer) valid, in the reader's language.
pub(super) fn invalid_link(state: &AppState, req: &HttpRequest) -> HttpResponse {
    Page::render(
        state,
        negotiate_language(req),
        StatusCode::NOT_FOUND,
        "link_invalid",
        context! {},
    )
}

async fn subscriber_language(state: &AppState, req: &HttpRequest, id: &str) -> Language {
    let found = service::language_of(&state.db, id).await.ok().flatten();
    found.unwrap_or_else(|| negotiate_language(req))
}

fn urls(state: &AppState, token: &str) -> String {
    format!("{}/preferences/{token}", state.settings.base_url())
}

pub async fn unsubscribe_page(
    req: HttpRequest,
    token: web::Path<String>,
    from: web::Query<FromNewsletter>,
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
        context! {
            token => token.as_str(),
            from => from.query(),
            preferences_url => format!("{}{}", urls(&state, &token), from.query()),
        },
    )
}

/// RFC 8058 one-click and the page's button alike: no cookie, no auth, no redirect, any body
/// (`List-Unsubscribe=One-Click` urlencoded or multipart). Mail providers send these from shared
/// addresses, so this POST is not rate limited per address; the signed token is the guard.
pub async fn unsubscribe(
    req: HttpRequest,
    token: web::Path<String>,
    from: web::Query<FromNewsletter>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(id) = verify(&state, &token) else {
        return invalid_link(&state, &req);
    };
    let evidence = evidence(&state, &req);
    let newsletter = from.newsletter();
    match service::unsubscribe(&state.db, &state.templates, &id, evidence, newsletter).await {
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
    from: web::Query<FromNewsletter>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(id) = verify(&state, &token) else {
        return invalid_link(&state, &req);
    };
    let page = (token.as_str(), id.as_str(), from.query());
    render_preferences(&state, &req, page, false, FieldErrors::new()).await
}

/// The preferences page of `(token, subscriber id, ?from= query)`.
async fn render_preferences(
    state: &AppState,
    req: &HttpRequest,
    (token, id, from): (&str, &str, String),
    saved: bool,
    errors: FieldErrors,
) -> HttpResponse {
    let found = match service::preferences(&state.db, id).await {
        Ok(Some(found)) => found,
        // Erased since the mail was sent: nothing is held any more.
        Ok(None) => return invalid_link(state, req),
        Err(e) => return Page::error(state, negotiate_language(req), ApiError::from(e)),
    };
    let language = Language::parse(&found.subscriber.language).unwrap_or_default();
    let interests: Vec<_> = found
        .interests
        .iter()
        .map(|(i, held)| {
            context! {
                slug => &i.slug,
                name => i.name(language),
                description => i.description(language),
                checked => held,
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
    let page = context! {
        token => token,
        from => from,
        name => found.subscriber.name.unwrap_or_default(),
        language => language.as_str(),
        status => found.subscriber.status,
        saved => saved,
        errors => errors,
        interests => interests,
    };
    Page::render(state, language, status, "preferences", page)
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
    from: web::Query<FromNewsletter>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(id) = verify(&state, &token) else {
        return invalid_link(&state, &req);
    };
    if let Err(e) = check_rate_limit(&state, &req) {
        return Page::error(&state, negotiate_language(&req), e);
    }
    let form = match serde_html_form::from_bytes::<PreferencesForm>(&body) {
        Ok(form) if form.interests.len() <= 100 => form,
        _ => {
            let unreadable = ApiError::field("form", "could not be read");
            return Page::error(&state, negotiate_language(&req), unreadable);
        }
    };
    if form.action.as_deref() == Some("unsubscribe") {
        return unsubscribe(req, token, from, state).await;
    }
    let current = subscriber_language(&state, &req, &id).await;
    let page = (token.as_str(), id.as_str(), from.query());
    let change = match preferences_change(form, current) {
        Ok(change) => change,
        Err(errors) => return render_preferences(&state, &req, page, false, errors).await,
    };
    let evidence = evidence(&state, &req);
    let newsletter = from.newsletter();
    let saved = service::update_preferences(
        &state.db,
        &state.templates,
        &id,
        change,
        evidence,
        newsletter,
    )
    .await;
    match saved {
        Ok(()) => render_preferences(&state, &req, page, true, FieldErrors::new()).await,
        Err(PreferencesError::Invalid(errors)) => {
            render_preferences(&state, &req, page, false, errors).await
        }
        Err(PreferencesError::NotFound) => invalid_link(&state, &req),
        Err(PreferencesError::Db(e)) => Page::error(&state, negotiate_language(&req), e.into()),
    }
}

/// The preferences form, parsed; the language stays `current` when the form names none.
fn preferences_change(
    form: PreferencesForm,
    current: Language,
) -> Result<PreferencesChange, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = Name::parse(form.name.as_deref().unwrap_or_default())
        .map_err(|e| errors.add("name", e))
        .ok()
        .flatten();
    let language = match form.language.as_deref() {
        None | Some("") => current,
        Some(raw) => Language::parse(raw).unwrap_or_else(|e| {
            errors.add("language", e);
            current
        }),
    };
    let mut interests = Vec::new();
    for raw in &form.interests {
        match InterestSlug::parse(raw) {
            Ok(slug) => interests.push(slug),
            Err(e) => errors.add("interests", e),
        }
    }
    errors.into_result()?;
    Ok(PreferencesChange {
        name,
        language,
        interests,
    })
}

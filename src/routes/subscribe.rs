//! `POST /api/v1/subscribe`: JSON from scripts and websites, or a plain HTML form post.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use serde::Deserialize;
use serde_json::{Map, Value};
use validator::Validate;

use super::{check_rate_limit, evidence, media_type, negotiate_language, HandlerResult, Page};
use crate::domain::{Email, FieldErrors, InterestSlug, Language, Name};
use crate::error::ApiError;
use crate::services::consent as service;
use crate::signup::{Signup, SignupError};
use crate::state::AppState;

impl From<SignupError> for ApiError {
    fn from(e: SignupError) -> Self {
        match e {
            SignupError::Validation(errors) => Self::Validation(errors),
            SignupError::Store(e) => Self::Internal(e),
            SignupError::Unavailable => Self::Unavailable,
        }
    }
}

/// The JSON body. Unknown fields are refused so a typo (`"interest"`) is reported, not ignored.
#[derive(Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct SubscribeJson {
    email: String,
    #[serde(default, deserialize_with = "super::json::or_null")]
    name: Option<String>,
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 interests"))]
    interests: Vec<String>,
    #[serde(default, deserialize_with = "super::json::or_null")]
    language: Option<String>,
    #[serde(default, deserialize_with = "super::json::or_null")]
    #[validate(length(max = 200, message = "at most 200 characters"))]
    source: Option<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
    #[serde(default, deserialize_with = "super::json::or_null")]
    website: Option<String>,
}

/// The form body: repeated `interests` fields; other fields (a submit button's name) are ignored.
#[derive(Deserialize, Validate)]
pub struct SubscribeForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    #[validate(length(max = 50, message = "at most 50 interests"))]
    interests: Vec<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    #[validate(length(max = 200, message = "at most 200 characters"))]
    source: Option<String>,
    #[serde(default)]
    website: Option<String>,
    #[serde(default)]
    redirect_to: Option<String>,
}

/// Fields shared by both bodies, before parsing into a `Signup`.
struct RawSignup<'a> {
    email: &'a str,
    name: Option<&'a str>,
    interests: &'a [String],
    language: Language,
    source: Option<&'a str>,
    attributes: Map<String, Value>,
}

fn parse_signup(
    raw: RawSignup<'_>,
    mut errors: FieldErrors,
    req: &HttpRequest,
    state: &AppState,
) -> Result<Signup, ApiError> {
    let mut add = |field: &str, message: &str| errors.add(field, message);
    let email = Email::parse(raw.email).map_err(|e| add("email", e)).ok();
    let name = Name::parse(raw.name.unwrap_or_default())
        .map_err(|e| add("name", e))
        .ok()
        .flatten();
    let mut interests = Vec::new();
    for slug in raw.interests {
        match InterestSlug::parse(slug) {
            Ok(slug) if !interests.contains(&slug) => interests.push(slug),
            Ok(_) => {}
            Err(_) => add(
                "interests",
                &format!(
                    "unknown interest: {}",
                    slug.chars().take(64).collect::<String>()
                ),
            ),
        }
    }
    let source = raw.source.map(str::trim).filter(|s| !s.is_empty());
    if source.is_some_and(|s| s.chars().any(char::is_control)) {
        add("source", "contains control characters");
    }
    match email {
        Some(email) if errors.is_empty() => Ok(Signup {
            email,
            name,
            language: raw.language,
            interests,
            source: source.map(str::to_owned),
            attributes: raw.attributes,
            evidence: evidence(state, req),
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

fn validation_errors(result: Result<(), validator::ValidationErrors>) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if let Err(e) = result {
        for (field, list) in e.field_errors() {
            for error in list {
                let message = error.message.as_deref().unwrap_or("is invalid").to_owned();
                errors.add(field.to_string(), message);
            }
        }
    }
    errors
}

pub async fn subscribe(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HandlerResult {
    match media_type(&req).as_str() {
        "application/json" => subscribe_json(&req, &body, &state).await,
        "application/x-www-form-urlencoded" => Ok(subscribe_form(&req, &body, &state).await),
        _ => Err(ApiError::UnsupportedMediaType(
            "send application/json or application/x-www-form-urlencoded".into(),
        )),
    }
}

async fn subscribe_json(req: &HttpRequest, body: &[u8], state: &AppState) -> HandlerResult {
    check_rate_limit(state, req)?;
    let json: SubscribeJson = super::parse_json(body)?;
    // Bots that fill the hidden field get the normal answer, whatever else they sent.
    if json
        .website
        .as_deref()
        .is_some_and(|w| !w.trim().is_empty())
    {
        tracing::info!("honeypot field filled; signup ignored");
        return Ok(accepted());
    }
    let mut errors = validation_errors(json.validate());
    if json.attributes.len() > 50 {
        errors.add("attributes", "at most 50 attributes");
    }
    let language = match json.language.as_deref() {
        None => Language::En,
        Some(raw) => Language::parse(raw).unwrap_or_else(|e| {
            errors.add("language", e);
            Language::En
        }),
    };
    let raw = RawSignup {
        email: &json.email,
        name: json.name.as_deref(),
        interests: &json.interests,
        language,
        source: json.source.as_deref(),
        attributes: json.attributes,
    };
    let signup = parse_signup(raw, errors, req, state)?;
    service::subscribe(&state.signups, signup).await?;
    Ok(accepted())
}

fn accepted() -> HttpResponse {
    HttpResponse::Accepted().json(crate::views::StatusView { status: "pending" })
}

async fn subscribe_form(req: &HttpRequest, body: &[u8], state: &AppState) -> HttpResponse {
    let page_language = negotiate_language(req);
    if let Err(e) = check_rate_limit(state, req) {
        return Page::error(state, page_language, e);
    }
    let form: SubscribeForm = match serde_html_form::from_bytes(body) {
        Ok(form) => form,
        Err(e) => return Page::error(state, page_language, ApiError::field("form", e.to_string())),
    };
    let (language, parsed) = form_signup(&form, page_language, req, state);
    let result = match parsed {
        Ok(Some(signup)) => service::subscribe(&state.signups, signup)
            .await
            .map(drop)
            .map_err(ApiError::from),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => thanks(state, &form, language),
        Err(e) => Page::error(state, language, e),
    }
}

/// The form, parsed in the language it asks for (else the page's); `None` for a bot's.
fn form_signup(
    form: &SubscribeForm,
    page_language: Language,
    req: &HttpRequest,
    state: &AppState,
) -> (Language, Result<Option<Signup>, ApiError>) {
    let mut errors = validation_errors(form.validate());
    let language = match form.language.as_deref().filter(|l| !l.is_empty()) {
        None => page_language,
        Some(raw) => Language::parse(raw).unwrap_or_else(|e| {
            errors.add("language", e);
            page_language
        }),
    };
    let raw = RawSignup {
        email: &form.email,
        name: form.name.as_deref(),
        interests: &form.interests,
        language,
        source: form.source.as_deref(),
        attributes: Map::new(),
    };
    let honeypot = form
        .website
        .as_deref()
        .is_some_and(|w| !w.trim().is_empty());
    let parsed = parse_signup(raw, errors, req, state);
    // Bots that fill the hidden field get the normal answer, whatever else they sent.
    if honeypot {
        tracing::info!("honeypot field filled; signup ignored");
        return (language, Ok(None));
    }
    (language, parsed.map(Some))
}

/// After a form signup: the allow-listed page the form names, or the thank-you page.
fn thanks(state: &AppState, form: &SubscribeForm, language: Language) -> HttpResponse {
    match form
        .redirect_to
        .as_deref()
        .filter(|target| redirect_allowed(target, &state.settings.redirect_allowlist))
    {
        Some(target) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, target))
            .finish(),
        None => {
            let expires_days = state.settings.confirm_ttl_hours.div_ceil(24);
            Page::render(
                state,
                language,
                StatusCode::OK,
                "thanks",
                context! { expires_days => expires_days },
            )
        }
    }
}

/// A redirect target is honoured only when it starts with an allow-listed prefix at a path
/// boundary, so `https://example.org` does not admit `https://example.org.evil.net`.
pub fn redirect_allowed(target: &str, allowlist: &[String]) -> bool {
    let Ok(url) = url::Url::parse(target) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https")
        || target.chars().any(|c| c.is_control() || c == '\\')
    {
        return false;
    }
    allowlist.iter().filter(|p| !p.is_empty()).any(|prefix| {
        target.strip_prefix(prefix.as_str()).is_some_and(|rest| {
            prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#'])
        })
    })
}

#[cfg(test)]
mod tests {
    use super::redirect_allowed;

    #[test]
    fn redirects_only_to_allowed_prefixes() {
        let allow = vec![
            "https://example.org".to_owned(),
            "https://x.org/thanks/".to_owned(),
        ];
        assert!(redirect_allowed("https://example.org/gracias", &allow));
        assert!(redirect_allowed("https://example.org", &allow));
        assert!(redirect_allowed("https://x.org/thanks/es", &allow));
        assert!(!redirect_allowed("https://example.org.evil.net/", &allow));
        assert!(!redirect_allowed("https://example.org@evil.net/", &allow));
        assert!(!redirect_allowed("https://x.org/other", &allow));
        assert!(!redirect_allowed("javascript:alert(1)", &allow));
        assert!(!redirect_allowed("https://example.org/a\u{1}b", &allow));
        assert!(!redirect_allowed("https://example.org/a", &[]));
    }
}

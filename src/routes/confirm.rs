//! Confirmation links: a GET page with a button (changes nothing), the POST that confirms, the
//! JSON variant for JavaScript clients, and renewal of an expired link.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::{check_rate_limit, evidence, negotiate_language, HandlerResult, Page};
use crate::db::interests::Interest;
use crate::domain::Language;
use crate::error::ApiError;
use crate::services::consent as service;
use crate::signup::confirm::ConfirmOutcome;
use crate::state::AppState;

pub async fn confirm_page(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let token = token.into_inner();
    match service::inspect_confirmation(&state.db, token.clone()).await {
        // The interests chosen at signup (or on the form whose request this link carries), to
        // show what is being confirmed.
        Ok((ConfirmOutcome::Confirmed { language, .. }, interests)) => {
            let interests = interest_list(&interests, language);
            let page = context! { token => token, interests => interests };
            Page::render(&state, language, StatusCode::OK, "confirm", page)
        }
        Ok((outcome, _)) => outcome_page(&state, &req, outcome, &token),
        Err(e) => Page::error(&state, negotiate_language(&req), ApiError::from(e)),
    }
}

fn interest_list(interests: &[Interest], language: Language) -> Vec<minijinja::Value> {
    interests
        .iter()
        .map(|i| context! { name => i.name(language), description => i.description(language) })
        .collect()
}

pub async fn confirm_form(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Err(e) = check_rate_limit(&state, &req) {
        return Page::error(&state, negotiate_language(&req), e);
    }
    let token = token.into_inner();
    let outcome = match run_confirm(&state, &req, token.clone()).await {
        Ok(outcome) => outcome,
        Err(e) => return Page::error(&state, negotiate_language(&req), e),
    };
    let ConfirmOutcome::Confirmed {
        subscriber_id,
        language,
    } = &outcome
    else {
        return outcome_page(&state, &req, outcome, &token);
    };
    // The confirmed page names what they will hear about.
    let held = service::interests_of(&state.db, subscriber_id).await;
    let interests = interest_list(&held.unwrap_or_default(), *language);
    let preferences_url = preferences_url(&state, subscriber_id);
    let page = context! { preferences_url => preferences_url, interests => interests };
    Page::render(&state, *language, StatusCode::OK, "confirmed", page)
}

fn preferences_url(state: &AppState, subscriber_id: &str) -> String {
    subscriber_id
        .parse()
        .map(|id| {
            format!(
                "{}/preferences/{}",
                state.settings.base_url(),
                state.manage_tokens.sign(id)
            )
        })
        .unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmJson {
    token: String,
}

pub async fn confirm_json(
    req: HttpRequest,
    body: super::json::Json<ConfirmJson>,
    state: web::Data<AppState>,
) -> HandlerResult {
    check_rate_limit(&state, &req)?;
    match run_confirm(&state, &req, body.into_inner().token).await? {
        ConfirmOutcome::Confirmed { .. } => Ok(HttpResponse::Ok().json(crate::views::StatusView {
            status: "confirmed",
        })),
        ConfirmOutcome::AlreadyConfirmed { .. } => {
            Ok(HttpResponse::Ok().json(crate::views::StatusView {
                status: "already_confirmed",
            }))
        }
        ConfirmOutcome::Expired { .. } => Err(ApiError::Gone(
            "the confirmation link has expired; POST /confirm/{token}/renew sends a new one".into(),
        )),
        ConfirmOutcome::Invalid => Err(ApiError::NotFound),
    }
}

async fn run_confirm(
    state: &AppState,
    req: &HttpRequest,
    token: String,
) -> Result<ConfirmOutcome, ApiError> {
    let evidence = evidence(state, req);
    let (db, templates, mail_ready) = (&state.db, &state.templates, &state.mail_ready);
    let outcome = service::confirm(db, templates, mail_ready, token, evidence).await?;
    if matches!(outcome, ConfirmOutcome::Confirmed { .. }) {
        state.metrics.confirmation();
    }
    Ok(outcome)
}

pub async fn renew(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Err(e) = check_rate_limit(&state, &req) {
        return Page::error(&state, negotiate_language(&req), e);
    }
    let policy = state.signup_policy();
    match service::renew(&state.db, &policy, &state.mail_ready, token.into_inner()).await {
        Ok(ConfirmOutcome::Invalid) => outcome_page(&state, &req, ConfirmOutcome::Invalid, ""),
        Ok(outcome) => {
            let language = outcome_language(&outcome).unwrap_or_else(|| negotiate_language(&req));
            Page::render(&state, language, StatusCode::OK, "renewed", context! {})
        }
        Err(e) => Page::error(&state, negotiate_language(&req), ApiError::from(e)),
    }
}

fn outcome_language(outcome: &ConfirmOutcome) -> Option<Language> {
    match outcome {
        ConfirmOutcome::Confirmed { language, .. }
        | ConfirmOutcome::AlreadyConfirmed { language }
        | ConfirmOutcome::Expired { language } => Some(*language),
        ConfirmOutcome::Invalid => None,
    }
}

fn outcome_page(
    state: &AppState,
    req: &HttpRequest,
    outcome: ConfirmOutcome,
    token: &str,
) -> HttpResponse {
    let language = outcome_language(&outcome).unwrap_or_else(|| negotiate_language(req));
    match outcome {
        ConfirmOutcome::Confirmed { subscriber_id, .. } => Page::render(
            state,
            language,
            StatusCode::OK,
            "confirmed",
            context! { preferences_url => preferences_url(state, &subscriber_id), interests => Vec::<()>::new() },
        ),
        ConfirmOutcome::AlreadyConfirmed { .. } => Page::render(
            state,
            language,
            StatusCode::OK,
            "already_confirmed",
            context! {},
        ),
        ConfirmOutcome::Expired { .. } => Page::render(
            state,
            language,
            StatusCode::GONE,
            "link_expired",
            context! { token => token },
        ),
        ConfirmOutcome::Invalid => Page::render(
            state,
            language,
            StatusCode::NOT_FOUND,
            "link_invalid",
            context! {},
        ),
    }
}

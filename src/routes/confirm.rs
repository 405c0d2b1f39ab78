//! Confirmation links: a GET page with a button (changes nothing), the POST that confirms, the
//! JSON variant for JavaScript clients, and renewal of an expired link.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::{check_rate_limit, evidence, negotiate_language, HandlerResult, Page};
use crate::db::{self, subscribers, DbError};
use crate::domain::Language;
use crate::error::ApiError;
use crate::signup::confirm::{self, ConfirmOutcome};
use crate::startup::AppState;

pub async fn confirm_page(
    req: HttpRequest,
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let token = token.into_inner();
    let lookup = token.clone();
    let result = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            let (outcome, proposal) = confirm::inspect_token(conn, &lookup, db::now())?;
            // The interests chosen at signup (or on the form whose request this link carries),
            // to show what is being confirmed.
            let interests = match (&outcome, proposal) {
                (ConfirmOutcome::Confirmed { .. }, Some(proposal)) => {
                    proposal.chosen_interests(db::interests::list_interests(conn)?)
                }
                (ConfirmOutcome::Confirmed { subscriber_id, .. }, None) => {
                    subscribers::list_subscriber_interests(conn, subscriber_id)?
                }
                _ => Vec::new(),
            };
            Ok((outcome, interests))
        })
        .await;
    match result {
        Ok((ConfirmOutcome::Confirmed { language, .. }, interests)) => {
            let interests: Vec<_> = interests
                .iter()
                .map(|i| context! { name => i.name(language), description => i.description(language) })
                .collect();
            Page::render(
                &state,
                language,
                StatusCode::OK,
                "confirm",
                context! { token => token, interests => interests },
            )
        }
        Ok((outcome, _)) => outcome_page(&state, &req, outcome, &token),
        Err(e) => Page::error(&state, negotiate_language(&req), ApiError::from(e)),
    }
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
    if let ConfirmOutcome::Confirmed {
        subscriber_id,
        language,
    } = &outcome
    {
        // The confirmed page names what they will hear about.
        let id = subscriber_id.clone();
        let interests = state
            .db
            .run(move |conn| {
                subscribers::list_subscriber_interests(conn, &id).map_err(DbError::from)
            })
            .await
            .unwrap_or_default();
        let interests: Vec<_> = interests
            .iter()
            .map(
                |i| context! { name => i.name(*language), description => i.description(*language) },
            )
            .collect();
        let preferences_url = preferences_url(&state, subscriber_id);
        return Page::render(
            &state,
            *language,
            StatusCode::OK,
            "confirmed",
            context! { preferences_url => preferences_url, interests => interests },
        );
    }
    outcome_page(&state, &req, outcome, &token)
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
        ConfirmOutcome::Confirmed { .. } => {
            Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "confirmed" })))
        }
        ConfirmOutcome::AlreadyConfirmed { .. } => {
            Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "already_confirmed" })))
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
    let templates = state.templates.clone();
    let evidence = evidence(state, req);
    let outcome = state
        .db
        .write(move |conn| {
            confirm::confirm(conn, &templates, &token, &evidence, db::now()).map_err(DbError::from)
        })
        .await?;
    if matches!(outcome, ConfirmOutcome::Confirmed { .. }) {
        state.metrics.confirmation();
        state.mail_ready.notify_one();
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
    let token = token.into_inner();
    let policy = state.signup_policy();
    let result = state
        .db
        .write(move |conn| confirm::renew(conn, &policy, &token, db::now()).map_err(DbError::from))
        .await;
    match result {
        Ok((ConfirmOutcome::Invalid, _)) => outcome_page(&state, &req, ConfirmOutcome::Invalid, ""),
        Ok((outcome, sent)) => {
            if sent {
                state.mail_ready.notify_one();
            }
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

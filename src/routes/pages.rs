//! Rendering the public HTML pages, including error pages for people arriving from a form or a link.

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use minijinja::{context, Value};

use crate::domain::Language;
use crate::error::{ApiError, FieldErrors};
use crate::state::AppState;

/// The public pages' Content-Security-Policy (set on every answer that has none of its own): no
/// script at all, styles only inline, forms post to Enlace, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub struct Page;

impl Page {
    /// Renders `pages/{name}.html` for a reader of `language`.
    pub fn render(
        state: &AppState,
        language: Language,
        status: StatusCode,
        name: &str,
        ctx: Value,
    ) -> HttpResponse {
        Self::render_template(state, language, status, &format!("pages/{name}.html"), ctx)
    }

    /// Renders the HTML template `template` (`pages/thanks.html`) for a reader of `language`,
    /// never cached; a template that fails is logged and answered with a plain 500.
    pub fn render_template(
        state: &AppState,
        language: Language,
        status: StatusCode,
        template: &str,
        ctx: Value,
    ) -> HttpResponse {
        match state.templates.render(template, language, ctx) {
            Ok(body) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CONTENT_LANGUAGE, language.as_str()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(body),
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    page = template,
                    "rendering a page failed"
                );
                HttpResponse::InternalServerError()
                    .content_type("text/plain; charset=utf-8")
                    .body("Internal error")
            }
        }
    }

    /// An HTML answer for an error met while serving a page or a form.
    pub fn error(state: &AppState, language: Language, error: ApiError) -> HttpResponse {
        let (title, message) = match &error {
            ApiError::TooManyRequests { .. } => {
                ("errors.rate_limited_title", "errors.rate_limited")
            }
            ApiError::NotFound => ("errors.not_found_title", "errors.not_found"),
            ApiError::Validation(errors) => return Self::form_errors(state, language, errors),
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                ("errors.server_title", "errors.server")
            }
            _ => ("errors.server_title", "errors.server"),
        };
        let status = actix_web::ResponseError::status_code(&error);
        let mut response = Self::render(
            state,
            language,
            status,
            "error",
            context! { title => state.templates.text(language, title), message => state.templates.text(language, message) },
        );
        if let ApiError::TooManyRequests { retry_after_secs } = error {
            if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }

    pub fn form_errors(state: &AppState, language: Language, errors: &FieldErrors) -> HttpResponse {
        let errors: Vec<Value> = errors
            .iter()
            .map(|(field, messages)| context! { field => field, messages => messages })
            .collect();
        Self::render(
            state,
            language,
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_errors",
            context! { errors => errors },
        )
    }
}

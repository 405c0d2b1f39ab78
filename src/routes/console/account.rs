//! A member's own account: language, time zone and password.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use minijinja::{context, Value};
use serde::Deserialize;

use super::frame::NoticeQuery;
use super::frame::{self, Console, Posted, Signed, SESSION_COOKIE};
use crate::auth::AnyStaff;
use crate::services::staff::{self as service, ChangePasswordError, Gate, PreferencesError};

fn account_page(
    console: &Console,
    status: StatusCode,
    errors: Value,
    notice: Option<&str>,
) -> HttpResponse {
    let member = &console.session.member;
    let zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
    console.page(
        status,
        "account",
        context! {
            errors => errors,
            notice => notice,
            chosen_language => member.language.as_deref().unwrap_or(""),
            chosen_zone => member.time_zone.as_deref().unwrap_or(""),
            default_zone => &console.state.settings.time_zone,
            zones => zones,
        },
    )
}

pub async fn page(signed: Signed<AnyStaff>, query: web::Query<NoticeQuery>) -> HttpResponse {
    account_page(
        &signed.console,
        StatusCode::OK,
        Value::from(()),
        query.notice.as_deref(),
    )
}

#[derive(Deserialize)]
pub struct PreferencesForm {
    #[serde(default)]
    language: String,
    #[serde(default)]
    time_zone: String,
}

pub async fn preferences(posted: Posted<AnyStaff, PreferencesForm>) -> HttpResponse {
    let console = &posted.console;
    let input = service::PreferencesInput {
        language: posted.form.language,
        time_zone: posted.form.time_zone,
    };
    match service::set_preferences(
        &console.state.db,
        &console.principal,
        console.ip.as_deref(),
        input,
    )
    .await
    {
        Ok(()) => console.redirect("/account", Some("preferences_saved")),
        Err(PreferencesError::Invalid(errors)) => account_page(
            console,
            StatusCode::UNPROCESSABLE_ENTITY,
            console.field_errors(&errors),
            None,
        ),
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    repeat_password: String,
}

/// Changes the member's password. Every session of theirs ends (a thief's included); this
/// browser gets a new one.
pub async fn password(posted: Posted<AnyStaff, PasswordForm>) -> HttpResponse {
    let console = &posted.console;
    let state = &console.state;
    let form = posted.form;
    if form.new_password != form.repeat_password {
        let errors = crate::domain::FieldErrors::one("repeat_password", "does not match");
        return account_page(
            console,
            StatusCode::UNPROCESSABLE_ENTITY,
            console.field_errors(&errors),
            None,
        );
    }
    let gate = Gate {
        limiter: &state.login_limiter,
        password_slots: &state.password_slots,
        jwt: &state.jwt,
    };
    let changed = service::change_own_password(
        &state.db,
        &gate,
        &console.principal,
        console.ip.as_deref(),
        form.current_password,
        form.new_password,
    )
    .await;
    match changed {
        Ok(()) => {}
        Err(ChangePasswordError::Invalid(errors)) => {
            return account_page(
                console,
                StatusCode::UNPROCESSABLE_ENTITY,
                console.field_errors(&errors),
                None,
            )
        }
        Err(ChangePasswordError::TooManyAttempts { retry_after_secs }) => {
            let mut response = console.error(StatusCode::TOO_MANY_REQUESTS, "too_many");
            if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Err(e) => return console.internal(e),
    }
    match service::resume_console_session(
        &state.db,
        console.session.member.id.clone(),
        frame::limits(state),
    )
    .await
    {
        Ok(Some(started)) => {
            let mut response = console.redirect("/account", Some("password_changed"));
            let _ = response.add_cookie(&frame::cookie(state, SESSION_COOKIE, started.secret));
            response
        }
        Ok(None) => frame::redirect(state, "/sign-in", None),
        Err(e) => console.internal(e),
    }
}

//! API keys for scripts: the list (with when each was last used), creating one with scopes
//! (its secret shown once, on the answer to the form), and revoking one (after a page that says
//! what revoking does).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use minijinja::{context, Value};
use serde::Deserialize;

use super::NoticeQuery;
use crate::auth::{AdminOnly, Scope};
use crate::db::ids::ApiKeyId;
use crate::routes::console::frame::{Console, Posted, Signed};
use crate::services::staff::{self as service, CreateKeyError, RevokeKeyError};

fn scope_names() -> Vec<&'static str> {
    Scope::ALL.iter().map(|s| s.as_str()).collect()
}

async fn keys_page(
    console: &Console,
    status: StatusCode,
    errors: Value,
    name: &str,
    chosen: &[String],
    notice: Option<&str>,
) -> HttpResponse {
    let keys = match service::list_keys(&console.state.db).await {
        Ok(keys) => keys,
        Err(e) => return console.internal(e),
    };
    let rows: Vec<Value> = keys
        .iter()
        .map(|(k, creator)| {
            let scopes: Vec<String> = serde_json::from_str(&k.scopes).unwrap_or_default();
            context! {
                id => k.id.as_str(),
                name => &k.name,
                prefix => &k.prefix,
                scopes => scopes,
                creator => creator.as_ref().map(|c| c.email.as_str()),
                created_at => k.created_at,
                last_used_at => k.last_used_at,
                revoked_at => k.revoked_at,
            }
        })
        .collect();
    console.page(
        status,
        "admin/api_keys",
        context! {
            keys => rows,
            scopes => scope_names(),
            errors => errors,
            form => context! { name => name, scopes => chosen },
            admin_notice => notice,
        },
    )
}

pub async fn page(signed: Signed<AdminOnly>, query: web::Query<NoticeQuery>) -> HttpResponse {
    let notice = query.notice.as_deref();
    keys_page(
        &signed.console,
        StatusCode::OK,
        Value::from(()),
        "",
        &[],
        notice,
    )
    .await
}

#[derive(Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Creates a key; its secret is on this answer only (never stored, never redirected to).
pub async fn create(posted: Posted<AdminOnly, NewKeyForm>) -> HttpResponse {
    let console = &posted.console;
    let form = posted.form;
    let (name, chosen) = (form.name.clone(), form.scopes.clone());
    let input = service::NewApiKey {
        name: form.name,
        scopes: form.scopes,
    };
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match service::create_key(&console.state.db, actor, ip, input).await {
        Ok(created) => {
            let scopes: Vec<String> = serde_json::from_str(&created.key.scopes).unwrap_or_default();
            console.page(
                StatusCode::CREATED,
                "admin/api_key_created",
                context! {
                    name => &created.key.name,
                    scopes => scopes,
                    secret => &created.secret,
                },
            )
        }
        Err(CreateKeyError::Invalid(errors)) => {
            let errors = console.field_errors(&errors);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            keys_page(console, status, errors, &name, &chosen, None).await
        }
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    /// `yes` once the admin has confirmed.
    #[serde(default)]
    confirm: String,
}

pub async fn revoke(posted: Posted<AdminOnly, RevokeForm>, id: web::Path<String>) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = ApiKeyId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    if posted.form.confirm != "yes" {
        let keys = match service::list_keys(&console.state.db).await {
            Ok(keys) => keys,
            Err(e) => return console.internal(e),
        };
        let Some((key, _)) = keys
            .iter()
            .find(|(k, _)| k.id == id && k.revoked_at.is_none())
        else {
            return console.error(StatusCode::NOT_FOUND, "not_found");
        };
        return super::confirm_page(
            console,
            "revoke_key",
            &key.name,
            &format!("/api-keys/{id}/revoke"),
            "/api-keys",
        );
    }
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match service::revoke_key(&console.state.db, actor, ip, id).await {
        Ok(()) => console.redirect("/api-keys", Some("key_revoked")),
        Err(RevokeKeyError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

//! The audit log: newest first, a page at a time, filtered by action, by who acted and by a
//! range of days (in the member's time zone). Who acted is shown as the staff member's address,
//! or the key's name and who created it.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use minijinja::{context, Value};
use serde::Deserialize;

use crate::auth::AdminOnly;
use crate::db::audit::AuditFilter;
use crate::domain::FieldErrors;
use crate::routes::console::frame::{Console, Signed};
use crate::services::staff as service;

/// Entries on a page.
const PAGE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
}

/// The start of `day` in `console`'s time zone, in UTC.
fn day_start(console: &Console, day: NaiveDate) -> Option<NaiveDateTime> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    let local = console.zone.from_local_datetime(&midnight).earliest()?;
    Some(local.naive_utc())
}

/// A day as typed (`2026-12-07`): empty is none; else it must be a date.
fn parse_day(raw: &str, field: &str, errors: &mut FieldErrors) -> Option<NaiveDate> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| errors.add(field, "must be a date like 2026-12-31"))
        .ok()
}

fn filter_of(console: &Console, query: &AuditQuery) -> Result<AuditFilter, FieldErrors> {
    let mut errors = FieldErrors::new();
    let from = parse_day(&query.from, "from", &mut errors);
    let to = parse_day(&query.to, "to", &mut errors);
    if let (Some(from), Some(to)) = (from, to) {
        if to < from {
            errors.add("to", "must not be before the first day");
        }
    }
    errors.into_result()?;
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    Ok(AuditFilter {
        action: some(&query.action),
        actor_id: some(&query.actor),
        since: from.and_then(|d| day_start(console, d)),
        until: to
            .and_then(|d| d.succ_opt())
            .and_then(|d| day_start(console, d)),
    })
}

pub async fn page(signed: Signed<AdminOnly>, query: web::Query<AuditQuery>) -> HttpResponse {
    let console = &signed.console;
    let query = query.into_inner();
    let db = &console.state.db;
    let (members, keys, actions) = match tokio::try_join!(
        service::list_members(db),
        service::list_keys(db),
        service::audit_actions(db)
    ) {
        Ok(all) => all,
        Err(e) => return console.internal(e),
    };
    // Who each actor is: a member's address; a key's name and its creator's address.
    let mut actors: Vec<Value> = Vec::new();
    let mut names: HashMap<String, (String, Option<String>)> = HashMap::new();
    for m in &members {
        names.insert(m.id.as_str().to_owned(), (m.email.clone(), None));
        actors.push(context! { id => m.id.as_str(), label => &m.email, kind => "staff" });
    }
    for (k, creator) in &keys {
        let by = creator.as_ref().map(|c| c.email.clone());
        names.insert(k.id.as_str().to_owned(), (k.name.clone(), by.clone()));
        actors
            .push(context! { id => k.id.as_str(), label => &k.name, by => by, kind => "api_key" });
    }
    let (status, errors, entries, next) = match filter_of(console, &query) {
        Err(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            console.field_errors(&errors),
            Vec::new(),
            None,
        ),
        Ok(filter) => {
            let before = crate::routes::hyphenated_uuid(query.before.trim());
            let page = match service::audit_log(db, filter, before, PAGE).await {
                Ok(page) => page,
                Err(e) => return console.internal(e),
            };
            let entries: Vec<Value> = page
                .entries
                .iter()
                .map(|e| {
                    let who = e.actor_id.as_ref().and_then(|id| names.get(id));
                    context! {
                        created_at => e.created_at,
                        actor_type => &e.actor_type,
                        actor => who.map(|w| w.0.as_str()),
                        key_by => who.and_then(|w| w.1.as_deref()),
                        action => &e.action,
                        object_type => &e.object_type,
                        object_id => &e.object_id,
                        ip => &e.ip,
                    }
                })
                .collect();
            let next = page.next.map(|before| {
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("action", &query.action)
                    .append_pair("actor", &query.actor)
                    .append_pair("from", &query.from)
                    .append_pair("to", &query.to)
                    .append_pair("before", &before)
                    .finish()
            });
            (StatusCode::OK, Value::from(()), entries, next)
        }
    };
    let filtered = [
        &query.action,
        &query.actor,
        &query.from,
        &query.to,
        &query.before,
    ]
    .iter()
    .any(|s| !s.is_empty());
    console.page(
        status,
        "admin/audit_log",
        context! {
            entries => entries,
            next => next,
            actions => actions,
            actors => actors,
            query => context! {
                action => &query.action,
                actor => &query.actor,
                from => &query.from,
                to => &query.to,
            },
            filtered => filtered,
            errors => errors,
        },
    )
}

//! People: finding them (by address, name, status, interest, language or a field's value, a
//! page at a time), a person's page (profile, consent history, mail sent, audit trail),
//! changing their profile, unsubscribing them, adding someone (with consent recorded, or by
//! sending a confirmation), erasing them and downloading everything held about them.
//!
//! Roles are the API's (`routes::subscribers`): every member reads, editors and admins change,
//! erase and download an access export.

// The helpers here answer a refusal with the page to show: a response, returned as it is.
#![allow(clippy::result_large_err)]

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::{context, Value};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::frame::NoticeQuery;
use super::frame::{Console, Posted, Signed};
use crate::auth::{ExportContacts, ReadContacts, WriteContacts};
use crate::db::ids::SubscriberId;
use crate::domain::{FieldErrors, FieldType};
use crate::services::catalog;
use crate::services::subscribers::{
    self as service, EraseError, GetSubscriberError, PeopleSearch, SearchError,
    StaffUnsubscribeError, SubscriberChange, SubscriberRecord, UpdateSubscriberError,
    UpsertSubscriberError,
};

/// People on one page of the list.
const PAGE_SIZE: i64 = 50;

/// A form read as its fields in order (checkboxes repeat a name; custom fields are `field.KEY`).
type Fields = Vec<(String, String)>;

fn field<'a>(form: &'a Fields, name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn all<'a>(form: &'a Fields, name: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    email: Option<String>,
    name: Option<String>,
    status: Option<String>,
    interest: Option<String>,
    language: Option<String>,
    field: Option<String>,
    value: Option<String>,
    after: Option<String>,
    notice: Option<String>,
}

/// A person as the templates show them.
fn person(r: &SubscriberRecord) -> Value {
    let s = &r.subscriber;
    let attributes: Map<String, Json> = serde_json::from_str(&s.attributes).unwrap_or_default();
    let attributes: Vec<(String, String)> = attributes
        .into_iter()
        .map(|(k, v)| {
            let shown = match v {
                Json::String(text) => text,
                other => other.to_string(),
            };
            (k, shown)
        })
        .collect();
    context! {
        id => s.id.as_str(),
        email => &s.email,
        name => &s.name,
        language => &s.language,
        status => s.status.as_str(),
        source => &s.source,
        created_at => s.created_at,
        updated_at => s.updated_at,
        confirmed_at => s.confirmed_at,
        unsubscribed_at => s.unsubscribed_at,
        interests => &r.interests,
        attributes => attributes,
        subscribed => matches!(s.status.as_str(), "pending" | "confirmed"),
    }
}

/// The interests staff may choose from: (slug, name in the member's language).
async fn interest_choices(console: &Console) -> Result<Vec<(String, String)>, HttpResponse> {
    let interests = catalog::list_interests(&console.state.db)
        .await
        .map_err(|e| console.internal(e))?;
    Ok(interests
        .iter()
        .map(|i| (i.slug.clone(), i.name(console.language).to_owned()))
        .collect())
}

fn id_of(console: &Console, raw: &str) -> Result<SubscriberId, HttpResponse> {
    SubscriberId::parse(raw).ok_or_else(|| console.error(StatusCode::NOT_FOUND, "not_found"))
}

fn load_error(console: &Console, e: GetSubscriberError) -> HttpResponse {
    match e {
        GetSubscriberError::NotFound => console.error(StatusCode::NOT_FOUND, "not_found"),
        GetSubscriberError::Db(e) => console.internal(e),
    }
}

/// The list, searched and a page at a time.
pub async fn list(
    signed: Signed<ReadContacts>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
) -> HttpResponse {
    let console = signed.console;
    let q = query.map(web::Query::into_inner).unwrap_or_default();
    let search = PeopleSearch {
        email: q.email.clone(),
        name: q.name.clone(),
        status: q.status.clone(),
        interest: q.interest.clone(),
        language: q.language.clone(),
        field: q.field.clone(),
        value: q.value.clone(),
        after: q.after.clone(),
        limit: PAGE_SIZE,
    };
    let interests = match interest_choices(&console).await {
        Ok(i) => i,
        Err(response) => return response,
    };
    let (status, people, next, errors) = match service::search(&console.state.db, &search).await {
        Ok(page) => (StatusCode::OK, page.people, page.next, Value::from(())),
        Err(SearchError::Invalid(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Vec::new(),
            None,
            console.field_errors(&errors),
        ),
        Err(SearchError::Db(e)) => return console.internal(e),
    };
    // The same search, continuing after the last person shown.
    let filters: Vec<(&str, &str)> = [
        ("email", &q.email),
        ("name", &q.name),
        ("status", &q.status),
        ("interest", &q.interest),
        ("language", &q.language),
        ("field", &q.field),
        ("value", &q.value),
    ]
    .into_iter()
    .filter_map(|(k, v)| {
        v.as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (k, v))
    })
    .collect();
    let query_of = |after: Option<&str>| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(filters.iter().copied());
        if let Some(after) = after {
            query.append_pair("after", after);
        }
        query.finish()
    };
    let next_query = next.as_deref().map(|after| query_of(Some(after)));
    let first_query = query_of(None);
    let people: Vec<Value> = people.iter().map(person).collect();
    console.page(
        status,
        "people/list",
        context! {
            people => people,
            next_query => next_query,
            first_query => first_query,
            searched => !filters.is_empty(),
            continued => q.after.is_some(),
            errors => errors,
            notice => q.notice,
            interests => interests,
            f => context! {
                email => q.email, name => q.name, status => q.status, interest => q.interest,
                language => q.language, field => q.field, value => q.value,
            },
            may_write => console.principal.passes::<WriteContacts>(),
        },
    )
}

/// One person: profile, interests, fields, consent history, mail sent and the audit trail.
pub async fn show(
    signed: Signed<ReadContacts>,
    path: web::Path<String>,
    query: Result<web::Query<NoticeQuery>, actix_web::Error>,
) -> HttpResponse {
    let console = signed.console;
    let id = match id_of(&console, &path) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let notice = query.ok().and_then(|q| q.into_inner().notice);
    let history = match service::history(&console.state.db, &id).await {
        Ok(h) => h,
        Err(e) => return load_error(&console, e),
    };
    let mails: Vec<Value> = history
        .mails
        .iter()
        .map(|(kind, state, queued, finished)| {
            context! { kind => kind, state => state, queued_at => queued, finished_at => finished }
        })
        .collect();
    let newsletters: Vec<Value> = history
        .newsletters
        .iter()
        .map(|(newsletter, state, outcome, sent)| {
            let subject = history.subjects.get(newsletter);
            context! {
                newsletter => newsletter, subject => subject, state => state, outcome => outcome,
                sent_at => sent,
            }
        })
        .collect();
    // The interests each entry is about, kept as a JSON list: shown as words.
    let consent: Vec<Value> = history
        .consent
        .iter()
        .map(|e| {
            let interests: Vec<String> = serde_json::from_str(&e.interests).unwrap_or_default();
            context! { interest_list => interests, ..Value::from_serialize(e) }
        })
        .collect();
    console.page(
        StatusCode::OK,
        "people/person",
        context! {
            p => person(&history.record),
            consent => consent,
            mails => mails,
            newsletters => newsletters,
            audit => Value::from_serialize(&history.audit),
            staff => Value::from_serialize(&history.staff),
            notice => notice,
            may_write => console.principal.passes::<WriteContacts>(),
            may_export => console.principal.passes::<ExportContacts>(),
        },
    )
}

/// The custom fields, each with the person's value (or the value just typed).
async fn field_inputs(
    console: &Console,
    current: &Map<String, Json>,
    typed: Option<&Fields>,
) -> Result<Vec<Value>, HttpResponse> {
    let fields = catalog::list_fields(&console.state.db)
        .await
        .map_err(|e| console.internal(e))?;
    Ok(fields
        .iter()
        .map(|f| {
            let value = match typed {
                Some(form) => field(form, &format!("field.{}", f.key))
                    .unwrap_or_default()
                    .to_owned(),
                None => match current.get(&f.key) {
                    Some(Json::String(s)) => s.clone(),
                    Some(Json::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                },
            };
            let allowed: Vec<String> = f
                .allowed_values
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok())
                .unwrap_or_default();
            context! {
                key => &f.key,
                field_type => &f.field_type,
                allowed => allowed,
                value => value,
            }
        })
        .collect())
}

async fn edit_form(
    console: &Console,
    status: StatusCode,
    record: &SubscriberRecord,
    typed: Option<&Fields>,
    errors: Value,
) -> HttpResponse {
    let interests = match interest_choices(console).await {
        Ok(i) => i,
        Err(response) => return response,
    };
    let current: Map<String, Json> =
        serde_json::from_str(&record.subscriber.attributes).unwrap_or_default();
    let fields = match field_inputs(console, &current, typed).await {
        Ok(f) => f,
        Err(response) => return response,
    };
    let (name, language, chosen): (String, String, Vec<String>) = match typed {
        Some(form) => (
            field(form, "name").unwrap_or_default().to_owned(),
            field(form, "language").unwrap_or_default().to_owned(),
            all(form, "interests")
                .into_iter()
                .map(str::to_owned)
                .collect(),
        ),
        None => (
            record.subscriber.name.clone().unwrap_or_default(),
            record.subscriber.language.clone(),
            record.interests.clone(),
        ),
    };
    console.page(
        status,
        "people/edit",
        context! {
            p => person(record),
            name => name,
            language => language,
            chosen => chosen,
            interests => interests,
            fields => fields,
            errors => errors,
        },
    )
}

pub async fn edit_page(signed: Signed<WriteContacts>, path: web::Path<String>) -> HttpResponse {
    let console = signed.console;
    let id = match id_of(&console, &path) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match service::get(&console.state.db, &id).await {
        Ok(record) => edit_form(&console, StatusCode::OK, &record, None, Value::from(())).await,
        Err(e) => load_error(&console, e),
    }
}

/// A typed field value as the field's type stores it (a number, true/false, or text); blank
/// removes the value.
fn typed_value(field_type: &str, raw: &str) -> Json {
    let raw = raw.trim();
    if raw.is_empty() {
        return Json::Null;
    }
    match FieldType::parse(field_type) {
        Some(FieldType::Number) => serde_json::from_str::<serde_json::Number>(raw)
            .map(Json::Number)
            .unwrap_or_else(|_| Json::String(raw.to_owned())),
        Some(FieldType::Boolean) => match raw {
            "true" => Json::Bool(true),
            "false" => Json::Bool(false),
            other => Json::String(other.to_owned()),
        },
        _ => Json::String(raw.to_owned()),
    }
}

pub async fn edit(posted: Posted<WriteContacts, Fields>, path: web::Path<String>) -> HttpResponse {
    let (console, form) = (posted.console, posted.form);
    let id = match id_of(&console, &path) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let db = &console.state.db;
    let declared = match catalog::list_fields(db).await {
        Ok(f) => f,
        Err(e) => return console.internal(e),
    };
    let mut errors = FieldErrors::new();
    let name = crate::domain::Name::parse(field(&form, "name").unwrap_or_default())
        .map_err(|e| errors.add("name", e))
        .ok();
    let language = crate::domain::Language::parse(field(&form, "language").unwrap_or_default())
        .map_err(|e| errors.add("language", e))
        .ok();
    let mut interests = Vec::new();
    for raw in all(&form, "interests") {
        match crate::domain::InterestSlug::parse(raw) {
            Ok(slug) if !interests.contains(&slug) => interests.push(slug),
            Ok(_) => {}
            Err(e) => errors.add("interests", e),
        }
    }
    let attributes: Map<String, Json> = declared
        .iter()
        .filter_map(|f| {
            field(&form, &format!("field.{}", f.key))
                .map(|raw| (f.key.clone(), typed_value(&f.field_type, raw)))
        })
        .collect();
    let result = match errors.into_result() {
        Err(errors) => Err(UpdateSubscriberError::Invalid(errors)),
        Ok(()) => {
            let change = SubscriberChange {
                name,
                language,
                interests: Some(interests),
                attributes: Some(attributes),
            };
            service::update(db, &console.principal, console.ip.clone(), &id, change).await
        }
    };
    match result {
        Ok(_) => console.redirect(&format!("/people/{}?notice=saved", id.as_str()), None),
        Err(UpdateSubscriberError::Invalid(errors)) => match service::get(db, &id).await {
            Ok(record) => {
                let errors = console.field_errors(&errors);
                let status = StatusCode::UNPROCESSABLE_ENTITY;
                edit_form(&console, status, &record, Some(&form), errors).await
            }
            Err(e) => load_error(&console, e),
        },
        Err(UpdateSubscriberError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(UpdateSubscriberError::Db(e)) => console.internal(e),
    }
}

pub async fn unsubscribe(
    posted: Posted<WriteContacts, Fields>,
    path: web::Path<String>,
) -> HttpResponse {
    let console = posted.console;
    let id = match id_of(&console, &path) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let state = &console.state;
    let (actor, ip) = (&console.principal, console.ip.clone());
    match service::unsubscribe(&state.db, actor, ip, &state.templates, &id).await {
        Ok(()) => console.redirect(
            &format!("/people/{}?notice=unsubscribed", id.as_str()),
            None,
        ),
        Err(StaffUnsubscribeError::NotSubscribed) => console.redirect(
            &format!("/people/{}?notice=not_subscribed", id.as_str()),
            None,
        ),
        Err(StaffUnsubscribeError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(StaffUnsubscribeError::Db(e)) => console.internal(e),
    }
}

async fn new_form(
    console: &Console,
    status: StatusCode,
    typed: Option<&Fields>,
    errors: Value,
    problem: Option<String>,
) -> HttpResponse {
    let interests = match interest_choices(console).await {
        Ok(i) => i,
        Err(response) => return response,
    };
    let get = |name: &str| {
        typed
            .and_then(|f| field(f, name))
            .unwrap_or_default()
            .to_owned()
    };
    let chosen: Vec<String> = typed
        .map(|f| all(f, "interests").into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    let mode = typed
        .and_then(|f| field(f, "mode"))
        .unwrap_or("recorded")
        .to_owned();
    let fields = match field_inputs(console, &Map::new(), typed).await {
        Ok(f) => f,
        Err(response) => return response,
    };
    console.page(
        status,
        "people/new",
        context! {
            email => get("email"),
            name => get("name"),
            language => get("language"),
            source => get("consent_source"),
            note => get("consent_note"),
            mode => mode,
            chosen => chosen,
            interests => interests,
            fields => fields,
            errors => errors,
            problem => problem,
        },
    )
}

pub async fn new_page(signed: Signed<WriteContacts>) -> HttpResponse {
    new_form(&signed.console, StatusCode::OK, None, Value::from(()), None).await
}

/// Adds a person (or updates one already on the list) with the API's upsert: consent given
/// elsewhere recorded with its evidence, or a confirmation mail sent.
pub async fn add(posted: Posted<WriteContacts, Fields>, req: HttpRequest) -> HttpResponse {
    let (console, form) = (posted.console, posted.form);
    let text = |name: &str| field(&form, name).unwrap_or_default().trim().to_owned();
    let consent = match field(&form, "mode") {
        Some("confirmation") => serde_json::json!({ "mode": "confirmation" }),
        _ => serde_json::json!({
            "mode": "recorded",
            "source": text("consent_source"),
            "note": text("consent_note"),
        }),
    };
    let mut body = serde_json::json!({
        "email": text("email"),
        "interests": all(&form, "interests"),
        "consent": consent,
    });
    if !text("name").is_empty() {
        body["name"] = Json::String(text("name"));
    }
    if !text("language").is_empty() {
        body["language"] = Json::String(text("language"));
    }
    let state = &console.state;
    let declared = match catalog::list_fields(&state.db).await {
        Ok(f) => f,
        Err(e) => return console.internal(e),
    };
    let attributes: Map<String, Json> = declared
        .iter()
        .filter_map(|f| {
            let raw = field(&form, &format!("field.{}", f.key))?;
            let value = typed_value(&f.field_type, raw);
            (!value.is_null()).then(|| (f.key.clone(), value))
        })
        .collect();
    if !attributes.is_empty() {
        body["attributes"] = Json::Object(attributes);
    }
    let evidence = crate::routes::evidence(state, &req);
    let input = serde_json::from_value(body)
        .map_err(|_| FieldErrors::new())
        .and_then(|body| crate::routes::subscribers::staff_upsert(body, evidence));
    let input = match input {
        Ok(input) => input,
        Err(errors) => {
            // The API names the consent fields `consent.source` and `consent.note`.
            let errors = console.field_errors(&errors);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return new_form(&console, status, Some(&form), errors, None).await;
        }
    };
    let (db, templates, policy) = (&state.db, &state.templates, &state.signup_policy());
    let (actor, ip) = (&console.principal, console.ip.clone());
    let done = service::upsert(db, actor, ip, templates, policy, &state.mail_ready, input).await;
    let problem = match done {
        Ok(done) => {
            let notice = match (done.created, done.confirmation_sent) {
                (_, true) => "confirmation_sent",
                (true, false) => "added",
                (false, false) => "updated",
            };
            let id = done.record.subscriber.id.as_str();
            return console.redirect(&format!("/people/{id}?notice={notice}"), None);
        }
        Err(UpsertSubscriberError::Invalid(errors)) => {
            let errors = console.field_errors(&errors);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return new_form(&console, status, Some(&form), errors, None).await;
        }
        Err(UpsertSubscriberError::Conflict(why)) => why,
        Err(UpsertSubscriberError::ChangedMeanwhile) => "the address changed meanwhile; try again",
        Err(UpsertSubscriberError::NotFound) => {
            return console.error(StatusCode::NOT_FOUND, "not_found")
        }
        Err(UpsertSubscriberError::Db(e)) => return console.internal(e),
    };
    let problem = state.templates.console_message(console.language, problem);
    let status = StatusCode::CONFLICT;
    new_form(
        &console,
        status,
        Some(&form),
        Value::from(()),
        Some(problem),
    )
    .await
}

fn erase_form(
    console: &Console,
    status: StatusCode,
    r: &SubscriberRecord,
    errors: Value,
) -> HttpResponse {
    console.page(
        status,
        "people/erase",
        context! { p => person(r), errors => errors },
    )
}

pub async fn erase_page(signed: Signed<WriteContacts>, path: web::Path<String>) -> HttpResponse {
    let console = signed.console;
    let id = match id_of(&console, &path) {
        Ok(id) => id,
        Err(response) => return response,
    };
    match service::get(&console.state.db, &id).await {
        Ok(record) => erase_form(&console, StatusCode::OK, &record, Value::from(())),
        Err(e) => load_error(&console, e),
    }
}

/// Erases the person once their address has been typed to confirm it.
pub async fn erase(posted: Posted<WriteContacts, Fields>, path: web::Path<String>) -> HttpResponse {
    let (console, form) = (posted.console, posted.form);
    let id = match id_of(&console, &path) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let state = &console.state;
    let record = match service::get(&state.db, &id).await {
        Ok(record) => record,
        Err(e) => return load_error(&console, e),
    };
    let typed = field(&form, "confirm").unwrap_or_default().trim();
    if !typed.eq_ignore_ascii_case(&record.subscriber.email) {
        let mut errors = FieldErrors::new();
        errors.add("confirm", "type the person's address exactly to erase them");
        let errors = console.field_errors(&errors);
        return erase_form(&console, StatusCode::UNPROCESSABLE_ENTITY, &record, errors);
    }
    let (actor, ip) = (&console.principal, console.ip.clone());
    match service::erase(&state.db, actor, ip, &state.engine.mailer, &id).await {
        Ok(()) => console.redirect("/people?notice=erased", None),
        Err(EraseError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(EraseError::Db(e)) => console.internal(e),
    }
}

/// Everything held about the person as a JSON file (the API's access export, audited alike).
pub async fn data(signed: Signed<ExportContacts>, path: web::Path<String>) -> HttpResponse {
    let console = signed.console;
    let id = match id_of(&console, &path) {
        Ok(id) => id,
        Err(response) => return response,
    };
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.clone());
    let data = match service::personal_data(db, actor, ip, &id).await {
        Ok(data) => data,
        Err(e) => return load_error(&console, e),
    };
    let body = match serde_json::to_vec_pretty(&crate::routes::subscribers::data_view(&data)) {
        Ok(body) => body,
        Err(e) => return console.internal(e),
    };
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"person-{}.json\"", id.as_str()),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

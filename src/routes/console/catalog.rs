//! Interests and custom fields: listed to every member; created, changed and deleted by editors
//! and admins through the same use cases as the API (`services::catalog`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use minijinja::{context, Value};
use serde::Deserialize;

use super::frame::NoticeQuery;
use super::frame::{Console, Posted, Signed};
use crate::auth::{ReadContacts, WriteContacts};
use crate::db::interests::{CustomField, Interest};
use crate::domain::FieldErrors;
use crate::services::catalog::{
    self as service, CreateFieldError, CreateInterestError, DeleteFieldError, DeleteInterestError,
    MoveError, UpdateFieldError, UpdateInterestError,
};

/// A notice of this area named by the query (`?notice=interest_created`), if it is one.
fn notice(query: &NoticeQuery) -> Option<String> {
    const KNOWN: &[&str] = &[
        "interest_created",
        "interest_saved",
        "interest_deleted",
        "interest_moved",
        "field_created",
        "field_saved",
        "field_deleted",
        "field_moved",
    ];
    query
        .notice
        .as_deref()
        .filter(|n| KNOWN.contains(n))
        .map(str::to_owned)
}

fn interest_value(i: &Interest) -> Value {
    context! {
        slug => &i.slug,
        name_en => &i.name_en,
        name_es => &i.name_es,
        description_en => &i.description_en,
        description_es => &i.description_es,
        public => i.public,
        updated_at => i.updated_at.to_string(),
    }
}

fn field_value(f: &CustomField) -> Value {
    let allowed: Vec<String> = f
        .allowed_values
        .as_deref()
        .and_then(|raw| serde_json::from_str(raw).ok())
        .unwrap_or_default();
    context! {
        key => &f.key,
        field_type => &f.field_type,
        allowed => allowed.join("\n"),
        allowed_list => allowed,
        public => f.public,
        updated_at => f.updated_at.to_string(),
    }
}

fn may_write(console: &Console) -> bool {
    console.principal.passes::<WriteContacts>()
}

/// One value per line, blank lines left out.
fn lines(raw: &str) -> Vec<String> {
    raw.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

// Interests

/// The create form as sent (names as the service names its errors).
#[derive(Deserialize, Default)]
pub struct InterestForm {
    #[serde(default)]
    slug: String,
    #[serde(default, rename = "name.en")]
    name_en: String,
    #[serde(default, rename = "name.es")]
    name_es: String,
    #[serde(default, rename = "description.en")]
    description_en: String,
    #[serde(default, rename = "description.es")]
    description_es: String,
    #[serde(default)]
    public: Option<String>,
}

impl InterestForm {
    fn value(&self) -> Value {
        context! {
            slug => &self.slug,
            name_en => &self.name_en,
            name_es => &self.name_es,
            description_en => &self.description_en,
            description_es => &self.description_es,
            public => self.public.is_some(),
        }
    }
}

async fn interests_page(
    console: &Console,
    status: StatusCode,
    form: Value,
    errors: Value,
    notice: Option<String>,
) -> HttpResponse {
    let all = match service::list_interests(&console.state.db).await {
        Ok(all) => all,
        Err(e) => return console.internal(e),
    };
    let interests: Vec<Value> = all.iter().map(interest_value).collect();
    console.page(
        status,
        "catalog/interests",
        context! {
            interests => interests,
            may_write => may_write(console),
            form => form,
            errors => errors,
            area_notice => notice,
        },
    )
}

pub async fn interests(
    signed: Signed<ReadContacts>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let blank = InterestForm {
        public: Some("yes".into()),
        ..InterestForm::default()
    }
    .value();
    interests_page(
        &signed.console,
        StatusCode::OK,
        blank,
        Value::from(()),
        notice(&query),
    )
    .await
}

pub async fn create_interest(posted: Posted<WriteContacts, InterestForm>) -> HttpResponse {
    let console = &posted.console;
    let form = posted.form;
    let input = service::NewInterest {
        slug: form.slug.trim().to_owned(),
        name: service::Bilingual {
            en: Some(form.name_en.clone()),
            es: Some(form.name_es.clone()),
        },
        description: service::Bilingual {
            en: Some(form.description_en.clone()),
            es: Some(form.description_es.clone()),
        },
        public: form.public.is_some(),
    };
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.as_deref());
    let errors = match service::create_interest(db, actor, ip, input).await {
        Ok(i) => {
            let path = format!("/interests/{}", i.slug);
            return console.redirect(&path, Some("interest_created"));
        }
        Err(CreateInterestError::Invalid(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
        Err(CreateInterestError::SlugTaken) => (
            StatusCode::CONFLICT,
            FieldErrors::one("slug", "an interest with this slug exists"),
        ),
        Err(e) => return console.internal(e),
    };
    let shown = console.field_errors(&errors.1);
    interests_page(console, errors.0, form.value(), shown, None).await
}

/// What an interest's or a field's page shows besides the item: the form as sent back after a
/// refusal (else as stored), the errors, a notice, and its deletion (`in_use`: refused, with the
/// count of people holding it when the member may read contacts; the page then asks for the key
/// to be typed).
struct Screen {
    status: StatusCode,
    form: Option<Value>,
    errors: Value,
    notice: Option<String>,
    in_use: Option<Option<i64>>,
}

impl Screen {
    /// The page as it is, with a notice from the change just made, if any.
    fn shown(notice: Option<String>) -> Self {
        Self {
            status: StatusCode::OK,
            form: None,
            errors: Value::from(()),
            notice,
            in_use: None,
        }
    }
}

/// Renders `catalog/{kind}.html` for one item (`kind`: interest or field); the count of people
/// holding it is `{holders}` in the template.
fn item_page(
    console: &Console,
    kind: &str,
    holders: &str,
    stored: Value,
    screen: Screen,
) -> HttpResponse {
    let mut ctx = std::collections::BTreeMap::new();
    ctx.insert(kind, stored.clone());
    ctx.insert("form", screen.form.unwrap_or(stored));
    ctx.insert("may_write", Value::from(may_write(console)));
    ctx.insert("errors", screen.errors);
    ctx.insert("area_notice", Value::from(screen.notice));
    ctx.insert("in_use", Value::from(screen.in_use.is_some()));
    ctx.insert(holders, Value::from(screen.in_use.flatten()));
    console.page(
        screen.status,
        &format!("catalog/{kind}"),
        Value::from_serialize(&ctx),
    )
}

async fn interest_page(console: &Console, slug: &str, screen: Screen) -> HttpResponse {
    match service::get_interest(&console.state.db, slug).await {
        Ok(Some(i)) => item_page(console, "interest", "members", interest_value(&i), screen),
        Ok(None) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

pub async fn interest(
    signed: Signed<ReadContacts>,
    slug: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let screen = Screen::shown(notice(&query));
    interest_page(&signed.console, &slug, screen).await
}

pub async fn update_interest(
    posted: Posted<WriteContacts, InterestForm>,
    slug: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let form = posted.form;
    let change = service::InterestChange {
        name: service::Bilingual {
            en: Some(form.name_en.clone()),
            es: Some(form.name_es.clone()),
        },
        description: service::Bilingual {
            en: Some(form.description_en.clone()),
            es: Some(form.description_es.clone()),
        },
        public: Some(form.public.is_some()),
    };
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.as_deref());
    match service::update_interest(db, actor, ip, &slug, change).await {
        Ok(i) => console.redirect(&format!("/interests/{}", i.slug), Some("interest_saved")),
        Err(UpdateInterestError::Invalid(errors)) => {
            let screen = Screen {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                form: Some(form.value()),
                errors: console.field_errors(&errors),
                notice: None,
                in_use: None,
            };
            interest_page(console, &slug, screen).await
        }
        Err(UpdateInterestError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    /// The slug typed to delete an interest subscribers have.
    #[serde(default)]
    confirm: Option<String>,
}

pub async fn delete_interest(
    posted: Posted<WriteContacts, DeleteForm>,
    slug: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let typed = posted.form.confirm.as_deref().map(str::trim);
    // Forced only when the slug is typed exactly; a mistyped one deletes nothing.
    if let Some(typed) = typed.filter(|t| *t != slug.as_str()) {
        let errors = if typed.is_empty() {
            FieldErrors::one("confirm", "is required")
        } else {
            FieldErrors::one("confirm", "does not match the slug")
        };
        let screen = Screen {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            form: None,
            errors: console.field_errors(&errors),
            notice: None,
            in_use: Some(None),
        };
        return interest_page(console, &slug, screen).await;
    }
    let force = typed.is_some();
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.as_deref());
    match service::delete_interest(db, actor, ip, &slug, force).await {
        Ok(_) => console.redirect("/interests", Some("interest_deleted")),
        Err(DeleteInterestError::InUse { members }) => {
            let screen = Screen {
                status: StatusCode::CONFLICT,
                form: None,
                errors: Value::from(()),
                notice: None,
                in_use: Some(members),
            };
            interest_page(console, &slug, screen).await
        }
        Err(DeleteInterestError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct MoveForm {
    #[serde(default)]
    direction: String,
}

impl MoveForm {
    /// `Some(true)` for up, `Some(false)` for down.
    fn up(&self) -> Option<bool> {
        match self.direction.as_str() {
            "up" => Some(true),
            "down" => Some(false),
            _ => None,
        }
    }
}

/// Moves an interest one place up or down in the order forms show them.
pub async fn move_interest(
    posted: Posted<WriteContacts, MoveForm>,
    slug: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(up) = posted.form.up() else {
        return console.error(StatusCode::BAD_REQUEST, "bad_form");
    };
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.as_deref());
    match service::move_interest(db, actor, ip, &slug, up).await {
        Ok(()) => console.redirect("/interests", Some("interest_moved")),
        Err(MoveError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

/// Moves a custom field one place up or down in the order forms and lists show them.
pub async fn move_field(
    posted: Posted<WriteContacts, MoveForm>,
    key: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(up) = posted.form.up() else {
        return console.error(StatusCode::BAD_REQUEST, "bad_form");
    };
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.as_deref());
    match service::move_field(db, actor, ip, &key, up).await {
        Ok(()) => console.redirect("/fields", Some("field_moved")),
        Err(MoveError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

// Custom fields

#[derive(Deserialize, Default)]
pub struct FieldForm {
    #[serde(default)]
    key: String,
    #[serde(default, rename = "type")]
    field_type: String,
    #[serde(default)]
    allowed_values: String,
    #[serde(default)]
    public: Option<String>,
}

impl FieldForm {
    fn value(&self) -> Value {
        context! {
            key => &self.key,
            field_type => &self.field_type,
            allowed => &self.allowed_values,
            public => self.public.is_some(),
        }
    }
}

const FIELD_TYPES: &[&str] = &["text", "number", "date", "boolean", "one_of"];

async fn fields_page(
    console: &Console,
    status: StatusCode,
    form: Value,
    errors: Value,
    notice: Option<String>,
) -> HttpResponse {
    let all = match service::list_fields(&console.state.db).await {
        Ok(all) => all,
        Err(e) => return console.internal(e),
    };
    let fields: Vec<Value> = all.iter().map(field_value).collect();
    console.page(
        status,
        "catalog/fields",
        context! {
            fields => fields,
            types => FIELD_TYPES,
            may_write => may_write(console),
            form => form,
            errors => errors,
            area_notice => notice,
        },
    )
}

pub async fn fields(signed: Signed<ReadContacts>, query: web::Query<NoticeQuery>) -> HttpResponse {
    let blank = FieldForm {
        field_type: "text".into(),
        public: Some("yes".into()),
        ..FieldForm::default()
    }
    .value();
    fields_page(
        &signed.console,
        StatusCode::OK,
        blank,
        Value::from(()),
        notice(&query),
    )
    .await
}

pub async fn create_field(posted: Posted<WriteContacts, FieldForm>) -> HttpResponse {
    let console = &posted.console;
    let form = posted.form;
    let values = lines(&form.allowed_values);
    // A one_of field needs values; another type with values is refused by the service.
    let allowed_values = (form.field_type == "one_of" || !values.is_empty()).then_some(values);
    let input = service::NewField {
        key: form.key.trim().to_owned(),
        field_type: form.field_type.clone(),
        allowed_values,
        public: form.public.is_some(),
    };
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.as_deref());
    let (status, errors) = match service::create_field(db, actor, ip, input).await {
        Ok(f) => return console.redirect(&format!("/fields/{}", f.key), Some("field_created")),
        Err(CreateFieldError::Invalid(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
        Err(CreateFieldError::KeyTaken) => (
            StatusCode::CONFLICT,
            FieldErrors::one("key", "a field with this key exists"),
        ),
        Err(e) => return console.internal(e),
    };
    let shown = console.field_errors(&errors);
    fields_page(console, status, form.value(), shown, None).await
}

async fn field_page(console: &Console, key: &str, screen: Screen) -> HttpResponse {
    match service::get_field(&console.state.db, key.to_owned()).await {
        Ok(Some(f)) => item_page(console, "field", "holders", field_value(&f), screen),
        Ok(None) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

pub async fn field(
    signed: Signed<ReadContacts>,
    key: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let screen = Screen::shown(notice(&query));
    field_page(&signed.console, &key, screen).await
}

pub async fn update_field(
    posted: Posted<WriteContacts, FieldForm>,
    key: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let form = posted.form;
    let existing = match service::get_field(&console.state.db, key.clone()).await {
        Ok(Some(f)) => f,
        Ok(None) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    // Only a one_of field has values to change; the form shows the box for no other type.
    let allowed_values = (existing.field_type == "one_of").then(|| lines(&form.allowed_values));
    let change = service::FieldChange {
        allowed_values,
        public: Some(form.public.is_some()),
    };
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.as_deref());
    match service::update_field(db, actor, ip, key.clone(), change).await {
        Ok(f) => console.redirect(&format!("/fields/{}", f.key), Some("field_saved")),
        Err(UpdateFieldError::Invalid(errors)) => {
            let screen = Screen {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                form: Some(form.value()),
                errors: console.field_errors(&errors),
                notice: None,
                in_use: None,
            };
            field_page(console, &key, screen).await
        }
        Err(UpdateFieldError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

pub async fn delete_field(
    posted: Posted<WriteContacts, DeleteForm>,
    key: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.as_deref());
    match service::delete_field(db, actor, ip, key.clone()).await {
        Ok(()) => console.redirect("/fields", Some("field_deleted")),
        Err(DeleteFieldError::InUse { holders }) => {
            let screen = Screen {
                status: StatusCode::CONFLICT,
                form: None,
                errors: Value::from(()),
                notice: None,
                in_use: Some(holders),
            };
            field_page(console, &key, screen).await
        }
        Err(DeleteFieldError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

//! Segments: the saved filters newsletters are sent to, made with a visual builder
//! (`assets/segments.js`) whose count follows every change, and which shows the JSON filter the
//! API takes. Without JavaScript the same page edits that JSON directly and counts on request.
//! Everything goes through `services::segments`, as the API does.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use minijinja::{context, Value};
use serde::Deserialize;

use super::frame::NoticeQuery;
use super::frame::{Console, Posted, Signed};
use crate::auth::{ReadContacts, ReadNewsletters, WriteNewsletters};
use crate::db::ids::SegmentId;
use crate::domain::{AttributeOp, FieldErrors};
use crate::services::catalog;
use crate::services::segments::{
    self as service, CreateSegmentError, DeleteSegmentError, GetSegmentError, PreviewSegmentError,
    SegmentInput, UpdateSegmentError,
};

/// The filter a new segment starts from: everyone who reads Spanish.
const STARTER: &str = r#"{"all":[{"language":"es"}]}"#;

fn notice(raw: Option<&str>) -> Option<String> {
    const KNOWN: &[&str] = &["created", "saved", "deleted"];
    raw.filter(|n| KNOWN.contains(n)).map(str::to_owned)
}

pub async fn list(signed: Signed<ReadNewsletters>, query: web::Query<NoticeQuery>) -> HttpResponse {
    let console = &signed.console;
    let all = match service::list(&console.state.db).await {
        Ok(all) => all,
        Err(e) => return console.internal(e),
    };
    let rows: Vec<Value> = all
        .iter()
        .map(|s| {
            context! {
                id => s.id.as_str(),
                name => &s.name,
                updated_at => s.updated_at.to_string(),
            }
        })
        .collect();
    console.page(
        StatusCode::OK,
        "segments/list",
        context! {
            segments => rows,
            may_write => console.principal.passes::<WriteNewsletters>(),
            area_notice => notice(query.notice.as_deref()),
        },
    )
}

/// The builder's form: a name and the filter as JSON (which the builder writes as it changes).
/// `action=count` counts the filter without saving it (the page without JavaScript).
#[derive(Deserialize, Default)]
pub struct SegmentForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    action: String,
}

impl SegmentForm {
    fn value(&self) -> Value {
        context! { name => &self.name, filter => pretty(&self.filter) }
    }

    /// The filter as JSON; text that is not JSON is reported at `filter`.
    fn filter(&self, errors: &mut FieldErrors) -> Option<serde_json::Value> {
        match serde_json::from_str(&self.filter) {
            Ok(value) => Some(value),
            Err(_) if self.filter.trim().is_empty() => {
                errors.add("filter", "is required");
                None
            }
            Err(_) => {
                errors.add("filter", "is not JSON");
                None
            }
        }
    }
}

/// JSON laid out for reading (text that is not JSON stays as typed).
fn pretty(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| raw.to_owned())
}

/// What the builder needs to know, in the member's language: the interests and the declared
/// fields (with their types, allowed values and the operators each type takes).
async fn builder_config(console: &Console) -> Result<String, HttpResponse> {
    let db = &console.state.db;
    let interests = catalog::list_interests(db)
        .await
        .map_err(|e| console.internal(e))?;
    let fields = catalog::list_fields(db)
        .await
        .map_err(|e| console.internal(e))?;
    let language = console.language;
    let interests: Vec<serde_json::Value> = interests
        .iter()
        .map(|i| serde_json::json!({ "slug": i.slug, "name": i.name(language) }))
        .collect();
    let fields: Vec<serde_json::Value> = fields
        .iter()
        .filter_map(|f| f.declaration())
        .map(|d| {
            let ops: Vec<&str> = AttributeOp::allowed_for(d.field_type)
                .iter()
                .map(|op| op.as_str())
                .collect();
            serde_json::json!({
                "key": d.key,
                "type": d.field_type.as_str(),
                "values": d.allowed_values,
                "ops": ops,
            })
        })
        .collect();
    // The builder's wording, from the console catalog like every other page's.
    let words = console
        .state
        .templates
        .catalog(language)
        .get("console")
        .and_then(|c| c.get("segments"))
        .and_then(|s| s.get("builder"))
        .cloned()
        .unwrap_or(toml::Value::Table(toml::Table::new()));
    let config = serde_json::json!({ "interests": interests, "fields": fields, "words": words });
    Ok(config.to_string())
}

struct Screen {
    status: StatusCode,
    id: Option<String>,
    errors: Value,
    count: Option<i64>,
    notice: Option<String>,
}

async fn editor(console: &Console, form: &SegmentForm, screen: Screen) -> HttpResponse {
    let config = match builder_config(console).await {
        Ok(config) => config,
        Err(page) => return page,
    };
    console.page(
        screen.status,
        "segments/edit",
        context! {
            id => screen.id,
            form => form.value(),
            errors => screen.errors,
            count => screen.count,
            config => config,
            may_write => console.principal.passes::<WriteNewsletters>(),
            may_count => console.principal.passes::<ReadContacts>(),
            area_notice => screen.notice,
        },
    )
}

pub async fn new_page(signed: Signed<WriteNewsletters>) -> HttpResponse {
    let form = SegmentForm {
        filter: STARTER.into(),
        ..SegmentForm::default()
    };
    let screen = Screen {
        status: StatusCode::OK,
        id: None,
        errors: Value::from(()),
        count: None,
        notice: None,
    };
    editor(&signed.console, &form, screen).await
}

fn segment_id(raw: &str) -> Option<SegmentId> {
    SegmentId::parse(raw)
}

/// A segment's page: its builder (read-only for members who may not change it) and how many
/// it reaches now.
pub async fn show(
    signed: Signed<ReadNewsletters>,
    id: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let console = &signed.console;
    let Some(id) = segment_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let counted = match service::get(&console.state.db, &console.principal, id).await {
        Ok(counted) => counted,
        Err(GetSegmentError::NotFound) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    let form = SegmentForm {
        name: counted.segment.name.clone(),
        filter: counted.segment.filter.clone(),
        action: String::new(),
    };
    let screen = Screen {
        status: StatusCode::OK,
        id: Some(counted.segment.id.as_str().to_owned()),
        errors: Value::from(()),
        count: counted.count,
        notice: notice(query.notice.as_deref()),
    };
    editor(console, &form, screen).await
}

/// The form again with what is wrong, or with the count asked for (nothing saved either way).
async fn again(
    console: &Console,
    form: &SegmentForm,
    id: Option<String>,
    errors: FieldErrors,
) -> HttpResponse {
    let mut count = None;
    let mut errors = errors;
    if errors.is_empty() && form.action == "count" {
        let mut parse = FieldErrors::new();
        if let Some(filter) = form.filter(&mut parse) {
            match service::count(&console.state.db, Some(filter)).await {
                Ok(n) => count = Some(n),
                Err(PreviewSegmentError::Invalid(e)) => parse = e,
                Err(e) => return console.internal(e),
            }
        }
        errors = parse;
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let screen = Screen {
        status,
        id,
        errors: console.field_errors(&errors),
        count,
        notice: None,
    };
    editor(console, form, screen).await
}

pub async fn create(posted: Posted<WriteNewsletters, SegmentForm>) -> HttpResponse {
    save(&posted.console, &posted.form, None).await
}

pub async fn update(
    posted: Posted<WriteNewsletters, SegmentForm>,
    id: web::Path<String>,
) -> HttpResponse {
    match segment_id(&id) {
        Some(id) => save(&posted.console, &posted.form, Some(id)).await,
        None => posted.console.error(StatusCode::NOT_FOUND, "not_found"),
    }
}

/// What became of a save.
enum Saved {
    /// Where the segment is now, and the notice to show there.
    At(SegmentId, &'static str),
    Invalid(FieldErrors),
    NotFound,
    Failed(String),
}

/// Saves the form as a new segment (`existing` none) or over one; with `action=count` (and when
/// the filter is not JSON) shows the form again instead, with its count or what is wrong.
async fn save(console: &Console, form: &SegmentForm, existing: Option<SegmentId>) -> HttpResponse {
    let shown = existing.as_ref().map(|id| id.as_str().to_owned());
    let mut errors = FieldErrors::new();
    let filter = form.filter(&mut errors);
    if form.action == "count" || !errors.is_empty() {
        return again(console, form, shown, errors).await;
    }
    let input = SegmentInput {
        name: Some(form.name.clone()),
        filter,
    };
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.as_deref());
    let saved = match existing {
        None => match service::create(db, actor, ip, input).await {
            Ok(created) => Saved::At(created.segment.id, "created"),
            Err(CreateSegmentError::Invalid(errors)) => Saved::Invalid(errors),
            Err(e) => Saved::Failed(e.to_string()),
        },
        Some(id) => match service::update(db, actor, ip, id.clone(), input).await {
            Ok(_) => Saved::At(id, "saved"),
            Err(UpdateSegmentError::Invalid(errors)) => Saved::Invalid(errors),
            Err(UpdateSegmentError::NotFound) => Saved::NotFound,
            Err(e) => Saved::Failed(e.to_string()),
        },
    };
    match saved {
        Saved::At(id, notice) => {
            console.redirect(&format!("/segments/{}", id.as_str()), Some(notice))
        }
        Saved::Invalid(errors) => again(console, form, shown, errors).await,
        Saved::NotFound => console.error(StatusCode::NOT_FOUND, "not_found"),
        Saved::Failed(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct Nothing {}

pub async fn delete(
    posted: Posted<WriteNewsletters, Nothing>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = segment_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let (db, actor, ip) = (&console.state.db, &console.principal, console.ip.as_deref());
    match service::delete(db, actor, ip, id).await {
        Ok(()) => console.redirect("/segments", Some("deleted")),
        Err(DeleteSegmentError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(DeleteSegmentError::InUse(_)) => console.error(StatusCode::CONFLICT, "segment_in_use"),
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct CountForm {
    #[serde(default)]
    filter: String,
}

/// A problem document for the builder (the console's error pages are HTML).
fn problem(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(body)
}

/// The builder's count: `{"count": n}`, or a problem document whose `errors` are keyed by the
/// filter's paths (`filter.all[1].attribute.value`) and worded in the member's language.
pub async fn count(posted: Posted<ReadContacts, CountForm>) -> HttpResponse {
    let console = &posted.console;
    let mut errors = FieldErrors::new();
    let filter = SegmentForm {
        filter: posted.form.filter.clone(),
        ..SegmentForm::default()
    }
    .filter(&mut errors);
    let refused = |errors: &FieldErrors| {
        problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({
                "title": "The filter is not valid",
                "status": 422,
                "errors": console.field_errors(errors),
            }),
        )
    };
    if !errors.is_empty() {
        return refused(&errors);
    }
    match service::count(&console.state.db, filter).await {
        Ok(count) => HttpResponse::Ok().json(serde_json::json!({ "count": count })),
        Err(PreviewSegmentError::Invalid(errors)) => refused(&errors),
        Err(e) => {
            tracing::error!(error = %e, "counting a segment failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"title": "Counting failed", "status": 500}),
            )
        }
    }
}

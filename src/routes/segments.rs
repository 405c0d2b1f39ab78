//! Saved segments (named filters over confirmed subscribers) and the preview of who a filter
//! reaches. The list leaves out `count`: each count scans the subscribers, so it is given only
//! for one segment at a time. A count is data about people (a filter narrow enough counts one
//! person), so it goes only to callers who may read contacts; for others it is left out.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::HandlerResult;
use crate::auth::{Authorized, ReadContacts, ReadNewsletters, WriteNewsletters};
use crate::db::segments::{self as store, Segment, SegmentChanges};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::SegmentFilter;
use crate::error::{ApiError, FieldErrors};
use crate::startup::AppState;

const MAX_NAME_CHARS: usize = 200;
const SAMPLE_SIZE: i64 = 10;

fn view(segment: &Segment, count: Option<i64>) -> Value {
    let mut view = json!({
        "id": segment.id,
        "name": segment.name,
        "filter": serde_json::from_str::<Value>(&segment.filter).unwrap_or(Value::Null),
        "created_at": segment.created_at.and_utc().to_rfc3339(),
        "updated_at": segment.updated_at.and_utc().to_rfc3339(),
    });
    if let Some(count) = count {
        view["count"] = count.into();
    }
    view
}

fn check_name(errors: &mut FieldErrors, name: Option<String>, required: bool) -> Option<String> {
    let name = name.map(|n| n.trim().to_owned());
    let message = match name.as_deref() {
        None if required => Some("is required"),
        None => None,
        Some("") => Some("must not be empty"),
        Some(n) if n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) => {
            Some("must be at most 200 characters of text on one line")
        }
        Some(_) => None,
    };
    if let Some(message) = message {
        errors
            .entry("name".into())
            .or_default()
            .push(message.into());
    }
    name
}

/// Parses the filter (`None` when it does not parse; the reasons go to `errors`).
fn parse_filter(errors: &mut FieldErrors, raw: Option<&Value>) -> Option<SegmentFilter> {
    let Some(raw) = raw else {
        errors
            .entry("filter".into())
            .or_default()
            .push("is required".into());
        return None;
    };
    SegmentFilter::parse(raw).map_err(|e| errors.extend(e)).ok()
}

/// Checks the filter against the declared fields and interests, then (when `count`) counts
/// whom it reaches.
fn check_and_count(
    conn: &mut AnyConnection,
    filter: &SegmentFilter,
    backend: db::Backend,
    count: bool,
) -> Result<Result<Option<i64>, FieldErrors>, DbError> {
    let fields = db::interests::list_field_declarations(conn)?;
    let interests: Vec<String> = db::interests::list_interests(conn)?
        .into_iter()
        .map(|i| i.slug)
        .collect();
    if let Err(errors) = filter.check(&fields, &interests) {
        return Ok(Err(errors));
    }
    if !count {
        return Ok(Ok(None));
    }
    Ok(Ok(Some(store::count_recipients(conn, filter, backend)?)))
}

/// Checks a parsed filter (when there is one) and answers 422 with every error found; counts
/// whom it reaches when `count`.
async fn validate(
    state: &AppState,
    mut errors: FieldErrors,
    filter: Option<SegmentFilter>,
    count: bool,
) -> Result<(Option<SegmentFilter>, Option<i64>), ApiError> {
    let mut counted = None;
    if let Some(filter) = filter.clone() {
        let backend = state.db.backend();
        let checked = state
            .db
            .run(move |conn| check_and_count(conn, &filter, backend, count))
            .await?;
        match checked {
            Ok(n) => counted = n,
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok((filter, counted))
    } else {
        Err(ApiError::Validation(errors))
    }
}

pub async fn list_segments(
    _auth: Authorized<ReadNewsletters>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let all = state
        .db
        .run(|conn| store::list_segments(conn).map_err(DbError::from))
        .await?;
    let data: Vec<Value> = all.iter().map(|s| view(s, None)).collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data })))
}

/// The segment and (when `count`) its current count, or None.
async fn load(
    state: &AppState,
    id: String,
    count: bool,
) -> Result<Option<(Segment, Option<i64>)>, ApiError> {
    let backend = state.db.backend();
    state
        .db
        .run(move |conn| -> Result<_, ApiError> {
            let Some(segment) = store::find_segment(conn, &id)? else {
                return Ok(None);
            };
            let counted = if count {
                let filter = segment.parsed_filter()?;
                Some(store::count_recipients(conn, &filter, backend)?)
            } else {
                None
            };
            Ok(Some((segment, counted)))
        })
        .await
}

pub async fn get_segment(
    auth: Authorized<ReadNewsletters>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let count = auth.principal.may_read_contacts();
    let found = load(&state, id.into_inner().to_string(), count).await?;
    found
        .map(|(segment, count)| HttpResponse::Ok().json(view(&segment, count)))
        .ok_or(ApiError::NotFound)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentBody {
    name: Option<String>,
    filter: Option<Value>,
}

pub async fn create_segment(
    auth: Authorized<WriteNewsletters>,
    body: Result<super::json::Json<SegmentBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = FieldErrors::new();
    let name = check_name(&mut errors, body.name, true);
    let filter = parse_filter(&mut errors, body.filter.as_ref());
    let may_count = auth.principal.may_read_contacts();
    let (filter, count) = validate(&state, errors, filter, may_count).await?;
    let (Some(name), Some(filter)) = (name, filter) else {
        return Err(ApiError::BadRequest("name and filter are required".into()));
    };
    let now = db::now();
    let segment = Segment {
        id: db::new_id(),
        name,
        filter: filter.to_json().to_string(),
        created_at: now,
        updated_at: now,
    };
    let stored = segment.clone();
    state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            store::insert_segment(conn, &stored)?;
            Ok(auth.audit(conn, "segment.create", "segment", Some(&stored.id))?)
        })
        .await?;
    Ok(HttpResponse::Created().json(view(&segment, count)))
}

pub async fn update_segment(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<uuid::Uuid>,
    body: Result<super::json::Json<SegmentBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = FieldErrors::new();
    let name = check_name(&mut errors, body.name, false);
    let filter = match &body.filter {
        Some(raw) => parse_filter(&mut errors, Some(raw)),
        None => None,
    };
    let (filter, _) = validate(&state, errors, filter, false).await?;
    let may_count = auth.principal.may_read_contacts();
    let id = id.into_inner().to_string();
    let changes = SegmentChanges {
        name,
        filter: filter.map(|f| f.to_json().to_string()),
        updated_at: db::now(),
    };
    let target = id.clone();
    let updated = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            let updated = store::update_segment(conn, &target, &changes)?;
            if updated {
                auth.audit(conn, "segment.update", "segment", Some(&target))?;
            }
            Ok(updated)
        })
        .await?;
    if !updated {
        return Err(ApiError::NotFound);
    }
    let found = load(&state, id, may_count).await?;
    found
        .map(|(segment, count)| HttpResponse::Ok().json(view(&segment, count)))
        .ok_or(ApiError::NotFound)
}

/// Refused (409) while a newsletter that may still send uses the segment; finished newsletters
/// forget it, in the same transaction.
pub async fn delete_segment(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = id.into_inner().to_string();
    let outcome = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            if store::lock_segment(conn, &id)?.is_none() {
                return Ok(None);
            }
            let users = store::count_newsletters_using(conn, &id)?;
            if users > 0 {
                return Ok(Some(Err(users)));
            }
            store::detach_finished_newsletters(conn, &id)?;
            store::delete_segment(conn, &id)?;
            auth.audit(conn, "segment.delete", "segment", Some(&id))?;
            Ok(Some(Ok(())))
        })
        .await?;
    match outcome {
        None => Err(ApiError::NotFound),
        Some(Err(users)) => Err(ApiError::Conflict(format!(
            "{users} newsletter(s) that have not finished sending use this segment"
        ))),
        Some(Ok(())) => Ok(HttpResponse::NoContent().finish()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    filter: Option<Value>,
}

/// How many confirmed subscribers a filter reaches, and a few of them (newest first).
pub async fn preview_segment(
    _auth: Authorized<ReadContacts>,
    body: Result<super::json::Json<PreviewBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = FieldErrors::new();
    let filter = parse_filter(&mut errors, body.filter.as_ref());
    let (Some(filter), Some(count)) = validate(&state, errors, filter, true).await? else {
        return Err(ApiError::field("filter", "is required"));
    };
    let backend = state.db.backend();
    let sample = state
        .db
        .run(move |conn| {
            store::sample_recipients(conn, &filter, backend, SAMPLE_SIZE).map_err(DbError::from)
        })
        .await?;
    let sample: Vec<Value> = sample
        .into_iter()
        .map(|s| json!({ "id": s.id, "email": s.email, "name": s.name, "language": s.language }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "count": count, "sample": sample })))
}

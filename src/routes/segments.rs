//! Saved segments (named filters over confirmed subscribers) and the preview of who a filter
//! reaches. The list leaves out `count`: each count scans the subscribers, so it is given only
//! for one segment at a time. A count is data about people (a filter narrow enough counts one
//! person), so it goes only to callers who may read contacts; for others it is left out.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::Value;

use super::HandlerResult;
use crate::auth::{Authorized, ReadContacts, ReadNewsletters, WriteNewsletters};
use crate::db::ids::SegmentId;
use crate::error::ApiError;
use crate::services::segments::{
    self as service, Counted, CreateSegmentError, DeleteSegmentError, GetSegmentError,
    PreviewSegmentError, SegmentInput, UpdateSegmentError,
};
use crate::state::AppState;
use crate::views::segments::{SegmentPreviewView, SegmentView};
use crate::views::List;

fn counted_view(counted: &Counted) -> SegmentView<'_> {
    SegmentView::new(&counted.segment, counted.count)
}

impl From<CreateSegmentError> for ApiError {
    fn from(e: CreateSegmentError) -> Self {
        match e {
            CreateSegmentError::Invalid(errors) => Self::Validation(errors),
            CreateSegmentError::Db(e) => e.into(),
        }
    }
}

impl From<UpdateSegmentError> for ApiError {
    fn from(e: UpdateSegmentError) -> Self {
        match e {
            UpdateSegmentError::Invalid(errors) => Self::Validation(errors),
            UpdateSegmentError::NotFound => Self::NotFound,
            UpdateSegmentError::Db(e) => e.into(),
            UpdateSegmentError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<GetSegmentError> for ApiError {
    fn from(e: GetSegmentError) -> Self {
        match e {
            GetSegmentError::NotFound => Self::NotFound,
            GetSegmentError::Db(e) => e.into(),
            GetSegmentError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<DeleteSegmentError> for ApiError {
    fn from(e: DeleteSegmentError) -> Self {
        match e {
            DeleteSegmentError::NotFound => Self::NotFound,
            DeleteSegmentError::InUse(_) => Self::Conflict(e.to_string()),
            DeleteSegmentError::Db(e) => e.into(),
        }
    }
}

impl From<PreviewSegmentError> for ApiError {
    fn from(e: PreviewSegmentError) -> Self {
        match e {
            PreviewSegmentError::Invalid(errors) => Self::Validation(errors),
            PreviewSegmentError::Db(e) => e.into(),
        }
    }
}

pub async fn list_segments(
    _auth: Authorized<ReadNewsletters>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let all = service::list(&state.db).await?;
    let data = all.iter().map(|s| SegmentView::new(s, None));
    Ok(HttpResponse::Ok().json(List::new(data)))
}

pub async fn get_segment(
    auth: Authorized<ReadNewsletters>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let found = service::get(&state.db, &auth.principal, SegmentId::from(id.into_inner())).await?;
    Ok(HttpResponse::Ok().json(counted_view(&found)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentBody {
    name: Option<String>,
    filter: Option<Value>,
}

impl From<SegmentBody> for SegmentInput {
    fn from(body: SegmentBody) -> Self {
        Self {
            name: body.name,
            filter: body.filter,
        }
    }
}

pub async fn create_segment(
    auth: Authorized<WriteNewsletters>,
    body: Result<super::json::Json<SegmentBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let input = body.map_err(ApiError::from_extractor)?.into_inner().into();
    let (who, ip) = (&auth.principal, auth.ip.as_deref());
    let created = service::create(&state.db, who, ip, input).await?;
    Ok(HttpResponse::Created().json(counted_view(&created)))
}

pub async fn update_segment(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<uuid::Uuid>,
    body: Result<super::json::Json<SegmentBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let input = body.map_err(ApiError::from_extractor)?.into_inner().into();
    let (who, ip) = (&auth.principal, auth.ip.as_deref());
    let id = SegmentId::from(id.into_inner());
    let updated = service::update(&state.db, who, ip, id, input).await?;
    Ok(HttpResponse::Ok().json(counted_view(&updated)))
}

/// Refused (409) while a newsletter that may still send uses the segment.
pub async fn delete_segment(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let (who, ip) = (&auth.principal, auth.ip.as_deref());
    service::delete(&state.db, who, ip, SegmentId::from(id.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
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
    let preview = service::preview(&state.db, body.filter).await?;
    Ok(HttpResponse::Ok().json(SegmentPreviewView {
        count: preview.count,
        sample: preview.sample.iter().map(Into::into).collect(),
    }))
}

/// How many confirmed subscribers a filter reaches: the count alone, for a segment builder that
/// asks at every change.
pub async fn count_segment(
    _auth: Authorized<ReadContacts>,
    body: Result<super::json::Json<PreviewBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let count = service::count(&state.db, body.filter).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "count": count })))
}

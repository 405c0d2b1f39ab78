//! Custom fields: the attributes staff declare, and which of them public forms may set.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::HandlerResult;
use crate::auth::{Authorized, ReadContacts, WriteContacts};
use crate::error::ApiError;
use crate::services::catalog::{self as service, DeleteFieldError, UpdateFieldError};
use crate::state::AppState;
use crate::views::catalog::FieldView;
use crate::views::List;

impl From<service::CreateFieldError> for ApiError {
    fn from(e: service::CreateFieldError) -> Self {
        match e {
            service::CreateFieldError::Invalid(errors) => Self::Validation(errors),
            service::CreateFieldError::KeyTaken => {
                Self::Conflict("a field with this key exists".into())
            }
            service::CreateFieldError::Db(e) => e.into(),
        }
    }
}

impl From<UpdateFieldError> for ApiError {
    fn from(e: UpdateFieldError) -> Self {
        match e {
            UpdateFieldError::Invalid(errors) => Self::Validation(errors),
            UpdateFieldError::NotFound => Self::NotFound,
            e @ UpdateFieldError::NotOneOf { .. } => Self::Conflict(e.to_string()),
            UpdateFieldError::Db(e) => e.into(),
        }
    }
}

impl From<DeleteFieldError> for ApiError {
    fn from(e: DeleteFieldError) -> Self {
        match e {
            DeleteFieldError::NotFound => Self::NotFound,
            DeleteFieldError::InUse {
                holders: Some(holders),
            } => Self::Conflict(format!("{holders} subscribers have a value for this field")),
            DeleteFieldError::InUse { holders: None } => {
                Self::Conflict("subscribers have a value for this field".into())
            }
            DeleteFieldError::Db(e) => e.into(),
        }
    }
}

pub async fn list_fields(
    _auth: Authorized<ReadContacts>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let all = service::list_fields(&state.db).await?;
    Ok(HttpResponse::Ok().json(List::new(all.iter().map(FieldView::from))))
}

pub async fn get_field(
    _auth: Authorized<ReadContacts>,
    key: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    service::get_field(&state.db, key.into_inner())
        .await?
        .map(|f| HttpResponse::Ok().json(FieldView::from(&f)))
        .ok_or(ApiError::NotFound)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewField {
    key: String,
    #[serde(rename = "type")]
    field_type: String,
    #[serde(default)]
    allowed_values: Option<Vec<String>>,
    #[serde(default)]
    public: bool,
}

pub async fn create_field(
    auth: Authorized<WriteContacts>,
    body: Result<super::json::Json<NewField>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let input = service::NewField {
        key: body.key,
        field_type: body.field_type,
        allowed_values: body.allowed_values,
        public: body.public,
    };
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let field = service::create_field(&state.db, actor, ip, input).await?;
    Ok(HttpResponse::Created().json(FieldView::from(&field)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPatch {
    allowed_values: Option<Vec<String>>,
    public: Option<bool>,
}

pub async fn update_field(
    auth: Authorized<WriteContacts>,
    key: web::Path<String>,
    body: Result<super::json::Json<FieldPatch>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let change = service::FieldChange {
        allowed_values: body.allowed_values,
        public: body.public,
    };
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let field = service::update_field(&state.db, actor, ip, key.into_inner(), change).await?;
    Ok(HttpResponse::Ok().json(FieldView::from(&field)))
}

/// Refused (409) while any subscriber holds a value for the field (how many, only to a caller
/// who may read contacts).
pub async fn delete_field(
    auth: Authorized<WriteContacts>,
    key: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    service::delete_field(&state.db, actor, ip, key.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

//! Custom fields: the attributes staff declare, and which of them public forms may set.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::HandlerResult;
use crate::auth::{Authorized, ReadContacts, WriteContacts};
use crate::db::interests::{self as store, CustomField, CustomFieldChanges};
use crate::db::{self, DbError};
use crate::domain::FieldType;
use crate::error::{ApiError, FieldErrors};
use crate::startup::AppState;

#[derive(Serialize)]
struct FieldView {
    key: String,
    #[serde(rename = "type")]
    field_type: String,
    allowed_values: Option<Vec<String>>,
    public: bool,
    created_at: String,
    updated_at: String,
}

fn view(f: CustomField) -> FieldView {
    FieldView {
        key: f.key,
        field_type: f.field_type,
        allowed_values: f.allowed_values.and_then(|v| serde_json::from_str(&v).ok()),
        public: f.public,
        created_at: f.created_at.and_utc().to_rfc3339(),
        updated_at: f.updated_at.and_utc().to_rfc3339(),
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && key.as_bytes()[0].is_ascii_lowercase()
}

/// `one_of` needs 1–100 distinct values of at most 100 characters; other types take none.
fn check_allowed(
    errors: &mut FieldErrors,
    field_type: FieldType,
    values: Option<Vec<String>>,
) -> Option<String> {
    match (field_type, values) {
        (FieldType::OneOf, Some(values)) => {
            // As the document states them: at most 100 values as sent, each at most 100
            // characters as sent and not blank once trimmed.
            let sent = values.len();
            let mut clean: Vec<String> = Vec::new();
            for raw in values {
                let v = raw.trim().to_owned();
                if v.is_empty() || raw.chars().count() > 100 || v.chars().any(char::is_control) {
                    errors
                        .entry("allowed_values".into())
                        .or_default()
                        .push("values are 1 to 100 characters".into());
                } else if !clean.contains(&v) {
                    clean.push(v);
                }
            }
            if clean.is_empty() || sent > 100 {
                errors
                    .entry("allowed_values".into())
                    .or_default()
                    .push("one_of needs 1 to 100 values".into());
            }
            serde_json::to_string(&clean).ok()
        }
        (FieldType::OneOf, None) => {
            errors
                .entry("allowed_values".into())
                .or_default()
                .push("one_of needs allowed_values".into());
            None
        }
        (_, Some(_)) => {
            errors
                .entry("allowed_values".into())
                .or_default()
                .push("only one_of fields take allowed_values".into());
            None
        }
        (_, None) => None,
    }
}

pub async fn list_fields(
    _auth: Authorized<ReadContacts>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let all = state
        .db
        .run(|conn| store::list_custom_fields(conn).map_err(DbError::from))
        .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "data": all.into_iter().map(view).collect::<Vec<_>>() })))
}

pub async fn get_field(
    _auth: Authorized<ReadContacts>,
    key: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let key = key.into_inner();
    if !valid_key(&key) {
        return Err(ApiError::NotFound);
    }
    let found = state
        .db
        .run(move |conn| store::find_custom_field(conn, &key).map_err(DbError::from))
        .await?;
    found
        .map(|f| HttpResponse::Ok().json(view(f)))
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
    let mut errors = FieldErrors::new();
    if !valid_key(&body.key) {
        errors
            .entry("key".into())
            .or_default()
            .push("use 1-64 lower-case letters, digits or _, starting with a letter".into());
    }
    let field_type = FieldType::parse(&body.field_type);
    let allowed = match field_type {
        Some(t) => check_allowed(&mut errors, t, body.allowed_values),
        None => {
            errors
                .entry("type".into())
                .or_default()
                .push("must be text, number, date, boolean or one_of".into());
            None
        }
    };
    let Some(field_type) = field_type.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let now = db::now();
    let field = CustomField {
        key: body.key,
        field_type: field_type.as_str().to_owned(),
        allowed_values: allowed,
        public: body.public,
        created_at: now,
        updated_at: now,
    };
    let stored = field.clone();
    let result = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            store::insert_custom_field(conn, &stored)?;
            Ok(auth.audit(conn, "field.create", "field", Some(&stored.key))?)
        })
        .await;
    match result {
        Ok(()) => Ok(HttpResponse::Created().json(view(field))),
        Err(e) if e.is_unique_violation() => {
            Err(ApiError::Conflict("a field with this key exists".into()))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPatch {
    allowed_values: Option<Vec<String>>,
    public: Option<bool>,
}

/// The type of a field never changes (values already stored depend on it).
pub async fn update_field(
    auth: Authorized<WriteContacts>,
    key: web::Path<String>,
    body: Result<super::json::Json<FieldPatch>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let key = key.into_inner();
    if !valid_key(&key) {
        return Err(ApiError::NotFound);
    }
    let lookup = key.clone();
    let existing = state
        .db
        .run(move |conn| store::find_custom_field(conn, &lookup).map_err(DbError::from))
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut errors = FieldErrors::new();
    let field_type = FieldType::parse(&existing.field_type).ok_or(ApiError::NotFound)?;
    // The values belong to the field's type, which never changes: a conflict with the field.
    if field_type != FieldType::OneOf && body.allowed_values.is_some() {
        return Err(ApiError::Conflict(format!(
            "only one_of fields take allowed_values; {key} is a {} field",
            existing.field_type
        )));
    }
    let allowed = body
        .allowed_values
        .map(|values| check_allowed(&mut errors, field_type, Some(values)));
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let changes = CustomFieldChanges {
        allowed_values: allowed,
        public: body.public,
        updated_at: Some(db::now()),
    };
    let updated = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            if store::update_custom_field(conn, &key, &changes)? {
                auth.audit(conn, "field.update", "field", Some(&key))?;
            }
            Ok(store::find_custom_field(conn, &key)?)
        })
        .await?;
    updated
        .map(|f| HttpResponse::Ok().json(view(f)))
        .ok_or(ApiError::NotFound)
}

/// Refused (409) while any subscriber holds a value for the field (how many, only to a caller
/// who may read contacts).
pub async fn delete_field(
    auth: Authorized<WriteContacts>,
    key: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let key = key.into_inner();
    if !valid_key(&key) {
        return Err(ApiError::NotFound);
    }
    let may_count = auth.principal.may_read_contacts();
    let outcome = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            if store::find_custom_field(conn, &key)?.is_none() {
                return Ok(None);
            }
            let holders = store::count_field_values(conn, &key)?;
            if holders > 0 {
                return Ok(Some(Err(holders)));
            }
            store::delete_custom_field(conn, &key)?;
            auth.audit(conn, "field.delete", "field", Some(&key))?;
            Ok(Some(Ok(())))
        })
        .await?;
    match outcome {
        None => Err(ApiError::NotFound),
        Some(Err(holders)) if may_count => Err(ApiError::Conflict(format!(
            "{holders} subscribers have a value for this field"
        ))),
        Some(Err(_)) => Err(ApiError::Conflict(
            "subscribers have a value for this field".into(),
        )),
        Some(Ok(())) => Ok(HttpResponse::NoContent().finish()),
    }
}

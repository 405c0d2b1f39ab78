//! Interests staff offer on signup forms, named and described in English and Spanish.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::HandlerResult;
use crate::auth::{Authorized, ReadContacts, WriteContacts};
use crate::db::interests::{self as store, Interest, InterestChanges};
use crate::db::{self, DbError};
use crate::domain::InterestSlug;
use crate::error::{ApiError, FieldErrors};
use crate::startup::AppState;

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Bilingual {
    #[serde(default)]
    en: Option<String>,
    #[serde(default)]
    es: Option<String>,
}

#[derive(Serialize)]
struct InterestView {
    slug: String,
    name: Bilingual,
    description: Bilingual,
    public: bool,
    created_at: String,
    updated_at: String,
}

fn view(i: Interest) -> InterestView {
    InterestView {
        slug: i.slug,
        name: Bilingual {
            en: Some(i.name_en),
            es: Some(i.name_es),
        },
        description: Bilingual {
            en: Some(i.description_en),
            es: Some(i.description_es),
        },
        public: i.public,
        created_at: i.created_at.and_utc().to_rfc3339(),
        updated_at: i.updated_at.and_utc().to_rfc3339(),
    }
}

/// Checks a name or description text: trimmed, no control characters, at most `max` characters.
fn text(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<String>,
    max: usize,
    required: bool,
) -> Option<String> {
    // The length is counted as sent, as the document's maxLength counts it.
    let too_long = value.as_deref().is_some_and(|v| v.chars().count() > max);
    let value = value.map(|v| v.trim().to_owned());
    let empty = value.as_deref().is_none_or(str::is_empty);
    if empty && required {
        errors
            .entry(field.into())
            .or_default()
            .push("is required".into());
    } else if too_long
        || value
            .as_deref()
            .is_some_and(|v| v.chars().any(|c| c.is_control() && c != '\n'))
    {
        errors
            .entry(field.into())
            .or_default()
            .push(format!("must be at most {max} characters of text"));
    }
    value
}

pub async fn list_interests(
    _auth: Authorized<ReadContacts>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let all = state
        .db
        .run(|conn| store::list_interests(conn).map_err(DbError::from))
        .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "data": all.into_iter().map(view).collect::<Vec<_>>() })))
}

pub async fn get_interest(
    _auth: Authorized<ReadContacts>,
    slug: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let slug = InterestSlug::parse(&slug)
        .map_err(|_| ApiError::NotFound)?
        .as_str()
        .to_owned();
    let found = state
        .db
        .run(move |conn| store::find_interest(conn, &slug).map_err(DbError::from))
        .await?;
    found
        .map(|i| HttpResponse::Ok().json(view(i)))
        .ok_or(ApiError::NotFound)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInterest {
    slug: String,
    name: Bilingual,
    #[serde(default)]
    description: Bilingual,
    #[serde(default = "yes")]
    public: bool,
}

fn yes() -> bool {
    true
}

pub async fn create_interest(
    auth: Authorized<WriteContacts>,
    body: Result<super::json::Json<NewInterest>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = FieldErrors::new();
    let slug = InterestSlug::parse(&body.slug)
        .map_err(|_| {
            errors
                .entry("slug".into())
                .or_default()
                .push("use 1-64 lower-case letters, digits, - or _".into())
        })
        .ok();
    let name_en = text(&mut errors, "name.en", body.name.en, 100, true);
    let name_es = text(&mut errors, "name.es", body.name.es, 100, true);
    let description_en = text(
        &mut errors,
        "description.en",
        body.description.en,
        1000,
        false,
    );
    let description_es = text(
        &mut errors,
        "description.es",
        body.description.es,
        1000,
        false,
    );
    let Some(slug) = slug.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let now = db::now();
    let interest = Interest {
        slug: slug.as_str().to_owned(),
        name_en: name_en.unwrap_or_default(),
        name_es: name_es.unwrap_or_default(),
        description_en: description_en.unwrap_or_default(),
        description_es: description_es.unwrap_or_default(),
        public: body.public,
        created_at: now,
        updated_at: now,
    };
    let stored = interest.clone();
    let result = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            store::insert_interest(conn, &stored)?;
            Ok(auth.audit(conn, "interest.create", "interest", Some(&stored.slug))?)
        })
        .await;
    match result {
        Ok(()) => Ok(HttpResponse::Created().json(view(interest))),
        Err(e) if e.is_unique_violation() => Err(ApiError::Conflict(
            "an interest with this slug exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterestPatch {
    #[serde(default)]
    name: Bilingual,
    #[serde(default)]
    description: Bilingual,
    public: Option<bool>,
}

pub async fn update_interest(
    auth: Authorized<WriteContacts>,
    slug: web::Path<String>,
    body: Result<super::json::Json<InterestPatch>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let mut errors = FieldErrors::new();
    let changes = InterestChanges {
        name_en: text(&mut errors, "name.en", body.name.en, 100, false).filter(|s| !s.is_empty()),
        name_es: text(&mut errors, "name.es", body.name.es, 100, false).filter(|s| !s.is_empty()),
        description_en: text(
            &mut errors,
            "description.en",
            body.description.en,
            1000,
            false,
        ),
        description_es: text(
            &mut errors,
            "description.es",
            body.description.es,
            1000,
            false,
        ),
        public: body.public,
        updated_at: Some(db::now()),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let slug = InterestSlug::parse(&slug)
        .map_err(|_| ApiError::NotFound)?
        .as_str()
        .to_owned();
    let updated = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            if store::update_interest(conn, &slug, &changes)? {
                auth.audit(conn, "interest.update", "interest", Some(&slug))?;
            }
            Ok(store::find_interest(conn, &slug)?)
        })
        .await?;
    updated
        .map(|i| HttpResponse::Ok().json(view(i)))
        .ok_or(ApiError::NotFound)
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

/// Refuses (409) while subscribers have the interest, unless `?force=true`: then their
/// memberships are removed with it, and the answer says how many. How many people have it is
/// data about people: a caller who may not read contacts is told neither number.
pub async fn delete_interest(
    auth: Authorized<WriteContacts>,
    slug: web::Path<String>,
    query: Result<web::Query<DeleteQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let force = query.map_err(ApiError::from_extractor)?.force;
    let may_count = auth.principal.may_read_contacts();
    let slug = InterestSlug::parse(&slug)
        .map_err(|_| ApiError::NotFound)?
        .as_str()
        .to_owned();
    let outcome = state
        .db
        .write(move |conn| {
            db::write_transaction(conn, |conn| -> Result<_, diesel::result::Error> {
                if store::find_interest(conn, &slug)?.is_none() {
                    return Ok(None);
                }
                let members = store::count_members(conn, &slug)?;
                if members > 0 && !force {
                    return Ok(Some(Err(members)));
                }
                store::delete_interest(conn, &slug, db::now())?;
                auth.audit(conn, "interest.delete", "interest", Some(&slug))?;
                Ok(Some(Ok(members)))
            })
            .map_err(DbError::from)
        })
        .await?;
    match outcome {
        None => Err(ApiError::NotFound),
        Some(Err(members)) => Err(ApiError::Conflict(format!(
            "{} this interest; DELETE with ?force=true removes it from them too",
            if may_count {
                format!("{members} subscribers have")
            } else {
                "subscribers have".to_owned()
            }
        ))),
        Some(Ok(removed)) => {
            let mut body = serde_json::json!({ "deleted": true });
            if may_count {
                body["memberships_removed"] = removed.into();
            }
            Ok(HttpResponse::Ok().json(body))
        }
    }
}

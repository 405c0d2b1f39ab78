//! Interests staff offer on signup forms, named and described in English and Spanish.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::HandlerResult;
use crate::auth::{Authorized, ReadContacts, WriteContacts};
use crate::error::ApiError;
use crate::services::catalog::{self as service, DeleteInterestError};
use crate::state::AppState;
use crate::views::catalog::{DeletedInterestView, InterestView};
use crate::views::List;

impl From<service::CreateInterestError> for ApiError {
    fn from(e: service::CreateInterestError) -> Self {
        match e {
            service::CreateInterestError::Invalid(errors) => Self::Validation(errors),
            service::CreateInterestError::SlugTaken => {
                Self::Conflict("an interest with this slug exists".into())
            }
            service::CreateInterestError::Db(e) => e.into(),
        }
    }
}

impl From<service::UpdateInterestError> for ApiError {
    fn from(e: service::UpdateInterestError) -> Self {
        match e {
            service::UpdateInterestError::Invalid(errors) => Self::Validation(errors),
            service::UpdateInterestError::NotFound => Self::NotFound,
            service::UpdateInterestError::Db(e) => e.into(),
        }
    }
}

impl From<DeleteInterestError> for ApiError {
    fn from(e: DeleteInterestError) -> Self {
        match e {
            DeleteInterestError::NotFound => Self::NotFound,
            DeleteInterestError::InUse { members } => Self::Conflict(format!(
                "{} this interest; DELETE with ?force=true removes it from them too",
                match members {
                    Some(members) => format!("{members} subscribers have"),
                    None => "subscribers have".to_owned(),
                }
            )),
            DeleteInterestError::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Bilingual {
    #[serde(default)]
    en: Option<String>,
    #[serde(default)]
    es: Option<String>,
}

impl From<Bilingual> for service::Bilingual {
    fn from(b: Bilingual) -> Self {
        Self { en: b.en, es: b.es }
    }
}

pub async fn list_interests(
    _auth: Authorized<ReadContacts>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let all = service::list_interests(&state.db).await?;
    Ok(HttpResponse::Ok().json(List::new(all.iter().map(InterestView::from))))
}

pub async fn get_interest(
    _auth: Authorized<ReadContacts>,
    slug: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    service::get_interest(&state.db, &slug)
        .await?
        .map(|i| HttpResponse::Ok().json(InterestView::from(&i)))
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
    let input = service::NewInterest {
        slug: body.slug,
        name: body.name.into(),
        description: body.description.into(),
        public: body.public,
    };
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let interest = service::create_interest(&state.db, actor, ip, input).await?;
    Ok(HttpResponse::Created().json(InterestView::from(&interest)))
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
    let change = service::InterestChange {
        name: body.name.into(),
        description: body.description.into(),
        public: body.public,
    };
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let interest = service::update_interest(&state.db, actor, ip, &slug, change).await?;
    Ok(HttpResponse::Ok().json(InterestView::from(&interest)))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

/// Refuses (409) while subscribers have the interest, unless `?force=true`: then their
/// memberships are removed with it, and the answer says how many (to a caller who may read
/// contacts).
pub async fn delete_interest(
    auth: Authorized<WriteContacts>,
    slug: web::Path<String>,
    query: Result<web::Query<DeleteQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let force = query.map_err(ApiError::from_extractor)?.force;
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let deleted = service::delete_interest(&state.db, actor, ip, &slug, force).await?;
    Ok(HttpResponse::Ok().json(DeletedInterestView {
        deleted: true,
        memberships_removed: deleted.memberships_removed,
    }))
}

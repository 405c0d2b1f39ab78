//! Staff sign-in, staff accounts and invitations, and API keys for scripts.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::HandlerResult;
use crate::auth::{AdminOnly, AnyStaff, Authorized};
use crate::db::ids::{ApiKeyId, StaffId};
use crate::db::staff::InvitationId;
use crate::error::ApiError;
use crate::services::staff::invitations::{self, InvitationError, InviteError};
use crate::services::staff::{self as service, Creator};
use crate::state::AppState;
use crate::views::staff::{
    ApiKeyView, AuditEntryView, CreatedApiKeyView, InvitationView, StaffView, TokenView,
};
use crate::views::{BeforePage, List};

impl From<service::CreateMemberError> for ApiError {
    fn from(e: service::CreateMemberError) -> Self {
        use service::CreateMemberError as E;
        match e {
            E::Invalid(errors) => Self::Validation(errors),
            E::EmailTaken => Self::Conflict("a staff account with this email exists".into()),
            E::Db(e) => e.into(),
            E::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<service::UpdateMemberError> for ApiError {
    fn from(e: service::UpdateMemberError) -> Self {
        use service::UpdateMemberError as E;
        match e {
            E::Invalid(errors) => Self::Validation(errors),
            E::OwnAccount => {
                Self::Conflict("an admin cannot disable or demote their own account".into())
            }
            E::NotFound => Self::NotFound,
            E::Db(e) => e.into(),
        }
    }
}

impl From<service::SignInError> for ApiError {
    fn from(e: service::SignInError) -> Self {
        use service::SignInError as E;
        match e {
            E::Refused => Self::Unauthorized,
            E::TooManyAttempts { retry_after_secs } => Self::TooManyRequests { retry_after_secs },
            E::Db(e) => e.into(),
            E::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<service::ChangePasswordError> for ApiError {
    fn from(e: service::ChangePasswordError) -> Self {
        use service::ChangePasswordError as E;
        match e {
            E::Invalid(errors) => Self::Validation(errors),
            E::NotStaff => Self::Forbidden,
            E::NoAccount => Self::Unauthorized,
            E::TooManyAttempts { retry_after_secs } => Self::TooManyRequests { retry_after_secs },
            E::Db(e) => e.into(),
            E::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<service::CreateKeyError> for ApiError {
    fn from(e: service::CreateKeyError) -> Self {
        match e {
            service::CreateKeyError::Invalid(errors) => Self::Validation(errors),
            service::CreateKeyError::Db(e) => e.into(),
        }
    }
}

impl From<service::RevokeKeyError> for ApiError {
    fn from(e: service::RevokeKeyError) -> Self {
        match e {
            service::RevokeKeyError::NotFound => Self::NotFound,
            service::RevokeKeyError::Db(e) => e.into(),
        }
    }
}

impl From<InviteError> for ApiError {
    fn from(e: InviteError) -> Self {
        match e {
            InviteError::Invalid(errors) => Self::Validation(errors),
            e @ (InviteError::HasAccount | InviteError::AlreadyInvited) => {
                Self::Conflict(e.to_string())
            }
            InviteError::Db(e) => e.into(),
        }
    }
}

impl From<InvitationError> for ApiError {
    fn from(e: InvitationError) -> Self {
        match e {
            InvitationError::NotFound => Self::NotFound,
            InvitationError::Db(e) => e.into(),
        }
    }
}

/// Where invitation links lead: the console's invitation page, to which the token is added.
pub fn invitation_link_base(state: &AppState) -> String {
    format!(
        "{}{}/invitation/",
        state.settings.base_url(),
        state.settings.console_path
    )
}

fn invitation_links<'a>(state: &'a AppState, base: &'a str) -> invitations::Links<'a> {
    invitations::Links {
        base,
        mail_ready: &state.mail_ready,
    }
}

fn gate(state: &AppState) -> service::Gate<'_> {
    service::Gate {
        limiter: &state.login_limiter,
        password_slots: &state.password_slots,
        jwt: &state.jwt,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// The same answer, after about the same time, for an unknown address, a wrong password and a
/// disabled account. Attempts are limited per account and per client network.
pub async fn issue_token(
    req: HttpRequest,
    body: super::json::Json<LoginBody>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.into_inner();
    let origin = super::client_network(&req, &state.settings)
        .map(|network| network.to_string())
        .unwrap_or_default();
    let token =
        service::sign_in(&state.db, &gate(&state), &origin, body.email, body.password).await?;
    Ok(HttpResponse::Ok().json(TokenView::bearer(&token.access_token, token.expires_in)))
}

pub async fn list_staff(_auth: Authorized<AdminOnly>, state: web::Data<AppState>) -> HandlerResult {
    let members = service::list_members(&state.db).await?;
    Ok(HttpResponse::Ok().json(List::new(members.iter().map(StaffView::from))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStaffBody {
    email: String,
    role: String,
    password: String,
}

pub async fn create_staff(
    auth: Authorized<AdminOnly>,
    body: Result<super::json::Json<NewStaffBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    // Credentials are checked before the body is looked at.
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let by = Creator::Staff {
        actor: &auth.principal,
        ip: auth.ip.as_deref(),
    };
    let input = service::NewStaffMember {
        email: body.email,
        role: body.role,
        password: body.password,
    };
    let member = service::create_member(&state.db, by, input).await?;
    Ok(HttpResponse::Created().json(StaffView::from(&member)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvitationBody {
    email: String,
    role: String,
    language: String,
}

/// Invites an address: Enlace mails it a single-use link to choose a password.
pub async fn invite_staff(
    auth: Authorized<AdminOnly>,
    body: Result<super::json::Json<NewInvitationBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    // Credentials are checked before the body is looked at.
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let input = invitations::NewInvitation {
        email: body.email,
        role: body.role,
        language: body.language,
    };
    let base = invitation_link_base(&state);
    let links = invitation_links(&state, &base);
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let open = invitations::invite(&state.db, links, actor, ip, input).await?;
    let view = InvitationView::new(&open.invitation, open.invited_by.as_deref(), db_now());
    Ok(HttpResponse::Created().json(view))
}

fn db_now() -> chrono::NaiveDateTime {
    crate::db::now()
}

pub async fn list_invitations(
    _auth: Authorized<AdminOnly>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let open = invitations::list_invitations(&state.db).await?;
    let now = db_now();
    let data = open
        .iter()
        .map(|o| InvitationView::new(&o.invitation, o.invited_by.as_deref(), now));
    Ok(HttpResponse::Ok().json(List::new(data)))
}

/// Withdraws an invitation: its link stops working.
pub async fn withdraw_invitation(
    auth: Authorized<AdminOnly>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = InvitationId::from(id.into_inner());
    invitations::withdraw(&state.db, &auth.principal, auth.ip.as_deref(), id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sends an invitation again with a new link, valid for another seven days; the old link dies.
pub async fn resend_invitation(
    auth: Authorized<AdminOnly>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = InvitationId::from(id.into_inner());
    let base = invitation_link_base(&state);
    let links = invitation_links(&state, &base);
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let invitation = invitations::resend(&state.db, links, actor, ip, id).await?;
    let invited_by = match &invitation.invited_by {
        Some(by) => service::list_members(&state.db)
            .await?
            .into_iter()
            .find(|m| &m.id == by)
            .map(|m| m.email),
        None => None,
    };
    let view = InvitationView::new(&invitation, invited_by.as_deref(), db_now());
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffPatch {
    role: Option<String>,
    disabled: Option<bool>,
}

pub async fn update_staff(
    auth: Authorized<AdminOnly>,
    id: web::Path<uuid::Uuid>,
    body: Result<super::json::Json<StaffPatch>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    // Credentials are checked before the body is looked at.
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let change = service::MemberChange {
        role: body.role,
        disabled: body.disabled,
    };
    let id = StaffId::from(id.into_inner());
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let member = service::update_member(&state.db, actor, ip, id, change).await?;
    Ok(HttpResponse::Ok().json(StaffView::from(&member)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

pub async fn change_own_password(
    auth: Authorized<AnyStaff>,
    body: Result<super::json::Json<PasswordChange>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    // Credentials are checked before the body is looked at.
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    service::change_own_password(
        &state.db,
        &gate(&state),
        &auth.principal,
        auth.ip.as_deref(),
        body.current_password,
        body.new_password,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKeyBody {
    name: String,
    scopes: Vec<String>,
}

pub async fn create_api_key(
    auth: Authorized<AdminOnly>,
    body: Result<super::json::Json<NewApiKeyBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    // Credentials are checked before the body is looked at.
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let input = service::NewApiKey {
        name: body.name,
        scopes: body.scopes,
    };
    let (actor, ip) = (&auth.principal, auth.ip.as_deref());
    let created = service::create_key(&state.db, actor, ip, input).await?;
    Ok(HttpResponse::Created().json(CreatedApiKeyView {
        api_key: ApiKeyView::new(&created.key, created.creator.as_ref()),
        key: &created.secret,
    }))
}

pub async fn list_api_keys(
    _auth: Authorized<AdminOnly>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let keys = service::list_keys(&state.db).await?;
    let data = keys.iter().map(|(k, c)| ApiKeyView::new(k, c.as_ref()));
    Ok(HttpResponse::Ok().json(List::new(data)))
}

pub async fn revoke_api_key(
    auth: Authorized<AdminOnly>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = ApiKeyId::from(id.into_inner());
    service::revoke_key(&state.db, &auth.principal, auth.ip.as_deref(), id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    before: Option<String>,
    limit: Option<i64>,
}

/// The audit log, newest first, a page at a time: `next` is the `before` of the next page.
pub async fn audit_log(
    _auth: Authorized<AdminOnly>,
    query: Result<web::Query<AuditQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let (before, limit) = audit_page(query.map_err(ApiError::from_extractor)?.into_inner())?;
    let page = service::audit_log(&state.db, Default::default(), before, limit).await?;
    Ok(HttpResponse::Ok().json(BeforePage {
        data: page
            .entries
            .iter()
            .map(|e| AuditEntryView::new(e, &page.key_creators))
            .collect(),
        next: page.next.as_deref(),
    }))
}

/// Where a page of the audit log starts and how long it is, as sent.
fn audit_page(query: AuditQuery) -> Result<(Option<String>, i64), ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    let before = match query.before.as_deref() {
        None => None,
        Some(raw) => Some(
            super::hyphenated_uuid(raw)
                .ok_or_else(|| ApiError::field("before", "is not a cursor this API gave out"))?,
        ),
    };
    Ok((before, limit))
}

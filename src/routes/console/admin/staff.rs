//! Staff accounts: the list, inviting someone by e-mail (and the open invitations, to send again
//! or withdraw), creating an account with a first password, changing a role, disabling and
//! enabling. Demoting and disabling ask for confirmation first; the service refuses an admin who
//! would demote or disable themselves.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use minijinja::{context, Value};
use serde::Deserialize;

use super::NoticeQuery;
use crate::auth::{AdminOnly, Role};
use crate::db::ids::StaffId;
use crate::db::staff::StaffMember;
use crate::domain::FieldErrors;
use crate::routes::console::frame::{Console, Posted, Signed};
use crate::services::staff::invitations::{self, InvitationError, InviteError};
use crate::services::staff::{self as service, CreateMemberError, Creator, UpdateMemberError};

/// What the staff page shows besides the list.
#[derive(Default)]
struct Extra<'a> {
    errors: Option<Value>,
    email: &'a str,
    role: &'a str,
    notice: Option<&'a str>,
    /// A refused change, by key under `console.admin.staff.refused`.
    refused: Option<&'a str>,
    /// The invitation form as sent back (email, role, language) and its errors.
    invite: Option<(&'a str, &'a str, &'a str)>,
    invite_errors: Option<Value>,
}

async fn staff_page(console: &Console, status: StatusCode, extra: Extra<'_>) -> HttpResponse {
    let db = &console.state.db;
    let (members, open) =
        match tokio::try_join!(service::list_members(db), invitations::list_invitations(db)) {
            Ok(both) => both,
            Err(e) => return console.internal(e),
        };
    let open: Vec<Value> = open
        .iter()
        .map(|o| {
            let i = &o.invitation;
            context! {
                id => i.id.as_str(),
                email => &i.email,
                role => i.role.as_str(),
                language => &i.language,
                invited_by => &o.invited_by,
                sent_at => i.sent_at,
                expires_at => i.expires_at,
                expired => o.expired(),
            }
        })
        .collect();
    let (invite_email, invite_role, invite_language) =
        extra
            .invite
            .unwrap_or(("", "viewer", console.language.as_str()));
    let me = &console.session.member.id;
    let rows: Vec<Value> = members
        .iter()
        .map(|m| {
            context! {
                id => m.id.as_str(),
                email => &m.email,
                role => m.role.as_str(),
                disabled => m.disabled,
                created_at => m.created_at,
                is_me => &m.id == me,
            }
        })
        .collect();
    console.page(
        status,
        "admin/staff",
        context! {
            members => rows,
            errors => extra.errors,
            form => context! { email => extra.email, role => extra.role },
            admin_notice => extra.notice,
            refused => extra.refused,
            invitations => open,
            invite => context! {
                email => invite_email,
                role => invite_role,
                language => invite_language,
            },
            invite_errors => extra.invite_errors,
        },
    )
}

pub async fn page(signed: Signed<AdminOnly>, query: web::Query<NoticeQuery>) -> HttpResponse {
    let extra = Extra {
        notice: query.notice.as_deref(),
        ..Extra::default()
    };
    staff_page(&signed.console, StatusCode::OK, extra).await
}

#[derive(Deserialize)]
pub struct NewMemberForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn create(posted: Posted<AdminOnly, NewMemberForm>) -> HttpResponse {
    let console = &posted.console;
    let form = posted.form;
    let (email, role) = (form.email.clone(), form.role.clone());
    let by = Creator::Staff {
        actor: &console.principal,
        ip: console.ip.as_deref(),
    };
    let input = service::NewStaffMember {
        email: form.email,
        role: form.role,
        password: form.password,
    };
    let errors = match service::create_member(&console.state.db, by, input).await {
        Ok(_) => return console.redirect("/staff", Some("staff_created")),
        Err(CreateMemberError::Invalid(errors)) => errors,
        Err(CreateMemberError::EmailTaken) => {
            FieldErrors::one("email", "already has a staff account")
        }
        Err(e) => return console.internal(e),
    };
    let extra = Extra {
        errors: Some(console.field_errors(&errors)),
        email: &email,
        role: &role,
        ..Extra::default()
    };
    staff_page(console, StatusCode::UNPROCESSABLE_ENTITY, extra).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    invite_email: String,
    #[serde(default)]
    invite_role: String,
    #[serde(default)]
    invite_language: String,
}

/// The service's field errors under the invitation form's field names.
fn invite_errors(console: &Console, errors: FieldErrors) -> Value {
    let mut renamed = FieldErrors::new();
    renamed.merge_prefixed("invite_", errors);
    console.field_errors(&renamed)
}

pub async fn invite(posted: Posted<AdminOnly, InviteForm>) -> HttpResponse {
    let console = &posted.console;
    let form = posted.form;
    let state = &console.state;
    let base = crate::routes::staff::invitation_link_base(state);
    let links = invitations::Links {
        base: &base,
        mail_ready: &state.mail_ready,
    };
    let input = invitations::NewInvitation {
        email: form.invite_email.clone(),
        role: form.invite_role.clone(),
        language: form.invite_language.clone(),
    };
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    let (status, errors) = match invitations::invite(&state.db, links, actor, ip, input).await {
        Ok(_) => return console.redirect("/staff", Some("invited")),
        Err(InviteError::Invalid(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
        Err(InviteError::HasAccount) => (
            StatusCode::CONFLICT,
            FieldErrors::one("email", "already has a staff account"),
        ),
        Err(InviteError::AlreadyInvited) => (
            StatusCode::CONFLICT,
            FieldErrors::one(
                "email",
                "already has an open invitation; send it again or withdraw it",
            ),
        ),
        Err(e) => return console.internal(e),
    };
    let extra = Extra {
        invite: Some((&form.invite_email, &form.invite_role, &form.invite_language)),
        invite_errors: Some(invite_errors(console, errors)),
        ..Extra::default()
    };
    staff_page(console, status, extra).await
}

#[derive(Deserialize)]
pub struct EmptyForm {}

/// Sends an invitation again with a new link; the old link stops working.
pub async fn resend(posted: Posted<AdminOnly, EmptyForm>, id: web::Path<String>) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = crate::db::staff::InvitationId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let state = &console.state;
    let base = crate::routes::staff::invitation_link_base(state);
    let links = invitations::Links {
        base: &base,
        mail_ready: &state.mail_ready,
    };
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match invitations::resend(&state.db, links, actor, ip, id).await {
        Ok(_) => console.redirect("/staff", Some("invitation_resent")),
        Err(InvitationError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

/// Withdraws an invitation; its link stops working at once.
pub async fn withdraw(posted: Posted<AdminOnly, EmptyForm>, id: web::Path<String>) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = crate::db::staff::InvitationId::parse(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match invitations::withdraw(&console.state.db, actor, ip, id).await {
        Ok(()) => console.redirect("/staff", Some("invitation_withdrawn")),
        Err(InvitationError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

/// The member a path names, as they are now.
async fn member(console: &Console, id: &str) -> Result<StaffMember, HttpResponse> {
    let Some(id) = StaffId::parse(id) else {
        return Err(console.error(StatusCode::NOT_FOUND, "not_found"));
    };
    match service::list_members(&console.state.db).await {
        Ok(members) => members
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| console.error(StatusCode::NOT_FOUND, "not_found")),
        Err(e) => Err(console.internal(e)),
    }
}

/// The page asking to confirm a demotion or a disable.
fn confirm_page(console: &Console, member: &StaffMember, action: &str, role: &str) -> HttpResponse {
    console.page(
        StatusCode::OK,
        "admin/staff_confirm",
        context! {
            member => context! {
                id => member.id.as_str(),
                email => &member.email,
                role => member.role.as_str(),
            },
            action => action,
            role => role,
        },
    )
}

/// Makes a change through the service and answers as the staff page does.
async fn apply(
    console: &Console,
    member: StaffMember,
    change: service::MemberChange,
    notice: &str,
) -> HttpResponse {
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match service::update_member(&console.state.db, actor, ip, member.id, change).await {
        Ok(_) => console.redirect("/staff", Some(notice)),
        Err(UpdateMemberError::OwnAccount) => {
            let extra = Extra {
                refused: Some("own_account"),
                ..Extra::default()
            };
            staff_page(console, StatusCode::CONFLICT, extra).await
        }
        Err(UpdateMemberError::Invalid(_)) => {
            let extra = Extra {
                refused: Some("role"),
                ..Extra::default()
            };
            staff_page(console, StatusCode::UNPROCESSABLE_ENTITY, extra).await
        }
        Err(UpdateMemberError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
    /// `yes` once the admin has confirmed a demotion.
    #[serde(default)]
    confirm: String,
}

pub async fn role(posted: Posted<AdminOnly, RoleForm>, id: web::Path<String>) -> HttpResponse {
    let console = &posted.console;
    let member = match member(console, &id).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    let form = posted.form;
    let demotion = Role::parse(&form.role).is_some_and(|r| r.rank() < member.role.rank());
    if demotion && form.confirm != "yes" {
        return confirm_page(console, &member, "role", &form.role);
    }
    let change = service::MemberChange {
        role: Some(form.role),
        disabled: None,
    };
    apply(console, member, change, "role_changed").await
}

#[derive(Deserialize)]
pub struct AccessForm {
    /// `true` to disable the account, `false` to enable it again.
    #[serde(default)]
    disabled: String,
    #[serde(default)]
    confirm: String,
}

pub async fn access(posted: Posted<AdminOnly, AccessForm>, id: web::Path<String>) -> HttpResponse {
    let console = &posted.console;
    let member = match member(console, &id).await {
        Ok(member) => member,
        Err(response) => return response,
    };
    let disable = match posted.form.disabled.as_str() {
        "true" => true,
        "false" => false,
        _ => return console.error(StatusCode::BAD_REQUEST, "bad_form"),
    };
    if disable && posted.form.confirm != "yes" {
        return confirm_page(console, &member, "disable", "");
    }
    let change = service::MemberChange {
        role: None,
        disabled: Some(disable),
    };
    let notice = if disable { "disabled" } else { "enabled" };
    apply(console, member, change, notice).await
}

//! Staff sign-in, staff accounts, and API keys for scripts.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::HandlerResult;
use crate::auth::{self, passwords, AdminOnly, AnyStaff, Authorized, Role};
use crate::db::{self, staff as staff_db, DbError};
use crate::domain::Email;
use crate::error::ApiError;
use crate::startup::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// The same answer, after about the same time, for an unknown address, a wrong password and a
/// disabled account. Attempts are limited per account and per client address.
pub async fn issue_token(
    req: HttpRequest,
    body: super::json::Json<LoginBody>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body = body.into_inner();
    // The canonical form, as accounts are stored; an address that does not parse is still
    // looked up as typed, so its failure is the usual one.
    let email = Email::parse(&body.email)
        .map(|e| e.as_str().to_owned())
        .unwrap_or_else(|_| body.email.trim().to_lowercase());
    // Not an address any account could have (and PostgreSQL refuses NUL): the usual answer.
    if email.len() > 254
        || email.chars().any(char::is_control)
        || body.password.chars().count() > passwords::MAX_LENGTH
    {
        return Err(ApiError::Unauthorized);
    }
    // The client's address first, then the account as tried from that address: a flood from
    // elsewhere cannot lock the real person out.
    let origin = client_network(&req, &state);
    limit_attempt(&state, format!("ip:{origin}"))?;
    limit_attempt(&state, format!("account:{email}|{origin}"))?;
    let lookup = email.clone();
    let member = state
        .db
        .run(move |conn| staff_db::find_staff_by_email(conn, &lookup).map_err(DbError::from))
        .await?;
    let password = body.password;
    let hash = member.as_ref().map(|m| m.password_hash.clone());
    let valid = verify_off_thread(&state, password, hash).await?;
    let member = member
        .filter(|m| valid && !m.disabled)
        .ok_or(ApiError::Unauthorized)?;
    let token = state.jwt.issue(
        &member.id,
        member.token_generation,
        chrono::Utc::now().timestamp(),
    )?;
    tracing::info!(staff_id = %member.id, "staff signed in");
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": auth::jwt::LIFETIME_SECS,
    })))
}

#[derive(Serialize)]
struct StaffView {
    id: String,
    email: String,
    role: String,
    disabled: bool,
    created_at: String,
    updated_at: String,
}

fn view(m: staff_db::StaffMember) -> StaffView {
    StaffView {
        id: m.id,
        email: m.email,
        role: m.role,
        disabled: m.disabled,
        created_at: m.created_at.and_utc().to_rfc3339(),
        updated_at: m.updated_at.and_utc().to_rfc3339(),
    }
}

pub async fn list_staff(_auth: Authorized<AdminOnly>, state: web::Data<AppState>) -> HandlerResult {
    let members = state
        .db
        .run(|conn| staff_db::list_staff(conn).map_err(DbError::from))
        .await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "data": members.into_iter().map(view).collect::<Vec<_>>() })))
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
    let mut errors = crate::error::FieldErrors::new();
    let email = Email::parse(&body.email)
        .map_err(|e| errors.entry("email".into()).or_default().push(e.into()))
        .ok();
    let role = Role::parse(&body.role);
    if role.is_none() {
        errors
            .entry("role".into())
            .or_default()
            .push("must be admin, editor or viewer".into());
    }
    if let Err(e) = passwords::check_new_password(&body.password) {
        errors.entry("password".into()).or_default().push(e.into());
    }
    let (Some(email), Some(role), true) = (email, role, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let hash = hash_off_thread(body.password).await?;
    let member = state
        .db
        .transaction(move |conn| {
            let member = auth::accounts::create_staff_member(conn, &email, role, hash)?;
            auth.audit(conn, "staff.create", "staff", Some(&member.id))?;
            Ok::<_, ApiError>(member)
        })
        .await?;
    tracing::info!(staff_id = %member.id, "staff account created");
    Ok(HttpResponse::Created().json(view(member)))
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
    let role = match body.role.as_deref() {
        None => None,
        Some(raw) => Some(
            Role::parse(raw)
                .ok_or_else(|| ApiError::field("role", "must be admin, editor or viewer"))?,
        ),
    };
    let id = id.into_inner().to_string();
    if auth.principal.staff_id() == Some(id.as_str())
        && (body.disabled == Some(true) || role.is_some_and(|r| r != Role::Admin))
    {
        return Err(ApiError::Conflict(
            "an admin cannot disable or demote their own account".into(),
        ));
    }
    let changes = staff_db::StaffChanges {
        role: role.map(|r| r.as_str().to_owned()),
        disabled: body.disabled,
        password_hash: None,
        updated_at: Some(db::now()),
    };
    // Tokens issued before a disable stay dead if the account is enabled again, and so do the
    // API keys the member created: each is revoked (and recorded as such) with the disable.
    let sign_out = body.disabled == Some(true);
    let target = id.clone();
    let member = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            if staff_db::update_staff(conn, &target, &changes)? {
                auth.audit(conn, "staff.update", "staff", Some(&target))?;
                if sign_out {
                    staff_db::bump_token_generation(conn, &target)?;
                    for key in staff_db::revoke_api_keys_created_by(conn, &target, db::now())? {
                        auth.audit(conn, "api_key.revoke", "api_key", Some(&key))?;
                    }
                }
            }
            Ok(staff_db::find_staff(conn, &target)?)
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(view(member)))
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
    passwords::check_new_password(&body.new_password)
        .map_err(|e| ApiError::field("new_password", e))?;
    let id = auth
        .principal
        .staff_id()
        .ok_or(ApiError::Forbidden)?
        .to_owned();
    let lookup = id.clone();
    let member = state
        .db
        .run(move |conn| staff_db::find_staff(conn, &lookup).map_err(DbError::from))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    // A stolen token must not become a way to guess the password at leisure.
    limit_attempt(&state, format!("password:{id}"))?;
    let valid =
        verify_off_thread(&state, body.current_password, Some(member.password_hash)).await?;
    if !valid {
        return Err(ApiError::field(
            "current_password",
            "is not your current password",
        ));
    }
    let hash = hash_off_thread(body.new_password).await?;
    let changes = staff_db::StaffChanges {
        password_hash: Some(hash),
        updated_at: Some(db::now()),
        ..Default::default()
    };
    state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            staff_db::update_staff(conn, &id, &changes)?;
            // Whoever held a token before the change (perhaps the reason for it) is signed out.
            staff_db::bump_token_generation(conn, &id)?;
            Ok(auth.audit(conn, "staff.password_change", "staff", Some(&id))?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The client's network as limits count it (see `routes::client_network`).
fn client_network(req: &HttpRequest, state: &AppState) -> String {
    super::client_network(req, &state.settings)
        .map(|network| network.to_string())
        .unwrap_or_default()
}

fn limit_attempt(state: &AppState, key: String) -> Result<(), ApiError> {
    state.login_limiter.check_key(&key).map_err(|not_until| {
        use governor::clock::{Clock, DefaultClock};
        let wait = not_until
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1);
        ApiError::TooManyRequests {
            retry_after_secs: wait,
        }
    })
}

/// Password checks take tens of milliseconds and ~19 MiB each: a few at a time, off the async
/// threads, however many arrive.
async fn verify_off_thread(
    state: &AppState,
    password: String,
    hash: Option<String>,
) -> Result<bool, ApiError> {
    let _slot = state
        .password_slots
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    tokio::task::spawn_blocking(move || passwords::verify_password(&password, hash.as_deref()))
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

async fn hash_off_thread(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || passwords::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(ApiError::Internal)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKeyBody {
    name: String,
    scopes: Vec<String>,
}

#[derive(Serialize)]
struct ApiKeyView {
    id: String,
    name: String,
    prefix: String,
    scopes: Vec<String>,
    created_by: Option<CreatorView>,
    status: &'static str,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

/// Who created a key, as they are now: the key never does more than `role` allows.
#[derive(Serialize)]
struct CreatorView {
    id: String,
    email: String,
    role: String,
    disabled: bool,
}

fn creator_view(c: staff_db::KeyCreator) -> CreatorView {
    CreatorView {
        id: c.id,
        email: c.email,
        role: c.role,
        disabled: c.disabled,
    }
}

/// `revoked`; `suspended` while its creator is disabled or no longer exists (it fails as a
/// revoked key would); else `active`.
fn key_view(k: staff_db::ApiKey, creator: Option<staff_db::KeyCreator>) -> ApiKeyView {
    let status = match (&k.revoked_at, &creator) {
        (Some(_), _) => "revoked",
        (None, Some(c)) if !c.disabled => "active",
        (None, _) => "suspended",
    };
    ApiKeyView {
        id: k.id,
        name: k.name,
        prefix: k.prefix,
        scopes: serde_json::from_str(&k.scopes).unwrap_or_default(),
        created_by: creator.map(creator_view),
        status,
        created_at: k.created_at.and_utc().to_rfc3339(),
        last_used_at: k.last_used_at.map(|t| t.and_utc().to_rfc3339()),
        revoked_at: k.revoked_at.map(|t| t.and_utc().to_rfc3339()),
    }
}

pub async fn create_api_key(
    auth: Authorized<AdminOnly>,
    body: Result<super::json::Json<NewApiKeyBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    // Credentials are checked before the body is looked at.
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let name = body.name.trim().to_owned();
    let mut errors = crate::error::FieldErrors::new();
    if name.is_empty() || body.name.chars().count() > 100 || name.chars().any(char::is_control) {
        errors
            .entry("name".into())
            .or_default()
            .push("must be 1 to 100 characters".into());
    }
    let mut scopes: Vec<String> = Vec::new();
    for scope in body.scopes {
        if !auth::SCOPES.contains(&scope.as_str()) {
            errors.entry("scopes".into()).or_default().push(format!(
                "unknown scope; one of: {}",
                auth::SCOPES.join(", ")
            ));
        } else if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() && !errors.contains_key("scopes") {
        errors
            .entry("scopes".into())
            .or_default()
            .push("at least one scope".into());
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (secret, prefix, hash) = auth::new_api_key();
    let key = staff_db::ApiKey {
        id: db::new_id(),
        name,
        prefix,
        key_hash: hash,
        scopes: serde_json::to_string(&scopes).unwrap_or_else(|_| "[]".into()),
        created_by: auth.principal.staff_id().map(str::to_owned),
        created_at: db::now(),
        last_used_at: None,
        revoked_at: None,
    };
    let stored = key.clone();
    let creator = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            staff_db::insert_api_key(conn, &stored)?;
            auth.audit(conn, "api_key.create", "api_key", Some(&stored.id))?;
            Ok(
                staff_db::key_creators(conn, std::slice::from_ref(&stored.id))?
                    .pop()
                    .map(|(_, c)| c),
            )
        })
        .await?;
    tracing::info!(api_key_id = %key.id, "API key created");
    let mut body =
        serde_json::to_value(key_view(key, creator)).map_err(|e| ApiError::Internal(e.into()))?;
    // The secret is shown this once; only its hash is kept.
    body["key"] = serde_json::Value::String(secret);
    Ok(HttpResponse::Created().json(body))
}

pub async fn list_api_keys(
    _auth: Authorized<AdminOnly>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let keys = state
        .db
        .run(|conn| staff_db::list_api_keys(conn).map_err(DbError::from))
        .await?;
    let data: Vec<_> = keys.into_iter().map(|(k, c)| key_view(k, c)).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

pub async fn revoke_api_key(
    auth: Authorized<AdminOnly>,
    id: web::Path<uuid::Uuid>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = id.into_inner().to_string();
    let revoked = state
        .db
        .transaction(move |conn| -> Result<_, DbError> {
            let revoked = staff_db::revoke_api_key(conn, &id, db::now())?;
            if revoked {
                auth.audit(conn, "api_key.revoke", "api_key", Some(&id))?;
            }
            Ok(revoked)
        })
        .await?;
    if revoked {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
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
    let query = query.map_err(ApiError::from_extractor)?.into_inner();
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
    let (entries, creators) = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            let entries = crate::db::audit::list_audit_entries(conn, before.as_deref(), limit)?;
            // Who stands behind each key that acted on this page.
            let keys: Vec<String> = entries
                .iter()
                .filter(|e| e.actor_type == "api_key")
                .filter_map(|e| e.actor_id.clone())
                .collect();
            let creators = staff_db::key_creators(conn, &keys)?;
            Ok((entries, creators))
        })
        .await?;
    let creators: std::collections::HashMap<String, staff_db::KeyCreator> =
        creators.into_iter().collect();
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    let data: Vec<_> = entries
        .into_iter()
        .map(|e| {
            let key_creator = (e.actor_type == "api_key")
                .then(|| e.actor_id.as_ref().and_then(|id| creators.get(id)))
                .flatten()
                .map(|c| serde_json::json!({ "id": c.id, "email": c.email }));
            serde_json::json!({
                "id": e.id, "actor_type": e.actor_type, "actor_id": e.actor_id,
                "api_key_created_by": key_creator, "action": e.action,
                "object_type": e.object_type, "object_id": e.object_id, "ip": e.ip,
                "created_at": e.created_at.and_utc().to_rfc3339(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data, "next": next })))
}

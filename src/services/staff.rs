//! Staff and keys: creating and changing staff accounts, signing in, changing one's own
//! password, the API keys scripts use, and reading the audit log. Invitations by e-mail are in
//! `invitations`.

pub mod invitations;

use std::collections::HashMap;

use governor::DefaultKeyedRateLimiter;
use tokio::sync::Semaphore;

use crate::auth::{self, jwt::JwtKeys, passwords, Principal, Role};
use crate::db::audit::{AuditEntry, AuditFilter};
use crate::db::ids::{ApiKeyId, StaffId};
use crate::db::{self, staff as staff_db, Db, DbError};
use crate::domain::{Email, FieldErrors};

const ROLE_MESSAGE: &str = "must be admin, editor or viewer";

/// A staff account as asked for, not yet checked.
pub struct NewStaffMember {
    pub email: String,
    pub role: String,
    pub password: String,
}

/// Who creates an account: someone signed in (from an address), or whoever runs
/// `enlace staff create` on the server.
pub enum Creator<'a> {
    Staff {
        actor: &'a Principal,
        ip: Option<&'a str>,
    },
    CommandLine,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateMemberError {
    #[error("invalid staff account")]
    Invalid(FieldErrors),
    #[error("a staff account with this email exists")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for CreateMemberError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Creates a staff account (the API and the command line alike); an address that already has
/// one is refused.
pub async fn create_member(
    db: &Db,
    by: Creator<'_>,
    input: NewStaffMember,
) -> Result<staff_db::StaffMember, CreateMemberError> {
    let mut errors = FieldErrors::new();
    let email = Email::parse(&input.email)
        .map_err(|e| errors.add("email", e))
        .ok();
    let role = Role::parse(&input.role);
    if role.is_none() {
        errors.add("role", ROLE_MESSAGE);
    }
    if let Err(e) = passwords::check_new_password(&input.password) {
        errors.add("password", e);
    }
    let (Some(email), Some(role), true) = (email, role, errors.is_empty()) else {
        return Err(CreateMemberError::Invalid(errors));
    };
    let hash = hash_off_thread(input.password).await?;
    let (actor, ip) = match by {
        Creator::Staff { actor, ip } => (Some(actor.clone()), ip.map(str::to_owned)),
        Creator::CommandLine => (None, None),
    };
    let member = db
        .transaction(move |conn| {
            let member = match auth::accounts::create_staff_member(conn, &email, role, hash) {
                Err(e) if db::is_unique_violation(&e) => return Err(CreateMemberError::EmailTaken),
                other => other?,
            };
            match &actor {
                Some(actor) => actor.audit(
                    conn,
                    ip.as_deref(),
                    "staff.create",
                    "staff",
                    Some(&member.id),
                )?,
                None => auth::Actor {
                    actor_type: "cli",
                    actor_id: None,
                    ip: None,
                }
                .record(conn, "staff.create", "staff", Some(&member.id))?,
            }
            Ok(member)
        })
        .await?;
    tracing::info!(staff_id = %member.id, role = role.as_str(), "staff account created");
    Ok(member)
}

pub async fn list_members(db: &Db) -> Result<Vec<staff_db::StaffMember>, DbError> {
    db.run(|conn| staff_db::list_staff(conn).map_err(DbError::from))
        .await
}

/// A change to an account: `None` leaves that part as it is.
pub struct MemberChange {
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateMemberError {
    #[error("invalid change")]
    Invalid(FieldErrors),
    #[error("an admin cannot disable or demote their own account")]
    OwnAccount,
    #[error("no such staff account")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Changes an account's role or disables it. Disabling signs the member out everywhere: tokens
/// issued before stay dead if the account is enabled again, and so do the API keys the member
/// created, each revoked (and recorded as such) with the disable.
pub async fn update_member(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: StaffId,
    change: MemberChange,
) -> Result<staff_db::StaffMember, UpdateMemberError> {
    let role =
        match change.role.as_deref() {
            None => None,
            Some(raw) => Some(Role::parse(raw).ok_or_else(|| {
                UpdateMemberError::Invalid(FieldErrors::one("role", ROLE_MESSAGE))
            })?),
        };
    // An admin locking themselves out would leave no way back in but the command line.
    if actor.staff_id() == Some(&id)
        && (change.disabled == Some(true) || role.is_some_and(|r| r != Role::Admin))
    {
        return Err(UpdateMemberError::OwnAccount);
    }
    let changes = staff_db::StaffChanges {
        role,
        disabled: change.disabled,
        password_hash: None,
        updated_at: Some(db::now()),
    };
    let sign_out = change.disabled == Some(true);
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<_, DbError> {
        let before = staff_db::find_staff(conn, &id)?;
        if staff_db::update_staff(conn, &id, &changes)? {
            actor.audit(conn, ip.as_deref(), "staff.update", "staff", Some(&id))?;
            // A demotion or a disable ends the member's console sessions at once.
            let demoted = matches!((&before, role), (Some(b), Some(r)) if r.rank() < b.role.rank());
            if sign_out || demoted {
                crate::db::sessions::delete_for_member(conn, &id)?;
            }
            if sign_out {
                staff_db::bump_token_generation(conn, &id)?;
                for key in staff_db::revoke_api_keys_created_by(conn, &id, db::now())? {
                    actor.audit(conn, ip.as_deref(), "api_key.revoke", "api_key", Some(&key))?;
                }
            }
        }
        Ok(staff_db::find_staff(conn, &id)?)
    })
    .await?
    .ok_or(UpdateMemberError::NotFound)
}

/// What signing in and checking passwords need: the attempt limiter (per client network and
/// per account), the few slots password checks take turns in, and the token keys.
pub struct Gate<'a> {
    pub limiter: &'a DefaultKeyedRateLimiter<String>,
    pub password_slots: &'a Semaphore,
    pub jwt: &'a JwtKeys,
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The same for an unknown address, a wrong password and a disabled account.
    #[error("missing or invalid credentials")]
    Refused,
    #[error("too many attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A signed-in staff member's bearer token.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
}

/// Signs a staff member in for the API: a bearer token, after `check_credentials`.
pub async fn sign_in(
    db: &Db,
    gate: &Gate<'_>,
    origin: &str,
    email: String,
    password: String,
) -> Result<IssuedToken, SignInError> {
    let member = check_credentials(db, gate, origin, email, password).await?;
    let access_token = gate.jwt.issue(
        &member.id,
        member.token_generation,
        chrono::Utc::now().timestamp(),
    )?;
    tracing::info!(staff_id = %member.id, "staff signed in");
    Ok(IssuedToken {
        access_token,
        expires_in: auth::jwt::LIFETIME_SECS,
    })
}

/// The account behind an address and password, for the API and the console alike: the same
/// refusal, after about the same time, for an unknown address, a wrong password and a disabled
/// account. Attempts are limited per client network (`origin`) and per account as tried from
/// there.
pub async fn check_credentials(
    db: &Db,
    gate: &Gate<'_>,
    origin: &str,
    email: String,
    password: String,
) -> Result<staff_db::StaffMember, SignInError> {
    // The canonical form, as accounts are stored; an address that does not parse is still
    // looked up as typed, so its failure is the usual one.
    let email = Email::parse(&email)
        .map(|e| e.as_str().to_owned())
        .unwrap_or_else(|_| email.trim().to_lowercase());
    // Not an address any account could have (and PostgreSQL refuses NUL): the usual answer.
    if email.len() > 254
        || email.chars().any(char::is_control)
        || password.chars().count() > passwords::MAX_LENGTH
    {
        return Err(SignInError::Refused);
    }
    // The client's network first, then the account as tried from that network: a flood from
    // elsewhere cannot lock the real person out.
    limit_attempt(gate, format!("ip:{origin}")).map_err(too_many_sign_ins)?;
    limit_attempt(gate, format!("account:{email}|{origin}")).map_err(too_many_sign_ins)?;
    let member = db
        .run(move |conn| staff_db::find_staff_by_email(conn, &email).map_err(DbError::from))
        .await?;
    let hash = member.as_ref().map(|m| m.password_hash.clone());
    let valid = verify_off_thread(gate, password, hash).await?;
    member
        .filter(|m| valid && !m.disabled)
        .ok_or(SignInError::Refused)
}

fn too_many_sign_ins(retry_after_secs: u64) -> SignInError {
    SignInError::TooManyAttempts { retry_after_secs }
}

#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    #[error("invalid password change")]
    Invalid(FieldErrors),
    /// API keys have no password.
    #[error("not a staff member")]
    NotStaff,
    /// The account no longer exists.
    #[error("no such staff account")]
    NoAccount,
    #[error("too many attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Changes the caller's own password, given the current one. Whoever held a token before the
/// change (perhaps the reason for it) is signed out.
pub async fn change_own_password(
    db: &Db,
    gate: &Gate<'_>,
    actor: &Principal,
    ip: Option<&str>,
    current_password: String,
    new_password: String,
) -> Result<(), ChangePasswordError> {
    passwords::check_new_password(&new_password)
        .map_err(|e| ChangePasswordError::Invalid(FieldErrors::one("new_password", e)))?;
    let id = actor
        .staff_id()
        .ok_or(ChangePasswordError::NotStaff)?
        .to_owned();
    let lookup = id.clone();
    let member = db
        .run(move |conn| staff_db::find_staff(conn, &lookup).map_err(DbError::from))
        .await?
        .ok_or(ChangePasswordError::NoAccount)?;
    // A stolen token must not become a way to guess the password at leisure.
    limit_attempt(gate, format!("password:{id}"))
        .map_err(|retry_after_secs| ChangePasswordError::TooManyAttempts { retry_after_secs })?;
    if !verify_off_thread(gate, current_password, Some(member.password_hash)).await? {
        return Err(ChangePasswordError::Invalid(FieldErrors::one(
            "current_password",
            "is not your current password",
        )));
    }
    let hash = hash_off_thread(new_password).await?;
    let changes = staff_db::StaffChanges {
        password_hash: Some(hash),
        updated_at: Some(db::now()),
        ..Default::default()
    };
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<_, DbError> {
        staff_db::update_staff(conn, &id, &changes)?;
        staff_db::bump_token_generation(conn, &id)?;
        crate::db::sessions::delete_for_member(conn, &id)?;
        Ok(actor.audit(
            conn,
            ip.as_deref(),
            "staff.password_change",
            "staff",
            Some(&id),
        )?)
    })
    .await?;
    Ok(())
}

/// Counts an attempt against `key`; when over the limit, the seconds to wait (at least one).
fn limit_attempt(gate: &Gate<'_>, key: String) -> Result<(), u64> {
    limit_attempt_on(gate.limiter, key)
}

/// `limit_attempt` with the limiter alone.
fn limit_attempt_on(limiter: &DefaultKeyedRateLimiter<String>, key: String) -> Result<(), u64> {
    limiter.check_key(&key).map_err(|not_until| {
        use governor::clock::{Clock, DefaultClock};
        not_until
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1)
    })
}

/// Password checks take tens of milliseconds and ~19 MiB each: a few at a time, off the async
/// threads, however many arrive.
async fn verify_off_thread(
    gate: &Gate<'_>,
    password: String,
    hash: Option<String>,
) -> anyhow::Result<bool> {
    let _slot = gate.password_slots.acquire().await?;
    Ok(
        tokio::task::spawn_blocking(move || passwords::verify_password(&password, hash.as_deref()))
            .await?,
    )
}

async fn hash_off_thread(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || passwords::hash_password(&password)).await?
}

/// An API key as asked for, not yet checked.
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<String>,
}

/// A new key: its secret (shown this once; only its hash is kept), the stored row, and its
/// creator as they are now.
pub struct CreatedKey {
    pub secret: String,
    pub key: staff_db::ApiKey,
    pub creator: Option<staff_db::KeyCreator>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateKeyError {
    #[error("invalid API key")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Creates an API key acting for the caller, with the scopes asked for (each once).
pub async fn create_key(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    input: NewApiKey,
) -> Result<CreatedKey, CreateKeyError> {
    let name = input.name.trim().to_owned();
    let mut errors = FieldErrors::new();
    if name.is_empty() || input.name.chars().count() > 100 || name.chars().any(char::is_control) {
        errors.add("name", "must be 1 to 100 characters");
    }
    let mut scopes: Vec<auth::Scope> = Vec::new();
    for raw in &input.scopes {
        match auth::Scope::parse(raw) {
            None => {
                let all: Vec<&str> = auth::Scope::ALL.iter().map(|s| s.as_str()).collect();
                errors.add(
                    "scopes",
                    format!("unknown scope; one of: {}", all.join(", ")),
                );
            }
            Some(scope) if !scopes.contains(&scope) => scopes.push(scope),
            Some(_) => {}
        }
    }
    if scopes.is_empty() && !errors.contains_key("scopes") {
        errors.add("scopes", "at least one scope");
    }
    errors.into_result().map_err(CreateKeyError::Invalid)?;
    let (secret, prefix, hash) = auth::new_api_key();
    let key = staff_db::ApiKey {
        id: ApiKeyId::new(),
        name,
        prefix,
        key_hash: hash,
        scopes: serde_json::to_string(&scopes).unwrap_or_else(|_| "[]".into()),
        created_by: actor.staff_id().cloned(),
        created_at: db::now(),
        last_used_at: None,
        revoked_at: None,
    };
    let stored = key.clone();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let creator = db
        .transaction(move |conn| -> Result<_, DbError> {
            staff_db::insert_api_key(conn, &stored)?;
            actor.audit(
                conn,
                ip.as_deref(),
                "api_key.create",
                "api_key",
                Some(&stored.id),
            )?;
            Ok(staff_db::key_creators(conn, &[stored.id.to_string()])?
                .pop()
                .map(|(_, c)| c))
        })
        .await?;
    tracing::info!(api_key_id = %key.id, "API key created");
    Ok(CreatedKey {
        secret,
        key,
        creator,
    })
}

/// Every key, newest first, with its creator as they are now.
pub async fn list_keys(
    db: &Db,
) -> Result<Vec<(staff_db::ApiKey, Option<staff_db::KeyCreator>)>, DbError> {
    db.run(|conn| staff_db::list_api_keys(conn).map_err(DbError::from))
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeKeyError {
    /// No such key, or it was revoked already.
    #[error("no such active API key")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

pub async fn revoke_key(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: ApiKeyId,
) -> Result<(), RevokeKeyError> {
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let revoked = db
        .transaction(move |conn| -> Result<_, DbError> {
            let revoked = staff_db::revoke_api_key(conn, &id, db::now())?;
            if revoked {
                actor.audit(conn, ip.as_deref(), "api_key.revoke", "api_key", Some(&id))?;
            }
            Ok(revoked)
        })
        .await?;
    revoked.then_some(()).ok_or(RevokeKeyError::NotFound)
}

/// A page of the audit log, newest first, with who stands behind each key that acted on it;
/// `next` is where the following page starts (`before`), when there may be one.
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub key_creators: HashMap<String, staff_db::KeyCreator>,
    pub next: Option<String>,
}

pub async fn audit_log(
    db: &Db,
    filter: AuditFilter,
    before: Option<String>,
    limit: i64,
) -> Result<AuditPage, DbError> {
    let (entries, creators) = db
        .run(move |conn| -> Result<_, DbError> {
            let entries = db::audit::list_audit_entries(conn, &filter, before.as_deref(), limit)?;
            let keys: Vec<String> = entries
                .iter()
                .filter(|e| e.actor_type == "api_key")
                .filter_map(|e| e.actor_id.clone())
                .collect();
            let creators = staff_db::key_creators(conn, &keys)?;
            Ok((entries, creators))
        })
        .await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    Ok(AuditPage {
        entries,
        key_creators: creators.into_iter().collect(),
        next,
    })
}

/// Every action the audit log holds, for choosing one to filter by.
pub async fn audit_actions(db: &Db) -> Result<Vec<String>, DbError> {
    db.run(|conn| db::audit::audit_actions(conn).map_err(DbError::from))
        .await
}

/// Signs a staff member in to the console: the same checks and refusals as `sign_in`, then a
/// new session (a session that existed before is never reused).
pub async fn start_console_session(
    db: &Db,
    gate: &Gate<'_>,
    origin: &str,
    email: String,
    password: String,
    limits: auth::sessions::SessionLimits,
) -> Result<(auth::sessions::Started, staff_db::StaffMember), SignInError> {
    let member = check_credentials(db, gate, origin, email, password).await?;
    let started = {
        let member = member.clone();
        db.write(move |conn| -> Result<_, DbError> {
            let now = db::now();
            auth::sessions::sweep(conn, now, limits)?;
            Ok(auth::sessions::start(conn, &member, now, limits)?)
        })
        .await?
    };
    tracing::info!(staff_id = %member.id, "staff signed in to the console");
    Ok((started, member))
}

/// The console session a browser's secret names, if it is valid now.
pub async fn console_session(
    db: &Db,
    secret: String,
    limits: auth::sessions::SessionLimits,
) -> Result<Option<auth::sessions::Current>, DbError> {
    db.write(move |conn| Ok(auth::sessions::resolve(conn, &secret, db::now(), limits)?))
        .await
}

/// Signs a browser out of the console.
pub async fn end_console_session(db: &Db, secret: String) -> Result<(), DbError> {
    db.write(move |conn| Ok(auth::sessions::end(conn, &secret).map(drop)?))
        .await
}

/// A staff member's console preferences as asked for, not yet checked; empty means "not set".
pub struct PreferencesInput {
    pub language: String,
    pub time_zone: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PreferencesError {
    #[error("invalid preferences")]
    Invalid(FieldErrors),
    #[error("not a staff member")]
    NotStaff,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Sets the caller's console language and time zone.
pub async fn set_preferences(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    input: PreferencesInput,
) -> Result<(), PreferencesError> {
    let id = actor
        .staff_id()
        .ok_or(PreferencesError::NotStaff)?
        .to_owned();
    let mut errors = FieldErrors::new();
    let language = match input.language.trim() {
        "" => None,
        raw => match crate::domain::Language::parse(raw) {
            Ok(language) => Some(language.as_str().to_owned()),
            Err(e) => {
                errors.add("language", e);
                None
            }
        },
    };
    let time_zone = match input.time_zone.trim() {
        "" => None,
        raw => match raw.parse::<chrono_tz::Tz>() {
            Ok(zone) => Some(zone.name().to_owned()),
            Err(_) => {
                errors.add("time_zone", "is not a known time zone");
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(PreferencesError::Invalid(errors));
    }
    let changes = staff_db::StaffPreferences {
        language: Some(language),
        time_zone: Some(time_zone),
        updated_at: Some(db::now()),
    };
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<_, DbError> {
        staff_db::update_preferences(conn, &id, &changes)?;
        Ok(actor.audit(conn, ip.as_deref(), "staff.preferences", "staff", Some(&id))?)
    })
    .await?;
    Ok(())
}

/// A new console session for a member who has just proved who they are another way (by
/// changing their password, which ended their sessions); `None` when the account is gone or
/// disabled.
pub async fn resume_console_session(
    db: &Db,
    id: StaffId,
    limits: auth::sessions::SessionLimits,
) -> Result<Option<auth::sessions::Started>, DbError> {
    db.write(move |conn| -> Result<_, DbError> {
        let Some(member) = staff_db::find_staff(conn, &id)?.filter(|m| !m.disabled) else {
            return Ok(None);
        };
        Ok(Some(auth::sessions::start(
            conn,
            &member,
            db::now(),
            limits,
        )?))
    })
    .await
}

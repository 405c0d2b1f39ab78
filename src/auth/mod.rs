//! Who is calling a staff endpoint and what they may do: staff (JWT, with a role) or scripts
//! (API key, with scopes). One extractor, `Authorized<P>`, decides per endpoint.

pub mod accounts;
pub mod jwt;
pub mod passwords;
pub mod sessions;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::db::ids::{ApiKeyId, StaffId};
use crate::db::{self, staff as staff_db, Db, DbError};
use crate::error::ApiError;

pub use crate::domain::Role;

crate::text_enum! {
    /// What an API key may do, as the contract names it (kept with the key as a JSON array).
    pub enum Scope {
        SubscribersRead = "subscribers:read",
        SubscribersWrite = "subscribers:write",
        NewslettersWrite = "newsletters:write",
        NewslettersSend = "newsletters:send",
        ExportsRead = "exports:read",
        EventsWrite = "events:write",
        WebhooksWrite = "webhooks:write",
    }
}

/// The caller behind a valid credential.
#[derive(Clone, Debug)]
pub enum Principal {
    Staff {
        id: StaffId,
        role: Role,
    },
    /// A key acts for the staff member who created it and never beyond what that member's
    /// role allows now (read with the key on every request).
    ApiKey {
        id: ApiKeyId,
        scopes: Vec<Scope>,
        creator_id: StaffId,
        creator_role: Role,
    },
}

impl Principal {
    /// Whether this caller passes `P`: a staff member by role; a key by its scopes and by its
    /// creator's current role, both.
    pub fn passes<P: Policy>(&self) -> bool {
        match self {
            Self::Staff { role, .. } => P::ROLES.contains(role),
            Self::ApiKey {
                scopes,
                creator_role,
                ..
            } => {
                P::ROLES.contains(creator_role)
                    && (P::SCOPE.is_some_and(|needed| scopes.contains(&needed))
                        || scopes.iter().any(|s| P::ALSO.contains(s)))
            }
        }
    }

    /// Whether this caller may read subscribers, and so anything derived from them (counts
    /// included): any staff role, or a key with `subscribers:read` whose creator may.
    pub fn may_read_contacts(&self) -> bool {
        self.passes::<ReadContacts>()
    }

    pub fn staff_id(&self) -> Option<&StaffId> {
        match self {
            Self::Staff { id, .. } => Some(id),
            Self::ApiKey { .. } => None,
        }
    }
}

/// What an endpoint demands: which roles pass, and which scope (if any) an API key needs.
pub trait Policy {
    const ROLES: &'static [Role];
    /// `None`: API keys never pass (staff and key management).
    const SCOPE: Option<Scope>;
    /// Further scopes that also pass.
    const ALSO: &'static [Scope] = &[];
}

/// Admins only: staff accounts and API keys.
pub struct AdminOnly;
impl Policy for AdminOnly {
    const ROLES: &'static [Role] = &[Role::Admin];
    const SCOPE: Option<Scope> = None;
}

/// Reading contacts and their configuration: every role, or a key with `subscribers:read`.
pub struct ReadContacts;
impl Policy for ReadContacts {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Editor, Role::Viewer];
    const SCOPE: Option<Scope> = Some(Scope::SubscribersRead);
}

/// Changing contacts and their configuration: admins and editors, or `subscribers:write`.
pub struct WriteContacts;
impl Policy for WriteContacts {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Editor];
    const SCOPE: Option<Scope> = Some(Scope::SubscribersWrite);
}

/// Everything held about people at once (exports, access requests): admins and editors, or
/// `exports:read`. Viewers read, but do not export.
pub struct ExportContacts;
impl Policy for ExportContacts {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Editor];
    const SCOPE: Option<Scope> = Some(Scope::ExportsRead);
}

/// Reading segments and newsletters (and a send's progress): every role, or a key with
/// `newsletters:write` or `newsletters:send`.
pub struct ReadNewsletters;
impl Policy for ReadNewsletters {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Editor, Role::Viewer];
    const SCOPE: Option<Scope> = Some(Scope::NewslettersWrite);
    const ALSO: &'static [Scope] = &[Scope::NewslettersSend];
}

/// Writing segments and newsletter drafts, previews and test sends: admins and editors, or
/// `newsletters:write`.
pub struct WriteNewsletters;
impl Policy for WriteNewsletters {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Editor];
    const SCOPE: Option<Scope> = Some(Scope::NewslettersWrite);
}

/// Starting, pausing, resuming and cancelling sends: admins and editors, or `newsletters:send`.
pub struct SendNewsletters;
impl Policy for SendNewsletters {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Editor];
    const SCOPE: Option<Scope> = Some(Scope::NewslettersSend);
}

/// Reporting bounces and complaints: admins, or a key with `events:write`.
pub struct RecordMailEvents;
impl Policy for RecordMailEvents {
    const ROLES: &'static [Role] = &[Role::Admin];
    const SCOPE: Option<Scope> = Some(Scope::EventsWrite);
}

/// Managing webhook endpoints and reading their delivery logs: admins, or `webhooks:write`.
pub struct ManageWebhooks;
impl Policy for ManageWebhooks {
    const ROLES: &'static [Role] = &[Role::Admin];
    const SCOPE: Option<Scope> = Some(Scope::WebhooksWrite);
}

/// Any signed-in staff member, acting on their own account.
pub struct AnyStaff;
impl Policy for AnyStaff {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Editor, Role::Viewer];
    const SCOPE: Option<Scope> = None;
}

/// Extracting this is the check: 401 without a valid credential, 403 when the policy refuses.
pub struct Authorized<P: Policy> {
    pub principal: Principal,
    /// The client address, for the audit log.
    pub ip: Option<String>,
    policy: PhantomData<P>,
}

impl<P: Policy> Authorized<P> {
    fn allow(principal: Principal, ip: Option<String>) -> Result<Self, ApiError> {
        if principal.passes::<P>() {
            Ok(Self {
                principal,
                ip,
                policy: PhantomData,
            })
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// What checking a request's credentials needs: the database (staff and keys are read on every
/// request), the token keys, and which proxies to believe about the client's address. Built at
/// start and registered with the application on its own, so authentication depends on nothing
/// above it.
pub struct Authenticator {
    db: Db,
    jwt: jwt::JwtKeys,
    trusted_proxies: Vec<std::net::IpAddr>,
}

impl Authenticator {
    pub fn new(db: Db, jwt: jwt::JwtKeys, trusted_proxies: Vec<std::net::IpAddr>) -> Self {
        Self {
            db,
            jwt,
            trusted_proxies,
        }
    }
}

impl<P: Policy + 'static> FromRequest for Authorized<P> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<Authenticator>>().cloned();
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let ip = state
            .as_ref()
            .and_then(|s| crate::client::client_ip(req, &s.trusted_proxies))
            .map(|ip| ip.to_string());
        Box::pin(async move {
            let (Some(state), Some(bearer)) = (state, bearer) else {
                return Err(ApiError::Unauthorized);
            };
            let principal = authenticate(&state, bearer)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            Self::allow(principal, ip)
        })
    }
}

pub const API_KEY_PREFIX: &str = "enl_";

/// A new API key: the secret shown once, its display prefix, and the hash that is stored.
pub fn new_api_key() -> (String, String, String) {
    let secret = format!("{API_KEY_PREFIX}{}", crate::tokens::random_token());
    let prefix = secret[..API_KEY_PREFIX.len() + 6].to_owned();
    let hash = hash_api_key(&secret);
    (secret, prefix, hash)
}

pub fn hash_api_key(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Resolves a bearer credential. Staff are read on every request, so disabling an account or
/// changing a role takes effect at once; a revoked key fails on its next use. A key is read
/// with its creator in one query: it fails while its creator is disabled or gone (a key nobody
/// answers for acts for nobody), and passes no more than the creator's current role allows.
async fn authenticate(
    state: &Authenticator,
    bearer: String,
) -> Result<Option<Principal>, ApiError> {
    if bearer.len() > 4096 {
        return Ok(None);
    }
    if bearer.starts_with(API_KEY_PREFIX) {
        let hash = hash_api_key(&bearer);
        let principal = state
            .db
            .write(move |conn| -> Result<_, DbError> {
                let Some((key, Some(creator))) = staff_db::find_active_api_key(conn, &hash)? else {
                    return Ok(None);
                };
                let (Some(creator_id), Some(creator_role), false) =
                    (key.created_by, Some(creator.role), creator.disabled)
                else {
                    return Ok(None);
                };
                staff_db::touch_api_key(conn, &key.id, db::now())?;
                Ok(Some(Principal::ApiKey {
                    id: key.id,
                    // A scope this version does not know grants nothing.
                    scopes: serde_json::from_str::<Vec<String>>(&key.scopes)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|s| Scope::parse(s))
                        .collect(),
                    creator_id,
                    creator_role,
                }))
            })
            .await?;
        return Ok(principal);
    }
    let Some((staff_id, generation)) = state.jwt.verify(&bearer) else {
        return Ok(None);
    };
    let member = state
        .db
        .run(move |conn| match StaffId::parse(&staff_id) {
            Some(id) => staff_db::find_staff(conn, &id).map_err(DbError::from),
            None => Ok(None),
        })
        .await?;
    Ok(member
        .filter(|m| !m.disabled)
        .filter(|m| m.token_generation == generation)
        .map(|m| Principal::Staff {
            role: m.role,
            id: m.id,
        }))
}

impl<P: Policy> Authorized<P> {
    /// Records a staff write in the audit log; call inside the transaction that makes it.
    pub fn audit(
        &self,
        conn: &mut db::AnyConnection,
        action: &str,
        object_type: &str,
        object_id: Option<&str>,
    ) -> diesel::QueryResult<()> {
        let (actor_type, actor_id) = match &self.principal {
            Principal::Staff { id, .. } => ("staff", id.as_str()),
            Principal::ApiKey { id, .. } => ("api_key", id.as_str()),
        };
        let actor = Actor {
            actor_type,
            actor_id: Some(actor_id),
            ip: self.ip.as_deref(),
        };
        actor.record(conn, action, object_type, object_id)
    }
}

impl Principal {
    /// Records a write this caller made, from `ip`, in the audit log; call inside the
    /// transaction that makes it.
    pub fn audit(
        &self,
        conn: &mut db::AnyConnection,
        ip: Option<&str>,
        action: &str,
        object_type: &str,
        object_id: Option<&str>,
    ) -> diesel::QueryResult<()> {
        let (actor_type, actor_id) = match self {
            Principal::Staff { id, .. } => ("staff", id.as_str()),
            Principal::ApiKey { id, .. } => ("api_key", id.as_str()),
        };
        let actor = Actor {
            actor_type,
            actor_id: Some(actor_id),
            ip,
        };
        actor.record(conn, action, object_type, object_id)
    }
}

/// Who made a change, for the audit log.
pub struct Actor<'a> {
    pub actor_type: &'a str,
    pub actor_id: Option<&'a str>,
    pub ip: Option<&'a str>,
}

impl Actor<'_> {
    pub fn record(
        &self,
        conn: &mut db::AnyConnection,
        action: &str,
        object_type: &str,
        object_id: Option<&str>,
    ) -> diesel::QueryResult<()> {
        db::audit::insert_audit_entry(
            conn,
            &db::audit::AuditEntry {
                id: db::new_id(),
                actor_type: self.actor_type.to_owned(),
                actor_id: self.actor_id.map(str::to_owned),
                action: action.to_owned(),
                object_type: object_type.to_owned(),
                object_id: object_id.map(str::to_owned),
                ip: self.ip.map(str::to_owned),
                created_at: db::now(),
            },
        )
    }
}

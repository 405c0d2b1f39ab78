//! Staff on the wire: a sign-in's bearer token, staff accounts, API keys (with who created them)
//! and the audit log.

use std::collections::HashMap;

use serde::Serialize;

use super::offset_time;
use crate::db::audit::AuditEntry;
use crate::db::staff::{ApiKey, KeyCreator, StaffMember};

/// A signed-in staff member's bearer token.
#[derive(Serialize)]
pub struct TokenView<'a> {
    pub access_token: &'a str,
    pub expires_in: i64,
    pub token_type: &'static str,
}

impl<'a> TokenView<'a> {
    pub fn bearer(access_token: &'a str, expires_in: i64) -> Self {
        Self {
            access_token,
            expires_in,
            token_type: "Bearer",
        }
    }
}

/// A staff account as admins read it (never its password hash).
#[derive(Serialize)]
pub struct StaffView<'a> {
    pub created_at: String,
    pub disabled: bool,
    pub email: &'a str,
    pub id: &'a str,
    pub role: &'a str,
    pub updated_at: String,
}

impl<'a> From<&'a StaffMember> for StaffView<'a> {
    fn from(m: &'a StaffMember) -> Self {
        Self {
            created_at: offset_time(m.created_at),
            disabled: m.disabled,
            email: &m.email,
            id: &m.id,
            role: m.role.as_str(),
            updated_at: offset_time(m.updated_at),
        }
    }
}

/// An API key as admins read it (never its hash). `status` is `revoked`; `suspended` while its
/// creator is disabled or no longer exists (it fails as a revoked key would); else `active`.
#[derive(Serialize)]
pub struct ApiKeyView<'a> {
    pub created_at: String,
    pub created_by: Option<CreatorView<'a>>,
    pub id: &'a str,
    pub last_used_at: Option<String>,
    pub name: &'a str,
    pub prefix: &'a str,
    pub revoked_at: Option<String>,
    pub scopes: Vec<String>,
    pub status: &'static str,
}

impl<'a> ApiKeyView<'a> {
    pub fn new(k: &'a ApiKey, creator: Option<&'a KeyCreator>) -> Self {
        let status = match (&k.revoked_at, creator) {
            (Some(_), _) => "revoked",
            (None, Some(c)) if !c.disabled => "active",
            (None, _) => "suspended",
        };
        Self {
            created_at: offset_time(k.created_at),
            created_by: creator.map(Into::into),
            id: &k.id,
            last_used_at: k.last_used_at.map(offset_time),
            name: &k.name,
            prefix: &k.prefix,
            revoked_at: k.revoked_at.map(offset_time),
            scopes: serde_json::from_str(&k.scopes).unwrap_or_default(),
            status,
        }
    }
}

/// A new API key with its secret, shown this once: only its hash is kept.
#[derive(Serialize)]
pub struct CreatedApiKeyView<'a> {
    #[serde(flatten)]
    pub api_key: ApiKeyView<'a>,
    pub key: &'a str,
}

/// Who created a key, as they are now: the key never does more than `role` allows.
#[derive(Serialize)]
pub struct CreatorView<'a> {
    pub disabled: bool,
    pub email: &'a str,
    pub id: &'a str,
    pub role: &'a str,
}

impl<'a> From<&'a KeyCreator> for CreatorView<'a> {
    fn from(c: &'a KeyCreator) -> Self {
        Self {
            disabled: c.disabled,
            email: &c.email,
            id: &c.id,
            role: c.role.as_str(),
        }
    }
}

/// One entry of the audit log: who did what to which object, from where, when. For an API
/// key, `api_key_created_by` names the staff member who created it.
#[derive(Serialize)]
pub struct AuditEntryView<'a> {
    pub action: &'a str,
    pub actor_id: Option<&'a str>,
    pub actor_type: &'a str,
    pub api_key_created_by: Option<KeyOwnerView<'a>>,
    pub created_at: String,
    pub id: &'a str,
    pub ip: Option<&'a str>,
    pub object_id: Option<&'a str>,
    pub object_type: &'a str,
}

impl<'a> AuditEntryView<'a> {
    /// The entry `e`; `creators` are the creators of the API keys on its page, by key id.
    pub fn new(e: &'a AuditEntry, creators: &'a HashMap<String, KeyCreator>) -> Self {
        let key_creator = (e.actor_type == "api_key")
            .then(|| e.actor_id.as_ref().and_then(|id| creators.get(id)))
            .flatten()
            .map(|c| KeyOwnerView {
                email: &c.email,
                id: &c.id,
            });
        Self {
            action: &e.action,
            actor_id: e.actor_id.as_deref(),
            actor_type: &e.actor_type,
            api_key_created_by: key_creator,
            created_at: offset_time(e.created_at),
            id: &e.id,
            ip: e.ip.as_deref(),
            object_id: e.object_id.as_deref(),
            object_type: &e.object_type,
        }
    }
}

/// The staff member who created the API key that acted.
#[derive(Serialize)]
pub struct KeyOwnerView<'a> {
    pub email: &'a str,
    pub id: &'a str,
}

/// An open staff invitation as admins read it (never its link or token).
#[derive(Serialize)]
pub struct InvitationView<'a> {
    pub created_at: String,
    pub email: &'a str,
    pub expired: bool,
    pub expires_at: String,
    pub id: &'a str,
    pub invited_by: Option<&'a str>,
    pub language: &'a str,
    pub role: &'a str,
    pub sent_at: String,
}

impl<'a> InvitationView<'a> {
    pub fn new(
        invitation: &'a crate::db::staff::Invitation,
        invited_by: Option<&'a str>,
        now: chrono::NaiveDateTime,
    ) -> Self {
        Self {
            created_at: offset_time(invitation.created_at),
            email: &invitation.email,
            expired: invitation.expires_at <= now,
            expires_at: offset_time(invitation.expires_at),
            id: &invitation.id,
            invited_by,
            language: &invitation.language,
            role: invitation.role.as_str(),
            sent_at: offset_time(invitation.sent_at),
        }
    }
}

//! The `staff` and `api_keys` tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ids::{ApiKeyId, StaffId};
use super::schema::{api_keys, staff, staff_invitations};
use super::AnyConnection;
use crate::domain::Role;

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = staff, treat_none_as_default_value = false)]
pub struct StaffMember {
    pub id: StaffId,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub token_generation: i32,
    /// The console's language for this member (`en`, `es`); unset: the browser's.
    pub language: Option<String>,
    /// An IANA time zone (`America/Phoenix`) for dates in the console; unset: the service's.
    pub time_zone: Option<String>,
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = staff)]
pub struct StaffChanges {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

/// A member's console preferences; `None` leaves that one as it is, `Some(None)` clears it.
#[derive(AsChangeset, Default)]
#[diesel(table_name = staff)]
pub struct StaffPreferences {
    pub language: Option<Option<String>>,
    pub time_zone: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn update_preferences(
    conn: &mut AnyConnection,
    id: &StaffId,
    changes: &StaffPreferences,
) -> QueryResult<bool> {
    diesel::update(staff::table.find(id))
        .set(changes)
        .execute(conn)
        .map(|n| n == 1)
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = api_keys, treat_none_as_default_value = false)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: String,
    pub created_by: Option<StaffId>,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

pub fn insert_staff(conn: &mut AnyConnection, member: &StaffMember) -> QueryResult<()> {
    diesel::insert_into(staff::table)
        .values(member)
        .execute(conn)
        .map(drop)
}

pub fn find_staff_by_email(
    conn: &mut AnyConnection,
    email: &str,
) -> QueryResult<Option<StaffMember>> {
    staff::table
        .filter(staff::email.eq(email))
        .select(StaffMember::as_select())
        .first(conn)
        .optional()
}

pub fn find_staff(conn: &mut AnyConnection, id: &StaffId) -> QueryResult<Option<StaffMember>> {
    staff::table
        .find(id)
        .select(StaffMember::as_select())
        .first(conn)
        .optional()
}

pub fn list_staff(conn: &mut AnyConnection) -> QueryResult<Vec<StaffMember>> {
    staff::table
        .order(staff::email.asc())
        .select(StaffMember::as_select())
        .load(conn)
}

pub fn update_staff(
    conn: &mut AnyConnection,
    id: &StaffId,
    changes: &StaffChanges,
) -> QueryResult<bool> {
    diesel::update(staff::table.find(id))
        .set(changes)
        .execute(conn)
        .map(|n| n == 1)
}

/// Signs out every token issued to the member so far.
pub fn bump_token_generation(conn: &mut AnyConnection, id: &StaffId) -> QueryResult<()> {
    diesel::update(staff::table.find(id))
        .set(staff::token_generation.eq(staff::token_generation + 1))
        .execute(conn)
        .map(drop)
}

pub fn insert_api_key(conn: &mut AnyConnection, key: &ApiKey) -> QueryResult<()> {
    diesel::insert_into(api_keys::table)
        .values(key)
        .execute(conn)
        .map(drop)
}

/// The staff member who created a key, as they are now.
#[derive(Clone, Debug)]
pub struct KeyCreator {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
}

type CreatorColumns = (staff::id, staff::email, staff::role, staff::disabled);
const CREATOR: CreatorColumns = (staff::id, staff::email, staff::role, staff::disabled);
type CreatorRow = (String, String, Role, bool);

fn creator((id, email, role, disabled): CreatorRow) -> KeyCreator {
    KeyCreator {
        id,
        email,
        role,
        disabled,
    }
}

/// Every key with its creator (`None` when the creator's account no longer exists).
pub fn list_api_keys(conn: &mut AnyConnection) -> QueryResult<Vec<(ApiKey, Option<KeyCreator>)>> {
    let rows: Vec<(ApiKey, Option<CreatorRow>)> = api_keys::table
        .left_join(staff::table)
        .order(api_keys::created_at.desc())
        .select((ApiKey::as_select(), CREATOR.nullable()))
        .load(conn)?;
    Ok(rows.into_iter().map(|(k, c)| (k, c.map(creator))).collect())
}

/// An unrevoked key by the hash of its secret, with its creator as they are now: one query,
/// on every request a key makes.
pub fn find_active_api_key(
    conn: &mut AnyConnection,
    key_hash: &str,
) -> QueryResult<Option<(ApiKey, Option<KeyCreator>)>> {
    let row: Option<(ApiKey, Option<CreatorRow>)> = api_keys::table
        .left_join(staff::table)
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .select((ApiKey::as_select(), CREATOR.nullable()))
        .first(conn)
        .optional()?;
    Ok(row.map(|(k, c)| (k, c.map(creator))))
}

/// Revokes every unrevoked key the staff member created; returns their ids.
pub fn revoke_api_keys_created_by(
    conn: &mut AnyConnection,
    staff_id: &StaffId,
    now: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let ids: Vec<String> = api_keys::table
        .filter(api_keys::created_by.eq(staff_id))
        .filter(api_keys::revoked_at.is_null())
        .select(api_keys::id)
        .load(conn)?;
    diesel::update(api_keys::table.filter(api_keys::id.eq_any(&ids)))
        .set(api_keys::revoked_at.eq(Some(now)))
        .execute(conn)?;
    Ok(ids)
}

/// (key id, creator) for those of `key_ids` whose creator still exists.
pub fn key_creators(
    conn: &mut AnyConnection,
    key_ids: &[String],
) -> QueryResult<Vec<(String, KeyCreator)>> {
    let rows: Vec<(String, CreatorRow)> = api_keys::table
        .inner_join(staff::table)
        .filter(api_keys::id.eq_any(key_ids))
        .select((api_keys::id, CREATOR))
        .load(conn)?;
    Ok(rows.into_iter().map(|(k, c)| (k, creator(c))).collect())
}

pub fn touch_api_key(
    conn: &mut AnyConnection,
    id: &ApiKeyId,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(api_keys::table.find(id))
        .set(api_keys::last_used_at.eq(Some(now)))
        .execute(conn)
        .map(drop)
}

/// Revokes a key; false when there is no such unrevoked key.
pub fn revoke_api_key(
    conn: &mut AnyConnection,
    id: &ApiKeyId,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        api_keys::table
            .find(id)
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(Some(now)))
    .execute(conn)
    .map(|n| n == 1)
}

crate::id_type! {
    /// An open invitation to join the staff (`staff_invitations.id`).
    pub struct InvitationId;
}

/// An invitation still open: the address, the role and console language it was made with, and
/// the SHA-256 of its link's token.
#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = staff_invitations, treat_none_as_default_value = false)]
pub struct Invitation {
    pub id: InvitationId,
    pub email: String,
    pub role: Role,
    pub language: String,
    pub token_hash: String,
    pub invited_by: Option<StaffId>,
    pub created_at: NaiveDateTime,
    /// When the link now valid was sent (sending again replaces the link).
    pub sent_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert_invitation(conn: &mut AnyConnection, invitation: &Invitation) -> QueryResult<()> {
    diesel::insert_into(staff_invitations::table)
        .values(invitation)
        .execute(conn)
        .map(drop)
}

/// Every open invitation, newest first, with the address of who made it (while their account
/// exists).
pub fn list_invitations(
    conn: &mut AnyConnection,
) -> QueryResult<Vec<(Invitation, Option<String>)>> {
    staff_invitations::table
        .left_join(staff::table)
        .order(staff_invitations::created_at.desc())
        .select((Invitation::as_select(), staff::email.nullable()))
        .load(conn)
}

pub fn find_invitation(
    conn: &mut AnyConnection,
    id: &InvitationId,
) -> QueryResult<Option<Invitation>> {
    staff_invitations::table
        .find(id)
        .select(Invitation::as_select())
        .first(conn)
        .optional()
}

pub fn find_invitation_by_email(
    conn: &mut AnyConnection,
    email: &str,
) -> QueryResult<Option<Invitation>> {
    staff_invitations::table
        .filter(staff_invitations::email.eq(email))
        .select(Invitation::as_select())
        .first(conn)
        .optional()
}

/// The invitations whose links carry these token hashes and are still valid at `now`.
pub fn find_open_invitations_by_token(
    conn: &mut AnyConnection,
    token_hashes: &[String],
    now: NaiveDateTime,
) -> QueryResult<Vec<Invitation>> {
    staff_invitations::table
        .filter(staff_invitations::token_hash.eq_any(token_hashes))
        .filter(staff_invitations::expires_at.gt(now))
        .select(Invitation::as_select())
        .load(conn)
}

/// Gives an invitation a new link (its token's hash) and expiry; false when it is gone.
pub fn renew_invitation(
    conn: &mut AnyConnection,
    id: &InvitationId,
    token_hash: &str,
    sent_at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(staff_invitations::table.find(id))
        .set((
            staff_invitations::token_hash.eq(token_hash),
            staff_invitations::sent_at.eq(sent_at),
            staff_invitations::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes an invitation (withdrawn or accepted); false when it was gone already.
pub fn delete_invitation(conn: &mut AnyConnection, id: &InvitationId) -> QueryResult<bool> {
    diesel::delete(staff_invitations::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

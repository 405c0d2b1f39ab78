//! Staff accounts as the API and the command line create them (one rule for both).

use crate::auth::Role;
use crate::db::{self, staff as staff_db};
use crate::domain::Email;
use crate::error::ApiError;

/// Creates a staff account (`POST /api/v1/staff` and `enlace staff create`); an address that
/// already has one is a conflict.
pub fn create_staff_member(
    conn: &mut db::AnyConnection,
    email: &Email,
    role: Role,
    password_hash: String,
) -> Result<staff_db::StaffMember, ApiError> {
    let now = db::now();
    let member = staff_db::StaffMember {
        id: db::new_id(),
        email: email.as_str().to_owned(),
        password_hash,
        role: role.as_str().to_owned(),
        disabled: false,
        created_at: now,
        updated_at: now,
        token_generation: 0,
    };
    match staff_db::insert_staff(conn, &member) {
        Ok(()) => Ok(member),
        Err(e) if db::is_unique_violation(&e) => Err(ApiError::Conflict(
            "a staff account with this email exists".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

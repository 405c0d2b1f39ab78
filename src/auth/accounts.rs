//! Staff accounts: the row a new account starts as, whoever creates it (`services::staff` for
//! the API and the command line).

use crate::auth::Role;
use crate::db::{self, staff as staff_db};
use crate::domain::Email;

/// Stores a new, enabled account for `email` with `role`, never signed in; an address that
/// already has one fails as a unique violation (`db::is_unique_violation`).
pub fn create_staff_member(
    conn: &mut db::AnyConnection,
    email: &Email,
    role: Role,
    password_hash: String,
) -> diesel::QueryResult<staff_db::StaffMember> {
    let now = db::now();
    let member = staff_db::StaffMember {
        id: db::ids::StaffId::new(),
        email: email.as_str().to_owned(),
        password_hash,
        role,
        disabled: false,
        created_at: now,
        updated_at: now,
        token_generation: 0,
        language: None,
        time_zone: None,
    };
    staff_db::insert_staff(conn, &member)?;
    Ok(member)
}

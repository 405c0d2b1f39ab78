//! What the targets share: a small database in memory with the fields, interests and people the
//! inputs refer to.

#![allow(dead_code)]

use diesel::prelude::*;
use diesel::SqliteConnection;
use enlace::db::{self, AnyConnection};
use serde_json::json;

#[path = "../../../tests/support/catalog.rs"]
mod catalog;

pub use catalog::{declarations, INTERESTS};

/// Confirmed people in `database()`.
pub const CONFIRMED: i64 = 4;

pub fn database() -> AnyConnection {
    let mut conn = AnyConnection::Sqlite(SqliteConnection::establish(":memory:").unwrap());
    catalog::seed_catalog(&mut conn);
    let now = db::now();
    let people = [
        ("confirmed", json!({})),
        ("confirmed", json!({"city": "Phoenix", "age": 30, "born": "2000-01-31", "member": true, "tier": "gold"})),
        ("confirmed", json!({"city": "' OR 1=1 %_\\", "age": 2.5, "member": "true", "tier": ["gold"]})),
        ("confirmed", json!({"city": 7, "age": null, "born": 20000131})),
        ("pending", json!({"city": "Phoenix"})),
    ];
    use enlace::db::schema::subscribers::dsl as s;
    for (i, (status, attributes)) in people.iter().enumerate() {
        diesel::insert_into(s::subscribers)
            .values((
                s::id.eq(db::new_id()),
                s::email.eq(format!("p{i}@example.org")),
                s::language.eq(["en", "es"][i % 2]),
                s::status.eq(*status),
                s::attributes.eq(attributes.to_string()),
                s::created_at.eq(now),
                s::updated_at.eq(now),
                s::confirmed_at.eq((*status == "confirmed").then_some(now)),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    conn
}

//! What the targets share: a small database in memory with the fields, interests and people the
//! inputs refer to.

#![allow(dead_code)]

use diesel::prelude::*;
use diesel::SqliteConnection;
use enlace::db::{self, AnyConnection};
use enlace::domain::{FieldDeclaration, FieldType};
use serde_json::json;

pub const INTERESTS: [&str; 2] = ["news", "gardening"];
/// Confirmed people in `database()`.
pub const CONFIRMED: i64 = 4;

pub fn declarations() -> Vec<FieldDeclaration> {
    let field = |key: &str, field_type, allowed: &[&str]| FieldDeclaration {
        key: key.into(),
        field_type,
        allowed_values: allowed.iter().map(|s| s.to_string()).collect(),
        public: false,
    };
    vec![
        field("city", FieldType::Text, &[]),
        field("age", FieldType::Number, &[]),
        field("born", FieldType::Date, &[]),
        field("member", FieldType::Boolean, &[]),
        field("tier", FieldType::OneOf, &["gold", "silver"]),
    ]
}

pub fn database() -> AnyConnection {
    let mut conn = AnyConnection::Sqlite(SqliteConnection::establish(":memory:").unwrap());
    db::run_migrations(&mut conn).unwrap();
    let now = db::now();
    for slug in INTERESTS {
        db::interests::insert_interest(
            &mut conn,
            &db::interests::Interest {
                slug: slug.into(),
                name_en: slug.into(),
                name_es: slug.into(),
                description_en: String::new(),
                description_es: String::new(),
                public: true,
                created_at: now,
                updated_at: now,
            },
        )
        .unwrap();
    }
    for f in declarations() {
        db::interests::insert_custom_field(
            &mut conn,
            &db::interests::CustomField {
                key: f.key.clone(),
                field_type: f.field_type.as_str().into(),
                allowed_values: (!f.allowed_values.is_empty())
                    .then(|| serde_json::to_string(&f.allowed_values).unwrap()),
                public: false,
                created_at: now,
                updated_at: now,
            },
        )
        .unwrap();
    }
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

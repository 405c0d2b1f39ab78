//! The catalog the property tests (tests/props.rs) and the fuzz targets (fuzz/) run against:
//! two interests and one declared field of every type, in a freshly migrated database.

#![allow(dead_code)]

use enlace::db::{self, AnyConnection};
use enlace::domain::{FieldDeclaration, FieldType};

pub const INTERESTS: [&str; 2] = ["news", "gardening"];

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

/// Migrates `conn` and stores `INTERESTS` and `declarations()`.
pub fn seed_catalog(conn: &mut AnyConnection) {
    db::run_migrations(conn).unwrap();
    let now = db::now();
    for slug in INTERESTS {
        db::interests::insert_interest(
            conn,
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
            conn,
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
}

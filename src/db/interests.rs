//! The `interests` and `custom_fields` tables (read side; staff manage them).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{custom_fields, interests};
use super::AnyConnection;
use crate::domain::{FieldDeclaration, FieldType, Language};

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = interests)]
pub struct Interest {
    pub slug: String,
    pub name_en: String,
    pub name_es: String,
    pub description_en: String,
    pub description_es: String,
    pub public: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Interest {
    pub fn name(&self, language: Language) -> &str {
        match language {
            Language::En => &self.name_en,
            Language::Es => &self.name_es,
        }
    }

    pub fn description(&self, language: Language) -> &str {
        match language {
            Language::En => &self.description_en,
            Language::Es => &self.description_es,
        }
    }
}

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = custom_fields)]
pub struct CustomField {
    pub key: String,
    pub field_type: String,
    pub allowed_values: Option<String>,
    pub public: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl CustomField {
    pub fn declaration(&self) -> Option<FieldDeclaration> {
        Some(FieldDeclaration {
            key: self.key.clone(),
            field_type: FieldType::parse(&self.field_type)?,
            allowed_values: self
                .allowed_values
                .as_deref()
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default(),
            public: self.public,
        })
    }
}

pub fn insert_interest(conn: &mut AnyConnection, interest: &Interest) -> QueryResult<()> {
    diesel::insert_into(interests::table)
        .values(interest)
        .execute(conn)
        .map(drop)
}

pub fn insert_custom_field(conn: &mut AnyConnection, field: &CustomField) -> QueryResult<()> {
    diesel::insert_into(custom_fields::table)
        .values(field)
        .execute(conn)
        .map(drop)
}

pub fn list_public_interests(conn: &mut AnyConnection) -> QueryResult<Vec<Interest>> {
    interests::table
        .filter(interests::public.eq(true))
        .order((interests::position.asc(), interests::slug.asc()))
        .select(Interest::as_select())
        .load(conn)
}

pub fn list_field_declarations(conn: &mut AnyConnection) -> QueryResult<Vec<FieldDeclaration>> {
    let rows: Vec<CustomField> = custom_fields::table
        .order((custom_fields::position.asc(), custom_fields::key.asc()))
        .select(CustomField::as_select())
        .load(conn)?;
    Ok(rows.iter().filter_map(CustomField::declaration).collect())
}

/// Every interest in the order staff gave them (by slug until they first reorder).
pub fn list_interests(conn: &mut AnyConnection) -> QueryResult<Vec<Interest>> {
    interests::table
        .order((interests::position.asc(), interests::slug.asc()))
        .select(Interest::as_select())
        .load(conn)
}

/// Puts a new interest last, once staff have ordered the interests (before that, all are
/// unplaced and listed by slug).
pub fn place_last(conn: &mut AnyConnection, slug: &str) -> QueryResult<()> {
    let last: Option<i32> = interests::table
        .select(diesel::dsl::max(interests::position))
        .first(conn)?;
    let last = last.unwrap_or(0);
    if last > 0 {
        diesel::update(interests::table.find(slug))
            .set(interests::position.eq(last + 1))
            .execute(conn)?;
    }
    Ok(())
}

/// Places the interests 1, 2, … in the order of `slugs`.
pub fn set_order(conn: &mut AnyConnection, slugs: &[String]) -> QueryResult<()> {
    for (place, slug) in (1..).zip(slugs) {
        diesel::update(interests::table.find(slug))
            .set(interests::position.eq(place))
            .execute(conn)?;
    }
    Ok(())
}

/// Puts a new custom field last, once staff have ordered the fields (as `place_last`).
pub fn place_field_last(conn: &mut AnyConnection, key: &str) -> QueryResult<()> {
    let last: Option<i32> = custom_fields::table
        .select(diesel::dsl::max(custom_fields::position))
        .first(conn)?;
    let last = last.unwrap_or(0);
    if last > 0 {
        diesel::update(custom_fields::table.find(key))
            .set(custom_fields::position.eq(last + 1))
            .execute(conn)?;
    }
    Ok(())
}

/// Places the custom fields 1, 2, … in the order of `keys`.
pub fn set_field_order(conn: &mut AnyConnection, keys: &[String]) -> QueryResult<()> {
    for (place, key) in (1..).zip(keys) {
        diesel::update(custom_fields::table.find(key))
            .set(custom_fields::position.eq(place))
            .execute(conn)?;
    }
    Ok(())
}

pub fn find_interest(conn: &mut AnyConnection, slug: &str) -> QueryResult<Option<Interest>> {
    interests::table
        .find(slug)
        .select(Interest::as_select())
        .first(conn)
        .optional()
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = interests)]
pub struct InterestChanges {
    pub name_en: Option<String>,
    pub name_es: Option<String>,
    pub description_en: Option<String>,
    pub description_es: Option<String>,
    pub public: Option<bool>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn update_interest(
    conn: &mut AnyConnection,
    slug: &str,
    changes: &InterestChanges,
) -> QueryResult<bool> {
    diesel::update(interests::table.find(slug))
        .set(changes)
        .execute(conn)
        .map(|n| n == 1)
}

/// How many subscribers have the interest.
pub fn count_members(conn: &mut AnyConnection, slug: &str) -> QueryResult<i64> {
    use super::schema::subscriber_interests;
    subscriber_interests::table
        .filter(subscriber_interests::interest_slug.eq(slug))
        .count()
        .get_result(conn)
}

/// Deletes the interest and its memberships. Losing an interest is a change to each member,
/// so their `updated_at` moves too (a sync client asking for changes since a time sees them).
pub fn delete_interest(
    conn: &mut AnyConnection,
    slug: &str,
    now: chrono::NaiveDateTime,
) -> QueryResult<bool> {
    use super::schema::{subscriber_interests, subscribers};
    let members = subscriber_interests::table
        .filter(subscriber_interests::interest_slug.eq(slug))
        .select(subscriber_interests::subscriber_id);
    diesel::update(subscribers::table.filter(subscribers::id.eq_any(members)))
        .set(subscribers::updated_at.eq(now))
        .execute(conn)?;
    diesel::delete(
        subscriber_interests::table.filter(subscriber_interests::interest_slug.eq(slug)),
    )
    .execute(conn)?;
    diesel::delete(interests::table.find(slug))
        .execute(conn)
        .map(|n| n == 1)
}

/// Every custom field in the order staff gave them (by key until they first reorder).
pub fn list_custom_fields(conn: &mut AnyConnection) -> QueryResult<Vec<CustomField>> {
    custom_fields::table
        .order((custom_fields::position.asc(), custom_fields::key.asc()))
        .select(CustomField::as_select())
        .load(conn)
}

pub fn find_custom_field(conn: &mut AnyConnection, key: &str) -> QueryResult<Option<CustomField>> {
    custom_fields::table
        .find(key)
        .select(CustomField::as_select())
        .first(conn)
        .optional()
}

#[derive(AsChangeset, Default)]
#[diesel(table_name = custom_fields)]
pub struct CustomFieldChanges {
    pub allowed_values: Option<Option<String>>,
    pub public: Option<bool>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn update_custom_field(
    conn: &mut AnyConnection,
    key: &str,
    changes: &CustomFieldChanges,
) -> QueryResult<bool> {
    diesel::update(custom_fields::table.find(key))
        .set(changes)
        .execute(conn)
        .map(|n| n == 1)
}

/// How many subscribers hold a value for the field (keys are restricted to `[a-z0-9_]`, so the
/// pattern cannot be steered).
pub fn count_field_values(conn: &mut AnyConnection, key: &str) -> QueryResult<i64> {
    use super::schema::subscribers;
    subscribers::table
        .filter(
            subscribers::attributes
                .like(format!("%\"{}\":%", key.replace('_', "\\_")))
                .escape('\\'),
        )
        .count()
        .get_result(conn)
}

pub fn delete_custom_field(conn: &mut AnyConnection, key: &str) -> QueryResult<bool> {
    diesel::delete(custom_fields::table.find(key))
        .execute(conn)
        .map(|n| n == 1)
}

//! Interests and custom fields: what staff offer on signup forms and the attributes they
//! declare, created, changed, listed and deleted (a deletion never silently drops what
//! subscribers hold).

use crate::auth::Principal;
use crate::db::interests::{
    self as store, CustomField, CustomFieldChanges, Interest, InterestChanges,
};
use crate::db::{self, Db, DbError};
use crate::domain::{FieldErrors, FieldType, InterestSlug};

/// A text in English and Spanish, either possibly missing.
#[derive(Default)]
pub struct Bilingual {
    pub en: Option<String>,
    pub es: Option<String>,
}

/// Checks a name or description text: trimmed, no control characters, at most `max` characters.
fn text(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<String>,
    max: usize,
    required: bool,
) -> Option<String> {
    // The length is counted as sent, as the document's maxLength counts it.
    let too_long = value.as_deref().is_some_and(|v| v.chars().count() > max);
    let value = value.map(|v| v.trim().to_owned());
    let empty = value.as_deref().is_none_or(str::is_empty);
    if empty && required {
        errors.add(field, "is required");
    } else if too_long
        || value
            .as_deref()
            .is_some_and(|v| v.chars().any(|c| c.is_control() && c != '\n'))
    {
        errors.add(field, format!("must be at most {max} characters of text"));
    }
    value
}

/// A slug as a path names it; one that could never exist is simply not found.
fn stored_slug(raw: &str) -> Option<String> {
    InterestSlug::parse(raw).ok().map(|s| s.as_str().to_owned())
}

pub async fn list_interests(db: &Db) -> Result<Vec<Interest>, DbError> {
    db.run(|conn| store::list_interests(conn).map_err(DbError::from))
        .await
}

/// The interest with this slug, if there is one.
pub async fn get_interest(db: &Db, slug: &str) -> Result<Option<Interest>, DbError> {
    let Some(slug) = stored_slug(slug) else {
        return Ok(None);
    };
    db.run(move |conn| store::find_interest(conn, &slug).map_err(DbError::from))
        .await
}

pub struct NewInterest {
    pub slug: String,
    pub name: Bilingual,
    pub description: Bilingual,
    pub public: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateInterestError {
    #[error("invalid interest")]
    Invalid(FieldErrors),
    #[error("an interest with this slug exists")]
    SlugTaken,
    #[error(transparent)]
    Db(#[from] DbError),
}

pub async fn create_interest(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    input: NewInterest,
) -> Result<Interest, CreateInterestError> {
    let mut errors = FieldErrors::new();
    let slug = InterestSlug::parse(&input.slug)
        .map_err(|_| errors.add("slug", "use 1-64 lower-case letters, digits, - or _"))
        .ok();
    let name_en = text(&mut errors, "name.en", input.name.en, 100, true);
    let name_es = text(&mut errors, "name.es", input.name.es, 100, true);
    let description = input.description;
    let description_en = text(&mut errors, "description.en", description.en, 1000, false);
    let description_es = text(&mut errors, "description.es", description.es, 1000, false);
    let Some(slug) = slug.filter(|_| errors.is_empty()) else {
        return Err(CreateInterestError::Invalid(errors));
    };
    let now = db::now();
    let interest = Interest {
        slug: slug.as_str().to_owned(),
        name_en: name_en.unwrap_or_default(),
        name_es: name_es.unwrap_or_default(),
        description_en: description_en.unwrap_or_default(),
        description_es: description_es.unwrap_or_default(),
        public: input.public,
        created_at: now,
        updated_at: now,
    };
    let stored = interest.clone();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let result = db
        .transaction(move |conn| -> Result<_, DbError> {
            store::insert_interest(conn, &stored)?;
            store::place_last(conn, &stored.slug)?;
            let slug = Some(stored.slug.as_str());
            Ok(actor.audit(conn, ip.as_deref(), "interest.create", "interest", slug)?)
        })
        .await;
    match result {
        Ok(()) => Ok(interest),
        Err(e) if e.is_unique_violation() => Err(CreateInterestError::SlugTaken),
        Err(e) => Err(e.into()),
    }
}

/// A change to an interest: what is `None` stays; an empty name stays too.
pub struct InterestChange {
    pub name: Bilingual,
    pub description: Bilingual,
    pub public: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateInterestError {
    #[error("invalid change")]
    Invalid(FieldErrors),
    #[error("no such interest")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

pub async fn update_interest(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    slug: &str,
    change: InterestChange,
) -> Result<Interest, UpdateInterestError> {
    let mut errors = FieldErrors::new();
    let (name, description) = (change.name, change.description);
    let changes = InterestChanges {
        name_en: text(&mut errors, "name.en", name.en, 100, false).filter(|s| !s.is_empty()),
        name_es: text(&mut errors, "name.es", name.es, 100, false).filter(|s| !s.is_empty()),
        description_en: text(&mut errors, "description.en", description.en, 1000, false),
        description_es: text(&mut errors, "description.es", description.es, 1000, false),
        public: change.public,
        updated_at: Some(db::now()),
    };
    errors.into_result().map_err(UpdateInterestError::Invalid)?;
    let slug = stored_slug(slug).ok_or(UpdateInterestError::NotFound)?;
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<_, DbError> {
        if store::update_interest(conn, &slug, &changes)? {
            actor.audit(
                conn,
                ip.as_deref(),
                "interest.update",
                "interest",
                Some(&slug),
            )?;
        }
        Ok(store::find_interest(conn, &slug)?)
    })
    .await?
    .ok_or(UpdateInterestError::NotFound)
}

/// Why an interest or a custom field could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("no such interest or field")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for MoveError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// `order` with `item` swapped with its neighbour above (`up`) or below; `None` when it is
/// already first (up) or last (down).
fn moved(mut order: Vec<String>, item: &str, up: bool) -> Result<Option<Vec<String>>, MoveError> {
    let at = order
        .iter()
        .position(|s| s == item)
        .ok_or(MoveError::NotFound)?;
    let to = if up { at.checked_sub(1) } else { Some(at + 1) };
    Ok(to.filter(|to| *to < order.len()).map(|to| {
        order.swap(at, to);
        order
    }))
}

/// Moves an interest one place up (`up`) or down in the order signup forms, the preferences
/// page and the API list them. The first cannot go up nor the last down: nothing changes.
pub async fn move_interest(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    slug: &str,
    up: bool,
) -> Result<(), MoveError> {
    let slug = stored_slug(slug).ok_or(MoveError::NotFound)?;
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| {
        let slugs = store::list_interests(conn)?.into_iter().map(|i| i.slug);
        let Some(order) = moved(slugs.collect(), &slug, up)? else {
            return Ok(());
        };
        store::set_order(conn, &order)?;
        let slug = Some(slug.as_str());
        actor.audit(conn, ip.as_deref(), "interest.reorder", "interest", slug)?;
        Ok(())
    })
    .await
}

/// Moves a custom field one place up (`up`) or down in the order the console, the person
/// forms and the API list them. The first cannot go up nor the last down: nothing changes.
pub async fn move_field(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    key: &str,
    up: bool,
) -> Result<(), MoveError> {
    let (key, actor, ip) = (key.to_owned(), actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| {
        let keys = store::list_custom_fields(conn)?.into_iter().map(|f| f.key);
        let Some(order) = moved(keys.collect(), &key, up)? else {
            return Ok(());
        };
        store::set_field_order(conn, &order)?;
        actor.audit(conn, ip.as_deref(), "field.reorder", "field", Some(&key))?;
        Ok(())
    })
    .await
}

/// A deleted interest: how many memberships went with it, for a caller who may read contacts.
pub struct DeletedInterest {
    pub memberships_removed: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteInterestError {
    #[error("no such interest")]
    NotFound,
    /// Subscribers have the interest and the deletion was not forced; how many, for a caller
    /// who may read contacts.
    #[error("subscribers have this interest")]
    InUse { members: Option<i64> },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Deletes an interest; while subscribers have it, only when `force`d, and then their
/// memberships go with it. How many people have it is data about people: a caller who may not
/// read contacts is told neither number.
pub async fn delete_interest(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    slug: &str,
    force: bool,
) -> Result<DeletedInterest, DeleteInterestError> {
    let may_count = actor.may_read_contacts();
    let slug = stored_slug(slug).ok_or(DeleteInterestError::NotFound)?;
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let removed = db
        .transaction(move |conn| {
            if store::find_interest(conn, &slug)?.is_none() {
                return Err(DeleteInterestError::NotFound);
            }
            let members = store::count_members(conn, &slug)?;
            if members > 0 && !force {
                return Err(DeleteInterestError::InUse {
                    members: may_count.then_some(members),
                });
            }
            store::delete_interest(conn, &slug, db::now())?;
            actor.audit(
                conn,
                ip.as_deref(),
                "interest.delete",
                "interest",
                Some(&slug),
            )?;
            Ok(members)
        })
        .await?;
    Ok(DeletedInterest {
        memberships_removed: may_count.then_some(removed),
    })
}

impl From<diesel::result::Error> for DeleteInterestError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Whether `key` could name a field: 1–64 lower-case letters, digits or `_`, starting with a
/// letter.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && key.as_bytes()[0].is_ascii_lowercase()
}

/// `one_of` needs 1–100 distinct values of at most 100 characters; other types take none.
fn check_allowed(
    errors: &mut FieldErrors,
    field_type: FieldType,
    values: Option<Vec<String>>,
) -> Option<String> {
    match (field_type, values) {
        (FieldType::OneOf, Some(values)) => {
            // As the document states them: at most 100 values as sent, each at most 100
            // characters as sent and not blank once trimmed.
            let sent = values.len();
            let mut clean: Vec<String> = Vec::new();
            for raw in values {
                let v = raw.trim().to_owned();
                if v.is_empty() || raw.chars().count() > 100 || v.chars().any(char::is_control) {
                    errors.add("allowed_values", "values are 1 to 100 characters");
                } else if !clean.contains(&v) {
                    clean.push(v);
                }
            }
            if clean.is_empty() || sent > 100 {
                errors.add("allowed_values", "one_of needs 1 to 100 values");
            }
            serde_json::to_string(&clean).ok()
        }
        (FieldType::OneOf, None) => {
            errors.add("allowed_values", "one_of needs allowed_values");
            None
        }
        (_, Some(_)) => {
            errors.add("allowed_values", "only one_of fields take allowed_values");
            None
        }
        (_, None) => None,
    }
}

pub async fn list_fields(db: &Db) -> Result<Vec<CustomField>, DbError> {
    db.run(|conn| store::list_custom_fields(conn).map_err(DbError::from))
        .await
}

/// The field with this key, if there is one.
pub async fn get_field(db: &Db, key: String) -> Result<Option<CustomField>, DbError> {
    if !valid_key(&key) {
        return Ok(None);
    }
    db.run(move |conn| store::find_custom_field(conn, &key).map_err(DbError::from))
        .await
}

pub struct NewField {
    pub key: String,
    pub field_type: String,
    pub allowed_values: Option<Vec<String>>,
    pub public: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateFieldError {
    #[error("invalid field")]
    Invalid(FieldErrors),
    #[error("a field with this key exists")]
    KeyTaken,
    #[error(transparent)]
    Db(#[from] DbError),
}

pub async fn create_field(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    input: NewField,
) -> Result<CustomField, CreateFieldError> {
    let mut errors = FieldErrors::new();
    if !valid_key(&input.key) {
        errors.add(
            "key",
            "use 1-64 lower-case letters, digits or _, starting with a letter",
        );
    }
    let field_type = FieldType::parse(&input.field_type);
    let allowed = match field_type {
        Some(t) => check_allowed(&mut errors, t, input.allowed_values),
        None => {
            errors.add("type", "must be text, number, date, boolean or one_of");
            None
        }
    };
    let Some(field_type) = field_type.filter(|_| errors.is_empty()) else {
        return Err(CreateFieldError::Invalid(errors));
    };
    let now = db::now();
    let field = CustomField {
        key: input.key,
        field_type: field_type.as_str().to_owned(),
        allowed_values: allowed,
        public: input.public,
        created_at: now,
        updated_at: now,
    };
    let stored = field.clone();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let result = db
        .transaction(move |conn| -> Result<_, DbError> {
            store::insert_custom_field(conn, &stored)?;
            store::place_field_last(conn, &stored.key)?;
            let key = Some(stored.key.as_str());
            Ok(actor.audit(conn, ip.as_deref(), "field.create", "field", key)?)
        })
        .await;
    match result {
        Ok(()) => Ok(field),
        Err(e) if e.is_unique_violation() => Err(CreateFieldError::KeyTaken),
        Err(e) => Err(e.into()),
    }
}

/// A change to a field: its allowed values (for `one_of` fields) and whether forms may set it.
pub struct FieldChange {
    pub allowed_values: Option<Vec<String>>,
    pub public: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateFieldError {
    #[error("invalid change")]
    Invalid(FieldErrors),
    #[error("no such field")]
    NotFound,
    /// Allowed values for a field whose type takes none.
    #[error("only one_of fields take allowed_values; {key} is a {field_type} field")]
    NotOneOf { key: String, field_type: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for UpdateFieldError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// The type of a field never changes (values already stored depend on it).
pub async fn update_field(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    key: String,
    change: FieldChange,
) -> Result<CustomField, UpdateFieldError> {
    if !valid_key(&key) {
        return Err(UpdateFieldError::NotFound);
    }
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| {
        let existing = store::find_custom_field(conn, &key)?.ok_or(UpdateFieldError::NotFound)?;
        let field_type =
            FieldType::parse(&existing.field_type).ok_or(UpdateFieldError::NotFound)?;
        // The values belong to the field's type, which never changes: a conflict with the field.
        if field_type != FieldType::OneOf && change.allowed_values.is_some() {
            return Err(UpdateFieldError::NotOneOf {
                key,
                field_type: existing.field_type,
            });
        }
        let mut errors = FieldErrors::new();
        let allowed = change
            .allowed_values
            .map(|values| check_allowed(&mut errors, field_type, Some(values)));
        errors.into_result().map_err(UpdateFieldError::Invalid)?;
        let changes = CustomFieldChanges {
            allowed_values: allowed,
            public: change.public,
            updated_at: Some(db::now()),
        };
        if store::update_custom_field(conn, &key, &changes)? {
            actor.audit(conn, ip.as_deref(), "field.update", "field", Some(&key))?;
        }
        store::find_custom_field(conn, &key)?.ok_or(UpdateFieldError::NotFound)
    })
    .await
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteFieldError {
    #[error("no such field")]
    NotFound,
    /// Subscribers hold a value for the field; how many, for a caller who may read contacts.
    #[error("subscribers have a value for this field")]
    InUse { holders: Option<i64> },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for DeleteFieldError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Deletes a field no subscriber holds a value for.
pub async fn delete_field(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    key: String,
) -> Result<(), DeleteFieldError> {
    if !valid_key(&key) {
        return Err(DeleteFieldError::NotFound);
    }
    let may_count = actor.may_read_contacts();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| {
        if store::find_custom_field(conn, &key)?.is_none() {
            return Err(DeleteFieldError::NotFound);
        }
        let holders = store::count_field_values(conn, &key)?;
        if holders > 0 {
            return Err(DeleteFieldError::InUse {
                holders: may_count.then_some(holders),
            });
        }
        store::delete_custom_field(conn, &key)?;
        actor.audit(conn, ip.as_deref(), "field.delete", "field", Some(&key))?;
        Ok(())
    })
    .await
}

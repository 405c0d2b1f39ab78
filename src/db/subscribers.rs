//! The `subscribers` and `subscriber_interests` tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ids::SubscriberId;
use super::schema::{interests, subscriber_interests, subscribers, tombstones};
use super::AnyConnection;
use crate::domain::SubscriberStatus;

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = subscribers)]
pub struct Subscriber {
    pub id: SubscriberId,
    pub email: String,
    pub name: Option<String>,
    pub language: String,
    pub status: SubscriberStatus,
    pub attributes: String,
    pub source: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub confirmed_at: Option<NaiveDateTime>,
    pub unsubscribed_at: Option<NaiveDateTime>,
}

/// Profile fields a signup or the preferences page may change.
#[derive(AsChangeset)]
#[diesel(table_name = subscribers)]
pub struct ProfileChanges<'a> {
    pub name: Option<Option<&'a str>>,
    pub language: Option<&'a str>,
    pub attributes: Option<&'a str>,
    pub source: Option<Option<&'a str>>,
    pub updated_at: NaiveDateTime,
}

pub fn find_subscriber_by_email(
    conn: &mut AnyConnection,
    email: &str,
) -> QueryResult<Option<Subscriber>> {
    subscribers::table
        .filter(subscribers::email.eq(email))
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

/// What a signup needs to know about an existing address. Narrower than the whole row, since
/// it is read for every public signup.
pub struct SignupState {
    pub id: String,
    pub status: SubscriberStatus,
    pub attributes: String,
}

/// Someone already on the list, as the writers of new people (a signup batch, an import part)
/// need to know them.
pub struct KnownPerson {
    pub id: SubscriberId,
    pub status: SubscriberStatus,
    pub name: Option<String>,
    pub language: String,
    pub attributes: String,
}

/// The one loader of addresses already on the list: (email, person) for those of `emails` that
/// exist. On PostgreSQL the rows are locked for the transaction, so concurrent signups and
/// import parts for one address take turns and each sees what the other wrote (SQLite's writers
/// take turns anyway).
pub fn find_known_people(
    conn: &mut AnyConnection,
    emails: &[&str],
) -> QueryResult<Vec<(String, KnownPerson)>> {
    if emails.is_empty() {
        return Ok(Vec::new());
    }
    let query = subscribers::table
        .filter(subscribers::email.eq_any(emails))
        .select((
            subscribers::email,
            subscribers::id,
            subscribers::status,
            subscribers::name,
            subscribers::language,
            subscribers::attributes,
        ));
    type Row = (
        String,
        SubscriberId,
        SubscriberStatus,
        Option<String>,
        String,
        String,
    );
    super::lock_changes(conn)?;
    let rows: Vec<Row> = match conn {
        AnyConnection::Postgresql(pg) => query.for_update().load(pg)?,
        AnyConnection::Sqlite(lite) => query.load(lite)?,
    };
    Ok(rows
        .into_iter()
        .map(|(email, id, status, name, language, attributes)| {
            (
                email,
                KnownPerson {
                    id,
                    status,
                    name,
                    language,
                    attributes,
                },
            )
        })
        .collect())
}

/// (email, state) for those of `emails` that exist, read by `find_known_people`.
pub fn find_signup_states(
    conn: &mut AnyConnection,
    emails: &[&str],
) -> QueryResult<Vec<(String, SignupState)>> {
    Ok(find_known_people(conn, emails)?
        .into_iter()
        .map(|(email, person)| {
            (
                email,
                SignupState {
                    id: person.id.into_string(),
                    status: person.status,
                    attributes: person.attributes,
                },
            )
        })
        .collect())
}

pub fn find_subscriber(
    conn: &mut AnyConnection,
    id: &SubscriberId,
) -> QueryResult<Option<Subscriber>> {
    subscribers::table
        .find(id)
        .select(Subscriber::as_select())
        .first(conn)
        .optional()
}

pub fn find_subscribers(conn: &mut AnyConnection, ids: &[&str]) -> QueryResult<Vec<Subscriber>> {
    subscribers::table
        .filter(subscribers::id.eq_any(ids))
        .select(Subscriber::as_select())
        .load(conn)
}

/// The newsletter engine's last look before sending, in one statement: `(id, status, false)` for
/// those of `ids` that exist, and `(hash, reason, true)` for those of `email_hashes` that are on
/// the suppression list.
pub fn find_standings(
    conn: &mut AnyConnection,
    ids: &[&str],
    email_hashes: &[&str],
) -> QueryResult<Vec<(String, String, bool)>> {
    use super::schema::suppressions;
    use diesel::sql_types::Bool;
    let query = subscribers::table
        .filter(subscribers::id.eq_any(ids))
        .select((
            subscribers::id,
            subscribers::status,
            false.into_sql::<Bool>(),
        ))
        .union_all(
            suppressions::table
                .filter(suppressions::email_hash.eq_any(email_hashes))
                .select((
                    suppressions::email_hash,
                    suppressions::reason,
                    true.into_sql::<Bool>(),
                )),
        );
    // Each backend's own connection: the multi-backend one has no UNION. (On PostgreSQL the
    // statement is prepared once and reused: `= ANY($1)` and binds, no literal SQL.)
    match conn {
        AnyConnection::Postgresql(pg) => query.load(pg),
        AnyConnection::Sqlite(lite) => query.load(lite),
    }
}

/// (subscriber id, interest) for every interest of the given subscribers.
pub fn list_interests_of(
    conn: &mut AnyConnection,
    subscriber_ids: &[&str],
) -> QueryResult<Vec<(String, super::interests::Interest)>> {
    subscriber_interests::table
        .inner_join(interests::table)
        .filter(subscriber_interests::subscriber_id.eq_any(subscriber_ids))
        .order((
            subscriber_interests::subscriber_id.asc(),
            interests::slug.asc(),
        ))
        .select((
            subscriber_interests::subscriber_id,
            super::interests::Interest::as_select(),
        ))
        .load(conn)
}

pub fn update_profile(
    conn: &mut AnyConnection,
    id: &str,
    changes: &ProfileChanges,
) -> QueryResult<()> {
    diesel::update(subscribers::table.find(id))
        .set(changes)
        .execute(conn)
        .map(drop)
}

/// Moves a subscriber to `status` from one of `from`, stamping the matching time column.
/// Returns false when the subscriber was not in one of `from` (someone else got there first:
/// the database re-checks the condition on the locked row).
pub fn set_status(
    conn: &mut AnyConnection,
    id: &SubscriberId,
    from: &[SubscriberStatus],
    status: SubscriberStatus,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let target = subscribers::table
        .find(id)
        .filter(subscribers::status.eq_any(from));
    match status {
        SubscriberStatus::Confirmed => diesel::update(target)
            .set((
                subscribers::status.eq(status),
                subscribers::confirmed_at.eq(Some(now)),
                subscribers::unsubscribed_at.eq(None::<NaiveDateTime>),
                subscribers::updated_at.eq(now),
            ))
            .execute(conn),
        SubscriberStatus::Unsubscribed => diesel::update(target)
            .set((
                subscribers::status.eq(status),
                subscribers::unsubscribed_at.eq(Some(now)),
                subscribers::updated_at.eq(now),
            ))
            .execute(conn),
        _ => diesel::update(target)
            .set((
                subscribers::status.eq(status),
                subscribers::updated_at.eq(now),
            ))
            .execute(conn),
    }
    .map(|n| n == 1)
}

/// Replaces the subscriber's interests with `slugs`.
pub fn replace_interests(
    conn: &mut AnyConnection,
    subscriber_id: &str,
    slugs: &[&str],
    now: NaiveDateTime,
) -> QueryResult<()> {
    clear_interests(conn, subscriber_id)?;
    add_interests(conn, subscriber_id, slugs, now)
}

pub fn clear_interests(conn: &mut AnyConnection, subscriber_id: &str) -> QueryResult<()> {
    diesel::delete(
        subscriber_interests::table.filter(subscriber_interests::subscriber_id.eq(subscriber_id)),
    )
    .execute(conn)
    .map(drop)
}

pub fn add_interests(
    conn: &mut AnyConnection,
    subscriber_id: &str,
    slugs: &[&str],
    now: NaiveDateTime,
) -> QueryResult<()> {
    for slug in slugs {
        diesel::insert_into(subscriber_interests::table)
            .values((
                subscriber_interests::subscriber_id.eq(subscriber_id),
                subscriber_interests::interest_slug.eq(*slug),
                subscriber_interests::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The subscriber's interests as (slug, name_en, name_es, description_en, description_es).
pub fn list_subscriber_interests(
    conn: &mut AnyConnection,
    subscriber_id: &str,
) -> QueryResult<Vec<super::interests::Interest>> {
    subscriber_interests::table
        .inner_join(interests::table)
        .filter(subscriber_interests::subscriber_id.eq(subscriber_id))
        .order(interests::slug.asc())
        .select(super::interests::Interest::as_select())
        .load(conn)
}

/// People by status, as the triggers on `subscribers` keep them (exact, without counting).
pub fn count_subscribers_by_status(
    conn: &mut AnyConnection,
) -> QueryResult<Vec<(SubscriberStatus, i64)>> {
    use super::dashboard::subscriber_counts as counts;
    counts::table
        .filter(counts::people.gt(0))
        .order(counts::status.asc())
        .select((counts::status, counts::people))
        .load(conn)
}

/// Filters for the change feed; `after` is the change number of the last change already seen.
#[derive(Default)]
pub struct SubscriberQuery {
    pub status: Option<SubscriberStatus>,
    pub language: Option<String>,
    pub interest: Option<String>,
    pub email_contains: Option<String>,
    pub updated_since: Option<NaiveDateTime>,
    pub after: i64,
    pub limit: i64,
}

/// Up to `q.limit` subscribers changed after `q.after` that match the filters, with their change
/// numbers, in change order.
pub fn list_changed_subscribers(
    conn: &mut AnyConnection,
    q: &SubscriberQuery,
) -> QueryResult<Vec<(Subscriber, i64)>> {
    let filter = PeopleFilter {
        status: q.status,
        language: q.language.clone(),
        interest: q.interest.clone(),
        address: q.email_contains.clone().map(AddressMatch::Contains),
        updated_since: q.updated_since,
        ..PeopleFilter::default()
    };
    let query = subscribers::table
        .select((Subscriber::as_select(), subscribers::change_seq))
        .filter(subscribers::change_seq.gt(q.after))
        .into_boxed();
    apply_filter(conn, query, &filter)?
        .order(subscribers::change_seq.asc())
        .limit(q.limit)
        .load(conn)
}

/// An erased subscriber: only the id, when, and its change number.
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = tombstones)]
pub struct Tombstone {
    pub subscriber_id: String,
    pub erased_at: NaiveDateTime,
    pub change_seq: i64,
}

/// Up to `limit` tombstones numbered after `after` (erased at or after `since`), in change order.
pub fn list_tombstones_after(
    conn: &mut AnyConnection,
    after: i64,
    since: Option<NaiveDateTime>,
    limit: i64,
) -> QueryResult<Vec<Tombstone>> {
    let mut query = tombstones::table
        .select(Tombstone::as_select())
        .filter(tombstones::change_seq.gt(after))
        .into_boxed();
    if let Some(since) = since {
        query = query.filter(tombstones::erased_at.ge(since));
    }
    query
        .order(tombstones::change_seq.asc())
        .limit(limit)
        .load(conn)
}

/// The highest change number committed so far (0 when nothing has changed yet). Read inside a
/// snapshot, every change up to it is visible in that snapshot.
pub fn latest_change(conn: &mut AnyConnection) -> QueryResult<i64> {
    use diesel::dsl::max;
    let subscribers: Option<i64> = subscribers::table
        .select(max(subscribers::change_seq))
        .first(conn)?;
    let tombstones: Option<i64> = tombstones::table
        .select(max(tombstones::change_seq))
        .first(conn)?;
    Ok(subscribers.unwrap_or(0).max(tombstones.unwrap_or(0)))
}

pub fn delete_subscriber(conn: &mut AnyConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(subscribers::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

pub fn insert_tombstone(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(tombstones::table)
        .values((
            tombstones::subscriber_id.eq(id),
            tombstones::erased_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>);

type MultiBackend = <AnyConnection as Connection>::Backend;
type Condition =
    Box<dyn BoxableExpression<subscribers::table, MultiBackend, SqlType = diesel::sql_types::Bool>>;

/// How an address filter looks for an address. Addresses are stored in canonical form
/// (lower-cased), and the text looked for is lower-cased too.
#[derive(Clone, Debug)]
pub enum AddressMatch {
    /// The text anywhere in the address (the JSON API's `email_contains`).
    Contains(String),
    /// Addresses that start with the text: found through the index on addresses.
    StartsWith(String),
    /// Addresses that end with the text (`@example.org`: everyone at a domain).
    EndsWith(String),
}

/// The filters the JSON API's list and the console's search share. `apply_filter` is the one
/// place each of them becomes SQL; the callers add their own cursor and order.
#[derive(Default, Clone, Debug)]
pub struct PeopleFilter {
    pub status: Option<SubscriberStatus>,
    pub language: Option<String>,
    pub interest: Option<String>,
    pub address: Option<AddressMatch>,
    /// Lowercase.
    pub name_contains: Option<String>,
    /// A custom field's key and the value it holds.
    pub attribute: Option<(String, String)>,
    pub updated_since: Option<NaiveDateTime>,
}

/// From this many matches on, a filter that has an index of its own (an interest, the start of
/// an address) is "common": the list is walked in the caller's order, checking each person,
/// since a page of matches comes soon. Below it the matches are read through the filter's index
/// and sorted, which is quick for a few thousand and saves walking a long list for them.
const COMMON: i64 = 5_000;

/// `%part%` for LIKE, with LIKE's own characters escaped by `\`.
fn like_pattern(part: &str) -> String {
    format!("%{}%", like_escape(part))
}

fn like_escape(part: &str) -> String {
    part.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The first string after every string that starts with `prefix`, in code point order (which
/// is SQLite's BINARY order): `prefix` with its last character moved one on. None when there
/// is no such string to write (the prefix ends in the last code point there is).
fn after_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32)?;
    chars.push(next);
    Some(chars.into_iter().collect())
}

/// Whether the people `condition` picks out number at least `COMMON` (read through its index:
/// at most `COMMON` index entries are looked at).
fn is_common(conn: &mut AnyConnection, condition: Condition) -> QueryResult<bool> {
    subscribers::table
        .select(subscribers::email)
        .filter(condition)
        .offset(COMMON - 1)
        .limit(1)
        .first::<String>(conn)
        .optional()
        .map(|found| found.is_some())
}

/// The condition for an address that starts with `prefix`, written so each database can find
/// the addresses through its index when they are few.
fn address_starts_with(conn: &mut AnyConnection, prefix: &str) -> QueryResult<Condition> {
    let like: Condition = Box::new(
        subscribers::email
            .like(format!("{}%", like_escape(prefix)))
            .escape('\\'),
    );
    match (&*conn, after_prefix(prefix)) {
        // SQLite uses no index for LIKE with an ESCAPE clause (nor for a case-insensitive LIKE
        // on a case-sensitive index), but does for a range, which is the same set here.
        (AnyConnection::Sqlite(_), Some(end)) => {
            let range = || -> Condition {
                Box::new(
                    subscribers::email
                        .ge(prefix.to_owned())
                        .and(subscribers::email.lt(end.clone())),
                )
            };
            // A short prefix matching thousands is found sooner walking the list than sorting
            // thousands: then the range is left unindexable on purpose.
            if is_common(conn, range())? {
                Ok(like)
            } else {
                Ok(range())
            }
        }
        // PostgreSQL's planner weighs the pattern against its statistics itself, and finds the
        // prefix through subscribers_email_pattern_idx.
        _ => Ok(like),
    }
}

/// The condition for people who hold the interest `slug`: membership read from the interest's
/// index when it has few members, a primary-key probe per person walked when it has many.
fn holds_interest(conn: &mut AnyConnection, slug: &str) -> QueryResult<Condition> {
    let members = || {
        subscriber_interests::table
            .filter(subscriber_interests::interest_slug.eq(slug.to_owned()))
            .select(subscriber_interests::subscriber_id)
    };
    let common = members()
        .offset(COMMON - 1)
        .limit(1)
        .first::<String>(conn)
        .optional()?
        .is_some();
    Ok(if common {
        Box::new(diesel::dsl::exists(
            subscriber_interests::table
                .filter(subscriber_interests::subscriber_id.eq(subscribers::id))
                .filter(subscriber_interests::interest_slug.eq(slug.to_owned())),
        ))
    } else {
        Box::new(subscribers::id.eq_any(members()))
    })
}

/// A name containing `part` (lowercase), in any case.
fn name_contains(conn: &AnyConnection, part: &str) -> Condition {
    use diesel::sql_types::{Bool, Nullable};
    type Maybe =
        Box<dyn BoxableExpression<subscribers::table, MultiBackend, SqlType = Nullable<Bool>>>;
    let mut any: Maybe = match conn {
        // LIKE already ignores ASCII case there: lower() would only cost time on every row.
        AnyConnection::Sqlite(_) => {
            Box::new(subscribers::name.like(like_pattern(part)).escape('\\'))
        }
        AnyConnection::Postgresql(_) => Box::new(
            lower(subscribers::name)
                .like(like_pattern(part))
                .escape('\\'),
        ),
    };
    // SQLite's LIKE and lower() fold only ASCII (and so does PostgreSQL's lower() under the C
    // locale): a name starting with a capital accented letter ("Ángela") is also looked for
    // with each word of the search capitalised. A second look over every row, so only when
    // capitals beyond ASCII make a difference.
    let capitalised = part
        .split(' ')
        .map(|word| {
            let mut letters = word.chars();
            letters
                .next()
                .map(|first| first.to_uppercase().chain(letters).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    if !capitalised.eq_ignore_ascii_case(part) {
        any = Box::new(
            any.or(subscribers::name
                .like(like_pattern(&capitalised))
                .escape('\\')),
        );
    }
    Box::new(any.assume_not_null())
}

diesel::define_sql_function!(fn instr(haystack: diesel::sql_types::Text, needle: diesel::sql_types::Text) -> diesel::sql_types::Integer);

/// A custom field holding `value`, exactly. Attributes are kept as compact JSON
/// (`{"city":"Tucson","age":30}`): a string value is matched quoted, a number or true/false as
/// it is written.
fn attribute_is(conn: &AnyConnection, key: &str, value: &str) -> Condition {
    let key = serde_json::Value::String(key.to_owned()).to_string();
    let quoted = serde_json::Value::String(value.to_owned()).to_string();
    let mut texts = vec![format!("{key}:{quoted}")];
    if let Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) =
        serde_json::from_str::<serde_json::Value>(value)
    {
        for end in [",", "}"] {
            texts.push(format!("{key}:{v}{end}"));
        }
    }
    let holds = |text: &String| -> Condition {
        match conn {
            // instr() compares bytes, as PostgreSQL's LIKE does, where SQLite's LIKE would
            // also take "ajo" for "Ajo"; and it is the quicker of the two over every row.
            AnyConnection::Sqlite(_) => {
                Box::new(instr(subscribers::attributes, text.clone()).gt(0))
            }
            AnyConnection::Postgresql(_) => Box::new(
                subscribers::attributes
                    .like(like_pattern(text))
                    .escape('\\'),
            ),
        }
    };
    let mut any = holds(&texts[0]);
    for text in &texts[1..] {
        any = Box::new(any.or(holds(text)));
    }
    any
}

impl PeopleFilter {
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.language.is_none()
            && self.interest.is_none()
            && self.address.is_none()
            && self.name_contains.is_none()
            && self.attribute.is_none()
            && self.updated_since.is_none()
    }
}

/// `query` narrowed by every filter in `f`.
pub fn apply_filter<'a, ST: 'a>(
    conn: &mut AnyConnection,
    mut query: subscribers::BoxedQuery<'a, MultiBackend, ST>,
    f: &PeopleFilter,
) -> QueryResult<subscribers::BoxedQuery<'a, MultiBackend, ST>> {
    if let Some(status) = f.status {
        query = query.filter(subscribers::status.eq(status));
    }
    if let Some(language) = &f.language {
        query = query.filter(subscribers::language.eq(language.clone()));
    }
    if let Some(slug) = &f.interest {
        query = query.filter(holds_interest(conn, slug)?);
    }
    match &f.address {
        None => {}
        Some(AddressMatch::Contains(part)) => {
            query = query.filter(subscribers::email.like(like_pattern(part)).escape('\\'));
        }
        Some(AddressMatch::StartsWith(prefix)) => {
            query = query.filter(address_starts_with(conn, prefix)?);
        }
        Some(AddressMatch::EndsWith(end)) => {
            query = query.filter(
                subscribers::email
                    .like(format!("%{}", like_escape(end)))
                    .escape('\\'),
            );
        }
    }
    if let Some(part) = &f.name_contains {
        query = query.filter(name_contains(conn, part));
    }
    if let Some((key, value)) = &f.attribute {
        query = query.filter(attribute_is(conn, key, value));
    }
    if let Some(since) = f.updated_since {
        query = query.filter(subscribers::updated_at.ge(since));
    }
    Ok(query)
}

/// Filters for staff searching the list; newest first, `before` is the id of the last person
/// already shown (ids sort by creation time, so a page is a walk down the primary key).
#[derive(Default, Clone)]
pub struct PeopleQuery {
    pub filter: PeopleFilter,
    pub before: Option<String>,
    pub limit: i64,
}

/// How many of the newest people (after the cursor) a search looks through first.
const WINDOW: i64 = 2_000;

/// Up to `q.limit` people matching the filters, newest first, after `q.before`.
pub fn search_people(conn: &mut AnyConnection, q: &PeopleQuery) -> QueryResult<Vec<Subscriber>> {
    let before = q.before.clone();
    let after_cursor = move || {
        let mut query = subscribers::table
            .select(Subscriber::as_select())
            .into_boxed();
        if let Some(before) = &before {
            query = query.filter(subscribers::id.lt(before.clone()));
        }
        query
    };
    let filtered = |conn: &mut AnyConnection| apply_filter(conn, after_cursor(), &q.filter);
    // The newest WINDOW people after the cursor, walked down the primary key: a search whose
    // matches are not rare fills its page among them, and so does the unfiltered list.
    let mut newest = subscribers::table.select(subscribers::id).into_boxed();
    if let Some(before) = &q.before {
        newest = newest.filter(subscribers::id.lt(before.clone()));
    }
    let floor = newest
        .order(subscribers::id.desc())
        .offset(WINDOW - 1)
        .limit(1)
        .first::<String>(conn)
        .optional()?;
    let Some(floor) = floor.filter(|_| !q.filter.is_empty()) else {
        return filtered(conn)?
            .order(subscribers::id.desc())
            .limit(q.limit)
            .load(conn);
    };
    let found: Vec<Subscriber> = filtered(conn)?
        .filter(subscribers::id.ge(floor))
        .order(subscribers::id.desc())
        .limit(q.limit)
        .load(conn)?;
    if found.len() as i64 >= q.limit {
        return Ok(found);
    }
    // Rare matches, then: read in the table's own order and sorted, rather than walked for in
    // id order (on SQLite a lookup in the table for each of a million ids). `id || ''` sorts as
    // `id` does, but is no index's order, so neither database walks one for it.
    filtered(conn)?
        .order(subscribers::id.concat("").desc())
        .limit(q.limit)
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::after_prefix;

    #[test]
    fn the_end_of_a_prefix_range_is_the_prefix_moved_one_on() {
        assert_eq!(after_prefix("user1").as_deref(), Some("user2"));
        assert_eq!(after_prefix("rosa.").as_deref(), Some("rosa/"));
        assert_eq!(after_prefix("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(after_prefix("a\u{10FFFF}"), None);
        assert_eq!(after_prefix(""), None);
    }
}

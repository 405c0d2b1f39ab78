//! The `segments` table, and the compiler that turns a `SegmentFilter` into one SQL condition over
//! `subscribers` that means the same on SQLite and PostgreSQL.

use chrono::NaiveDateTime;
use diesel::expression::{is_aggregate, AppearsOnTable, SelectableExpression, ValidGrouping};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Double, Text};

use super::ids::SegmentId;
use super::schema::{newsletters, segments, subscriber_interests, subscribers};
use super::states::NewsletterState;
use super::subscribers::Subscriber;
use super::{AnyConnection, Backend};
use crate::domain::{AttributeCondition, AttributeOp, AttributeValue, Scalar, SegmentFilter};

type MultiBackend = <AnyConnection as Connection>::Backend;

/// A condition on a `subscribers` row, for any query over that table alone.
pub type Condition = Box<dyn BoxableExpression<subscribers::table, MultiBackend, SqlType = Bool>>;

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = segments)]
pub struct Segment {
    pub id: SegmentId,
    pub name: String,
    /// The canonical JSON of the filter (`SegmentFilter::to_json`).
    pub filter: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Segment {
    /// The stored filter, parsed. It was checked when written, so an error here means the row
    /// was changed behind the API's back.
    pub fn parsed_filter(&self) -> anyhow::Result<SegmentFilter> {
        let value: serde_json::Value = serde_json::from_str(&self.filter)
            .map_err(|e| anyhow::anyhow!("stored filter of segment {}: {e}", self.id))?;
        SegmentFilter::parse(&value).map_err(|errors| {
            anyhow::anyhow!(
                "stored filter of segment {} does not parse: {errors:?}",
                self.id
            )
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = segments)]
pub struct SegmentChanges {
    pub name: Option<String>,
    pub filter: Option<String>,
    pub updated_at: NaiveDateTime,
}

pub fn insert_segment(conn: &mut AnyConnection, segment: &Segment) -> QueryResult<()> {
    diesel::insert_into(segments::table)
        .values(segment)
        .execute(conn)
        .map(drop)
}

pub fn find_segment(conn: &mut AnyConnection, id: &SegmentId) -> QueryResult<Option<Segment>> {
    segments::table
        .find(id)
        .select(Segment::as_select())
        .first(conn)
        .optional()
}

/// Like `find_segment`, and on PostgreSQL the row stays locked until the transaction ends, so no
/// newsletter can start using the segment meanwhile (its foreign key check waits for the lock).
pub fn lock_segment(conn: &mut AnyConnection, id: &SegmentId) -> QueryResult<Option<Segment>> {
    let query = segments::table.find(id);
    match conn {
        AnyConnection::Postgresql(pg) => query
            .select(Segment::as_select())
            .for_update()
            .first(pg)
            .optional(),
        AnyConnection::Sqlite(lite) => query.select(Segment::as_select()).first(lite).optional(),
    }
}

/// Every segment, by name.
pub fn list_segments(conn: &mut AnyConnection) -> QueryResult<Vec<Segment>> {
    segments::table
        .order((segments::name.asc(), segments::id.asc()))
        .select(Segment::as_select())
        .load(conn)
}

pub fn update_segment(
    conn: &mut AnyConnection,
    id: &SegmentId,
    changes: &SegmentChanges,
) -> QueryResult<bool> {
    diesel::update(segments::table.find(id))
        .set(changes)
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes the segment. Finished newsletters that used it must be detached first
/// (`detach_finished_newsletters`).
pub fn delete_segment(conn: &mut AnyConnection, id: &SegmentId) -> QueryResult<bool> {
    diesel::delete(segments::table.find(id))
        .execute(conn)
        .map(|n| n == 1)
}

/// How many newsletters that have not finished (may still send) use the segment.
pub fn count_newsletters_using(
    conn: &mut AnyConnection,
    segment_id: &SegmentId,
) -> QueryResult<i64> {
    newsletters::table
        .filter(newsletters::segment_id.eq(segment_id))
        .filter(newsletters::status.eq_any(NewsletterState::UNFINISHED))
        .count()
        .get_result(conn)
}

/// Forgets the segment on finished newsletters (sent, cancelled); returns how many.
pub fn detach_finished_newsletters(
    conn: &mut AnyConnection,
    segment_id: &SegmentId,
) -> QueryResult<usize> {
    diesel::update(
        newsletters::table
            .filter(newsletters::segment_id.eq(segment_id))
            .filter(diesel::dsl::not(
                newsletters::status.eq_any(NewsletterState::UNFINISHED),
            )),
    )
    .set(newsletters::segment_id.eq(None::<SegmentId>))
    .execute(conn)
}

/// How many subscribers the filter reaches now (confirmed ones only).
///
/// On PostgreSQL each interest the filter names is a `LEFT JOIN` on `subscriber_interests`
/// (its primary key makes it at most one row per person, so the count stays exact): the planner
/// hashes each interest's members once, shared by its parallel workers, where `EXISTS` under
/// `any` or `not` probes the index once per subscriber. SQLite reads `IN (…)` into a temporary
/// index once already.
pub fn count_recipients(
    conn: &mut AnyConnection,
    filter: &SegmentFilter,
    backend: Backend,
) -> QueryResult<i64> {
    let mut interests = Vec::new();
    filter.interests(&mut interests);
    if backend == Backend::Sqlite || interests.is_empty() {
        return subscribers::table
            .filter(condition(filter, backend))
            .count()
            .get_result(conn);
    }
    let condition = confirmed_and(compile(filter, backend, Some(&interests)));
    CountQuery {
        interests,
        condition,
    }
    .get_result(conn)
}

/// `SELECT COUNT(*) FROM subscribers LEFT JOIN subscriber_interests i0 ON … WHERE …`, one join
/// per interest.
struct CountQuery {
    interests: Vec<String>,
    condition: Condition,
}

impl QueryFragment<MultiBackend> for CountQuery {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql("SELECT COUNT(*) FROM subscribers");
        for (i, slug) in self.interests.iter().enumerate() {
            out.push_sql(&format!(
                " LEFT JOIN subscriber_interests i{i} ON i{i}.subscriber_id = subscribers.id \
                 AND i{i}.interest_slug = "
            ));
            out.push_bind_param::<Text, String>(slug)?;
        }
        out.push_sql(" WHERE ");
        self.condition.walk_ast(out.reborrow())
    }
}

impl QueryId for CountQuery {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for CountQuery {
    type SqlType = diesel::sql_types::BigInt;
}

impl RunQueryDsl<AnyConnection> for CountQuery {}

/// Up to `limit` of the subscribers the filter reaches, newest first.
pub fn sample_recipients(
    conn: &mut AnyConnection,
    filter: &SegmentFilter,
    backend: Backend,
    limit: i64,
) -> QueryResult<Vec<Subscriber>> {
    subscribers::table
        .filter(condition(filter, backend))
        .order((subscribers::created_at.desc(), subscribers::id.desc()))
        .limit(limit)
        .select(Subscriber::as_select())
        .load(conn)
}

/// The filter as one condition on `subscribers`, always limited to confirmed subscribers
/// whatever the filter says. No joins: it fits `subscribers::table.filter(…)` in any statement,
/// an `INSERT … SELECT` included.
///
/// Every part is two-valued (true or false, never NULL), so `not` is the exact complement:
/// a missing attribute, or one of another JSON type, simply does not match a comparison.
pub fn condition(filter: &SegmentFilter, backend: Backend) -> Condition {
    confirmed_and(compile(filter, backend, None))
}

fn confirmed_and(condition: Condition) -> Condition {
    Box::new(
        subscribers::status
            .eq(crate::domain::SubscriberStatus::Confirmed)
            .and(condition),
    )
}

/// `joined`: the interests a count has joined (`CountQuery`), each as `i{position}`; an
/// interest condition is then whether its join found a row.
fn compile(filter: &SegmentFilter, backend: Backend, joined: Option<&[String]>) -> Condition {
    match filter {
        SegmentFilter::All(children) => children
            .iter()
            .map(|c| compile(c, backend, joined))
            .reduce(|a, b| Box::new(a.and(b)))
            .unwrap_or_else(|| Box::new(Fragment::new().sql("1=1"))),
        SegmentFilter::Any(children) => children
            .iter()
            .map(|c| compile(c, backend, joined))
            .reduce(|a, b| Box::new(a.or(b)))
            .unwrap_or_else(never),
        SegmentFilter::Not(inner) => Box::new(diesel::dsl::not(compile(inner, backend, joined))),
        SegmentFilter::Interest(slug) if joined.is_some() => {
            let at = joined
                .and_then(|slugs| slugs.iter().position(|s| s == slug))
                .unwrap_or_default();
            Box::new(Fragment::new().sql(&format!("(i{at}.subscriber_id IS NOT NULL)")))
        }
        // SQLite reads `IN (subquery)` into a temporary index once. PostgreSQL turns either form
        // into a semi-join at the top of a filter, but under `any` or `not` it must keep `IN`
        // as a subplan, which it hashes only while the subscriber ids fit in `work_mem`; past
        // that it scans the list once per subscriber (minutes over a million subscribers).
        // `EXISTS` is one primary-key probe per subscriber there. Both are two-valued:
        // `subscriber_id` is never NULL.
        SegmentFilter::Interest(slug) => match backend {
            Backend::Sqlite => Box::new(
                subscribers::id.eq_any(
                    subscriber_interests::table
                        .filter(subscriber_interests::interest_slug.eq(slug.clone()))
                        .select(subscriber_interests::subscriber_id),
                ),
            ),
            Backend::Postgres => Box::new(diesel::dsl::exists(
                subscriber_interests::table
                    .filter(subscriber_interests::subscriber_id.eq(subscribers::id))
                    .filter(subscriber_interests::interest_slug.eq(slug.clone())),
            )),
        },
        SegmentFilter::Language(language) => {
            Box::new(subscribers::language.eq(language.as_str().to_owned()))
        }
        SegmentFilter::EmailDomain(domain) => {
            // Addresses are stored lower-cased, and so is the domain: LIKE's case rules (which
            // differ between the backends) never come into play.
            let escaped = domain
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            Box::new(subscribers::email.like(format!("%@{escaped}")).escape('\\'))
        }
        // `source` is NULL for people without one: `IS NOT NULL AND` keeps the part two-valued.
        SegmentFilter::Source(source) => Box::new(
            subscribers::source
                .is_not_null()
                .and(subscribers::source.assume_not_null().eq(source.clone())),
        ),
        SegmentFilter::Created(range) => {
            let mut parts: Vec<Condition> = Vec::new();
            if let Some(after) = range.after {
                parts.push(Box::new(subscribers::created_at.ge(after)));
            }
            if let Some(before) = range.before {
                parts.push(Box::new(subscribers::created_at.lt(before)));
            }
            all(parts)
        }
        SegmentFilter::Confirmed(range) => {
            let at = subscribers::confirmed_at.assume_not_null();
            let mut parts: Vec<Condition> = vec![Box::new(subscribers::confirmed_at.is_not_null())];
            if let Some(after) = range.after {
                parts.push(Box::new(at.ge(after)));
            }
            if let Some(before) = range.before {
                parts.push(Box::new(at.lt(before)));
            }
            all(parts)
        }
        SegmentFilter::Attribute(condition) => attribute(condition, backend),
    }
}

fn all(parts: Vec<Condition>) -> Condition {
    parts
        .into_iter()
        .reduce(|a, b| Box::new(a.and(b)))
        .unwrap_or_else(|| Box::new(Fragment::new().sql("1=1")))
}

fn never() -> Condition {
    Box::new(Fragment::new().sql("1=0"))
}

/// How the attribute's value is read from the JSON text in `subscribers.attributes`. Each
/// yields NULL unless the stored value has the JSON type the comparison is about.
#[derive(Clone, Copy)]
enum Read {
    /// JSON string, as text.
    Text,
    /// JSON number, as a double.
    Number,
    /// JSON true/false, as the text 'true'/'false'.
    Boolean,
}

fn read(f: Fragment, backend: Backend, key: &str, how: Read) -> Fragment {
    const SQLITE_TYPE: &str = "json_type(subscribers.attributes, '$.' || ";
    const SQLITE_VALUE: &str = "json_extract(subscribers.attributes, '$.' || ";
    const PG_TYPE: &str = "jsonb_typeof(subscribers.attributes::jsonb -> ";
    const PG_VALUE: &str = "(subscribers.attributes::jsonb ->> ";
    match (backend, how) {
        (Backend::Sqlite, Read::Text) => f
            .sql(&format!("(CASE WHEN {SQLITE_TYPE}"))
            .text(key)
            .sql(&format!(") = 'text' THEN {SQLITE_VALUE}"))
            .text(key)
            .sql(") END)"),
        (Backend::Sqlite, Read::Number) => f
            .sql(&format!("(CASE WHEN {SQLITE_TYPE}"))
            .text(key)
            .sql(&format!(
                ") IN ('integer', 'real') THEN CAST({SQLITE_VALUE}"
            ))
            .text(key)
            .sql(") AS REAL) END)"),
        (Backend::Sqlite, Read::Boolean) => f
            .sql(&format!("(CASE {SQLITE_TYPE}"))
            .text(key)
            .sql(") WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END)"),
        (Backend::Postgres, Read::Text) => f
            .sql(&format!("(CASE WHEN {PG_TYPE}"))
            .text(key)
            .sql(&format!(") = 'string' THEN {PG_VALUE}"))
            .text(key)
            .sql(") END)"),
        // CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and the cast
        // must never see text.
        (Backend::Postgres, Read::Number) => f
            .sql(&format!("(CASE WHEN {PG_TYPE}"))
            .text(key)
            .sql(&format!(") = 'number' THEN CAST({PG_VALUE}"))
            .text(key)
            .sql(") AS DOUBLE PRECISION) END)"),
        (Backend::Postgres, Read::Boolean) => f
            .sql(&format!("(CASE WHEN {PG_TYPE}"))
            .text(key)
            .sql(&format!(") = 'boolean' THEN {PG_VALUE}"))
            .text(key)
            .sql(") END)"),
    }
}

/// `COALESCE(<value> <op> <operand>, FALSE)`: NULL (no such value) becomes false.
fn compare(backend: Backend, key: &str, op: &str, operand: &Scalar) -> Condition {
    let (how, collate) = match operand {
        Scalar::Text(_) => (Read::Text, op != "="),
        Scalar::Number(_) => (Read::Number, false),
        Scalar::Bool(_) => (Read::Boolean, false),
    };
    let mut f = read(Fragment::new().sql("COALESCE("), backend, key, how);
    // Dates are compared as YYYY-MM-DD text: byte order, not the database's collation.
    if collate && backend == Backend::Postgres {
        f = f.sql(" COLLATE \"C\"");
    }
    f = f.sql(&format!(" {op} "));
    f = match operand {
        Scalar::Text(t) => f.text(t),
        Scalar::Number(n) => f.double(n.as_f64().unwrap_or(f64::NAN)),
        Scalar::Bool(b) => f.text(if *b { "true" } else { "false" }),
    };
    Box::new(f.sql(", 1=0)"))
}

/// Whether the value equals one of `values`, type and all (the text "30" never equals the
/// number 30). Text is read once per row as text, the way one writes it by hand
/// (`attributes::jsonb ->> key` on PostgreSQL, `json_extract` on SQLite), and its type is read
/// only where the text matched; numbers and booleans compare as JSON on PostgreSQL
/// (`-> key IN ('30'::jsonb, …)`, which also finds 30.0) and as `compare` does on SQLite.
fn equal_any(backend: Backend, key: &str, values: &[Scalar]) -> Condition {
    let texts: Vec<&String> = values
        .iter()
        .filter_map(|v| match v {
            Scalar::Text(t) => Some(t),
            _ => None,
        })
        .collect();
    let others: Vec<&Scalar> = values
        .iter()
        .filter(|v| !matches!(v, Scalar::Text(_)))
        .collect();
    let mut parts: Vec<Condition> = Vec::new();
    if !texts.is_empty() {
        let (value, kind) = match backend {
            Backend::Postgres => (
                "COALESCE((subscribers.attributes::jsonb ->> ",
                ") AND jsonb_typeof(subscribers.attributes::jsonb -> ",
            ),
            Backend::Sqlite => (
                "COALESCE(json_extract(subscribers.attributes, '$.' || ",
                ") AND json_type(subscribers.attributes, '$.' || ",
            ),
        };
        let mut f = Fragment::new().sql(value).text(key).sql(") IN (");
        for (i, t) in texts.iter().enumerate() {
            if i > 0 {
                f = f.sql(", ");
            }
            f = f.text(t);
        }
        let type_name = match backend {
            Backend::Postgres => ") = 'string', 1=0)",
            Backend::Sqlite => ") = 'text', 1=0)",
        };
        parts.push(Box::new(f.sql(kind).text(key).sql(type_name)));
    }
    if !others.is_empty() {
        match backend {
            Backend::Postgres => {
                let mut f = Fragment::new()
                    .sql("COALESCE((subscribers.attributes::jsonb -> ")
                    .text(key)
                    .sql(") IN (");
                for (i, v) in others.iter().enumerate() {
                    if i > 0 {
                        f = f.sql(", ");
                    }
                    let json = match v {
                        Scalar::Number(n) => n.to_string(),
                        Scalar::Bool(b) => b.to_string(),
                        Scalar::Text(t) => serde_json::Value::from(t.as_str()).to_string(),
                    };
                    f = f.sql("CAST(").text(&json).sql(" AS jsonb)");
                }
                parts.push(Box::new(f.sql("), 1=0)")));
            }
            Backend::Sqlite => parts.extend(others.iter().map(|v| compare(backend, key, "=", v))),
        }
    }
    parts
        .into_iter()
        .reduce(|a, b| Box::new(a.or(b)))
        .unwrap_or_else(never)
}

/// Where `needle` first occurs in the text value (1-based), compared with `op` and `at`.
fn position(backend: Backend, key: &str, needle: &str, op: &str, at: &str) -> Condition {
    let function = match backend {
        Backend::Sqlite => "instr(",
        Backend::Postgres => "strpos(",
    };
    let f = read(
        Fragment::new().sql("COALESCE(").sql(function),
        backend,
        key,
        Read::Text,
    );
    Box::new(f.sql(", ").text(needle).sql(&format!(") {op} {at}, 1=0)")))
}

/// Whether the attribute holds a value at all (JSON null counts as none).
fn exists(backend: Backend, key: &str) -> Condition {
    let f = match backend {
        Backend::Sqlite => Fragment::new()
            .sql("COALESCE(json_type(subscribers.attributes, '$.' || ")
            .text(key),
        Backend::Postgres => Fragment::new()
            .sql("COALESCE(jsonb_typeof(subscribers.attributes::jsonb -> ")
            .text(key),
    };
    Box::new(f.sql("), 'null') <> 'null'"))
}

/// Text comparisons (eq, ne, in, contains, starts_with) are exact and case-sensitive on both
/// backends; `ne` and `not_exists` match people without a value.
fn attribute(c: &AttributeCondition, backend: Backend) -> Condition {
    use AttributeOp as Op;
    let key = c.key.as_str();
    match (c.op, &c.value) {
        (Op::Exists, _) => exists(backend, key),
        (Op::NotExists, _) => Box::new(diesel::dsl::not(exists(backend, key))),
        (Op::Eq, AttributeValue::One(v)) => equal_any(backend, key, std::slice::from_ref(v)),
        (Op::Ne, AttributeValue::One(v)) => Box::new(diesel::dsl::not(equal_any(
            backend,
            key,
            std::slice::from_ref(v),
        ))),
        (Op::In, AttributeValue::List(values)) if !values.is_empty() => {
            equal_any(backend, key, values)
        }
        (Op::Contains, AttributeValue::One(Scalar::Text(t))) => position(backend, key, t, ">", "0"),
        (Op::StartsWith, AttributeValue::One(Scalar::Text(t))) => {
            position(backend, key, t, "=", "1")
        }
        (Op::Gt | Op::After, AttributeValue::One(v)) => compare(backend, key, ">", v),
        (Op::Gte, AttributeValue::One(v)) => compare(backend, key, ">=", v),
        (Op::Lt | Op::Before, AttributeValue::One(v)) => compare(backend, key, "<", v),
        (Op::Lte, AttributeValue::One(v)) => compare(backend, key, "<=", v),
        // Shapes the parser never produces.
        _ => never(),
    }
}

/// A boolean SQL snippet with bound parameters, built piece by piece (so a list of values
/// binds each one). Built from constants and field keys only; every value is a parameter.
#[derive(Debug, Clone, Default)]
struct Fragment(Vec<Part>);

#[derive(Debug, Clone)]
enum Part {
    Sql(String),
    Text(String),
    Double(f64),
}

impl Fragment {
    fn new() -> Self {
        Self::default()
    }

    fn sql(mut self, sql: &str) -> Self {
        self.0.push(Part::Sql(sql.to_owned()));
        self
    }

    fn text(mut self, value: &str) -> Self {
        self.0.push(Part::Text(value.to_owned()));
        self
    }

    fn double(mut self, value: f64) -> Self {
        self.0.push(Part::Double(value));
        self
    }
}

impl Expression for Fragment {
    type SqlType = Bool;
}

impl QueryFragment<MultiBackend> for Fragment {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        // Filters are staff-written and endless in variety: keep them out of the per-connection
        // prepared statement cache.
        out.unsafe_to_cache_prepared();
        for part in &self.0 {
            match part {
                Part::Sql(sql) => out.push_sql(sql),
                Part::Text(value) => out.push_bind_param::<Text, String>(value)?,
                Part::Double(value) => out.push_bind_param::<Double, f64>(value)?,
            }
        }
        Ok(())
    }
}

impl QueryId for Fragment {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<QS> AppearsOnTable<QS> for Fragment {}

impl<QS> SelectableExpression<QS> for Fragment {}

impl<GB> ValidGrouping<GB> for Fragment {
    type IsAggregate = is_aggregate::Never;
}

//! Properties over hostile input, run by `cargo test` with bounded case counts: the segment
//! filter parser and its SQL, the CSV import reader, newsletter templates with merge fields,
//! the token verifiers, and canonical e-mail addresses. The same four are fuzzed by the targets in `fuzz/` (see README §9).
//!
//! Segment filters run against SQLite in memory, and against PostgreSQL too when
//! `ENLACE_TEST_POSTGRES_URL` is set (a database of its own, dropped at the end).

#[path = "support/catalog.rs"]
mod catalog;
#[path = "support/spellings.rs"]
mod spellings;

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use enlace::auth::jwt::JwtKeys;
use enlace::db::{self, AnyConnection, Backend};
use enlace::domain::{Email, InterestSlug, Language, SegmentFilter};
use enlace::email::newsletter::{CompiledNewsletter, Content, MergeData, NewsletterContent};
use enlace::email::Templates;
use enlace::imports::plan::{prepare, Catalog, Options};
use enlace::imports::run::read_prepared;
use enlace::signup::PublicCatalog;
use enlace::tokens::ManageTokens;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use catalog::{declarations, seed_catalog};

/// Cases per property: enough to find the shapes that matter, few enough to take seconds.
const CASES: u32 = 256;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        // Failures print their minimal input; nothing is written into the source tree.
        failure_persistence: None,
        ..Config::default()
    })
}

/// Text an attacker would try: SQL and LIKE metacharacters, JSON path syntax, markup, header
/// breaks, NUL, other scripts, the length limits, and anything at all.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("' OR '1'='1".to_owned()),
        Just("\") OR 1=1 --".to_owned()),
        Just("%".to_owned()),
        Just("_".to_owned()),
        Just("\\".to_owned()),
        Just("a\u{0}b".to_owned()),
        Just("$.city".to_owned()),
        Just("ñandú 🌵 Ω".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("Eve\r\nBcc: all@example.org".to_owned()),
        Just("x".repeat(500)),
        Just("x".repeat(501)),
        any::<String>(),
        "[a-zA-Z0-9 .@_%'-]{0,12}",
    ]
}

// ---------------------------------------------------------------------------------------------
// Segment filters
// ---------------------------------------------------------------------------------------------

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        hostile_text().prop_map(Value::String),
        Just(json!("Phoenix")),
        Just(json!("gold")),
        Just(json!("2000-01-31")),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(1e308)),
        Just(json!(-0.0)),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
        Just(json!({"a": 1})),
    ]
}

fn operand() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        scalar().prop_map(Some),
        vec(scalar(), 0..5).prop_map(|l| Some(Value::Array(l))),
        Just(Some(Value::Array(vec![json!("x"); 101]))),
    ]
}

fn time() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("2026-01-01T00:00:00Z")),
        Just(json!("2025-12-31T23:59:59.999999+05:00")),
        Just(json!("2026-02-01T00:00:00.5Z")),
        Just(json!("+275760-09-13T00:00:00Z")),
        Just(json!("0000-01-01T00:00:00Z")),
        Just(json!("9999-12-31T23:59:59Z")),
        Just(json!("yesterday")),
        scalar(),
    ]
}

fn range() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(time()),
        proptest::option::of(time()),
        proptest::option::of(hostile_text()),
    )
        .prop_map(|(after, before, extra)| {
            let mut m = serde_json::Map::new();
            if let Some(a) = after {
                m.insert("after".into(), a);
            }
            if let Some(b) = before {
                m.insert("before".into(), b);
            }
            if let Some(k) = extra {
                m.insert(k, json!(1));
            }
            Value::Object(m)
        })
}

fn leaf() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("city"),
        Just("age"),
        Just("born"),
        Just("member"),
        Just("tier"),
        Just("nickname"),
        Just("City"),
        Just("a'b"),
    ];
    let op = prop_oneof![
        Just(json!("eq")),
        Just(json!("ne")),
        Just(json!("in")),
        Just(json!("contains")),
        Just(json!("starts_with")),
        Just(json!("gt")),
        Just(json!("gte")),
        Just(json!("lt")),
        Just(json!("lte")),
        Just(json!("before")),
        Just(json!("after")),
        Just(json!("exists")),
        Just(json!("not_exists")),
        Just(json!("like")),
        scalar(),
    ];
    let attribute = (key, op, operand(), any::<bool>()).prop_map(|(key, op, value, extra)| {
        let mut m = serde_json::Map::new();
        m.insert("key".into(), json!(key));
        m.insert("op".into(), op);
        if let Some(v) = value {
            m.insert("value".into(), v);
        }
        if extra {
            m.insert("extra".into(), json!(true));
        }
        json!({ "attribute": m })
    });
    let word = |fixed: &'static [&'static str]| {
        prop_oneof![
            proptest::sample::select(fixed).prop_map(|s| json!(s)),
            scalar(),
        ]
    };
    prop_oneof![
        4 => word(&["news", "gardening", "no-such"]).prop_map(|v| json!({ "interest": v })),
        2 => word(&["en", "es", "ES", " es ", "fr"]).prop_map(|v| json!({ "language": v })),
        2 => word(&["example.org", "Example.ORG", "ejemplo.es", "xn--and-6ma2c.es"])
            .prop_map(|v| json!({ "email_domain": v })),
        1 => word(&["homepage-form", "Homepage-Form", "fair"]).prop_map(|v| json!({ "source": v })),
        2 => range().prop_map(|r| json!({ "created": r })),
        2 => range().prop_map(|r| json!({ "confirmed": r })),
        8 => attribute,
        1 => scalar(),
        1 => Just(json!({})),
        1 => Just(json!({"interest": "news", "language": "en"})),
        1 => hostile_text().prop_map(|k| json!({ k: "news" })),
    ]
}

/// Filter trees up to 12 levels deep (past the limit of 10), with every leaf and some junk.
fn filter() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(12, 80, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(|l| json!({ "all": l })),
            vec(inner.clone(), 0..5).prop_map(|l| json!({ "any": l })),
            inner.prop_map(|f| json!({ "not": f })),
        ]
    })
}

/// A database with the declared fields and interests, and people whose attributes hold every
/// JSON type under every key, hostile text included.
fn seed(conn: &mut AnyConnection) {
    seed_catalog(conn);
    let now = db::now();
    let attributes = [
        json!({}),
        json!({"city": "Phoenix", "age": 30, "born": "2000-01-31", "member": true, "tier": "gold"}),
        json!({"city": "' OR '1'='1 %_\\", "age": 2.5, "born": "1999-12-31", "member": false}),
        json!({"city": 7, "age": "30", "born": 20000131, "member": "true", "tier": null}),
        json!({"city": null, "age": null, "member": null, "tier": ["gold"]}),
        json!({"city": {"nested": "x"}, "age": -1e300, "tier": "silver"}),
    ];
    use enlace::db::schema::subscribers::dsl as s;
    for (i, attrs) in attributes.iter().enumerate() {
        for (j, status) in ["confirmed", "pending", "unsubscribed"].iter().enumerate() {
            let id = db::new_id();
            diesel::insert_into(s::subscribers)
                .values((
                    s::id.eq(&id),
                    s::email.eq(format!("p{i}-{j}@{}", ["example.org", "ejemplo.es"][i % 2])),
                    s::name.eq(Some("Ana")),
                    s::language.eq(["en", "es"][i % 2]),
                    s::status.eq(*status),
                    s::attributes.eq(attrs.to_string()),
                    s::created_at.eq(now - chrono::Duration::days(i as i64 * 40)),
                    s::updated_at.eq(now),
                    s::confirmed_at.eq((*status == "confirmed").then_some(now)),
                    s::source.eq([Some("homepage-form"), None, Some("fair")][(i + j) % 3]),
                ))
                .execute(conn)
                .unwrap();
            if i % 2 == 0 {
                use enlace::db::schema::subscriber_interests::dsl as si;
                diesel::insert_into(si::subscriber_interests)
                    .values((
                        si::subscriber_id.eq(&id),
                        si::interest_slug.eq("news"),
                        si::created_at.eq(now),
                    ))
                    .execute(conn)
                    .unwrap();
            }
        }
    }
}

/// A seeded database on each backend this run has; PostgreSQL's is dropped when this goes.
struct Databases {
    conns: Vec<(Backend, AnyConnection)>,
    postgres: Option<(String, String)>,
}

impl Databases {
    fn open() -> Self {
        let mut sqlite = AnyConnection::Sqlite(SqliteConnection::establish(":memory:").unwrap());
        seed(&mut sqlite);
        let mut conns = vec![(Backend::Sqlite, sqlite)];
        let mut postgres = None;
        if let Ok(admin) = std::env::var("ENLACE_TEST_POSTGRES_URL") {
            if !admin.is_empty() {
                let name = format!("enlace_props_{}", uuid::Uuid::new_v4().simple());
                PgConnection::establish(&admin)
                    .unwrap()
                    .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                    .unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&format!("/{name}"));
                postgres = Some((admin, name));
                let mut pg =
                    AnyConnection::Postgresql(PgConnection::establish(url.as_str()).unwrap());
                seed(&mut pg);
                conns.push((Backend::Postgres, pg));
            }
        }
        Self { conns, postgres }
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        self.conns.clear();
        if let Some((admin, name)) = &self.postgres {
            if let Ok(mut conn) = PgConnection::establish(admin) {
                let _ =
                    conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
            }
        }
    }
}

/// Parsing never panics; errors name paths under `filter` in short messages; a parsed filter
/// round-trips through its canonical JSON; a checked one compiles to SQL that both backends
/// run, and `not` reaches exactly the confirmed people the filter does not.
#[test]
fn segment_filters_parse_round_trip_and_compile() {
    let dbs = std::cell::RefCell::new(Databases::open());
    let fields = declarations();
    let interests = vec!["news".to_owned(), "gardening".to_owned()];
    let everyone = SegmentFilter::All(vec![]);
    let totals: Vec<i64> = dbs
        .borrow_mut()
        .conns
        .iter_mut()
        .map(|(backend, conn)| db::segments::count_recipients(conn, &everyone, *backend).unwrap())
        .collect();
    assert!(totals.iter().all(|&t| t == 6), "{totals:?}");
    runner(CASES)
        .run(&filter(), |input| {
            let parsed = match SegmentFilter::parse(&input) {
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    for (path, messages) in &errors {
                        prop_assert!(path.starts_with("filter"), "{path}");
                        prop_assert!(path.len() < 400, "{path}");
                        prop_assert!(messages.iter().all(|m| m.len() < 400), "{messages:?}");
                    }
                    return Ok(());
                }
                Ok(parsed) => parsed,
            };
            let canonical = parsed.to_json();
            let reparsed = SegmentFilter::parse(&canonical);
            prop_assert_eq!(reparsed.as_ref(), Ok(&parsed));
            if parsed.check(&fields, &interests).is_err() {
                return Ok(());
            }
            let negated = SegmentFilter::Not(Box::new(parsed.clone()));
            let mut dbs = dbs.borrow_mut();
            for (i, (backend, conn)) in dbs.conns.iter_mut().enumerate() {
                let reached = db::segments::count_recipients(conn, &parsed, *backend);
                let rest = db::segments::count_recipients(conn, &negated, *backend);
                let sample = db::segments::sample_recipients(conn, &parsed, *backend, 10);
                let (reached, rest, sample) = match (reached, rest, sample) {
                    (Ok(a), Ok(b), Ok(c)) => (a, b, c),
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "{backend:?} could not run {canonical}: {:?}",
                            (other.0.err(), other.1.err(), other.2.err())
                        )))
                    }
                };
                prop_assert_eq!(reached + rest, totals[i], "{:?}: {}", backend, canonical);
                prop_assert_eq!(sample.len() as i64, reached.min(10));
                prop_assert!(sample.iter().all(|s| s.status.as_str() == "confirmed"));
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// CSV import reader
// ---------------------------------------------------------------------------------------------

fn header_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("email".to_owned()),
        1 => Just("Correo Electrónico".to_owned()),
        2 => Just("name".to_owned()),
        1 => Just("Nombre".to_owned()),
        1 => Just("idioma".to_owned()),
        1 => Just("interests".to_owned()),
        1 => Just("city".to_owned()),
        1 => Just("Tier".to_owned()),
        1 => Just("age".to_owned()),
        1 => Just("member".to_owned()),
        1 => Just("born".to_owned()),
        1 => Just("colour".to_owned()),
        1 => Just(String::new()),
        1 => Just("=cmd|' /C calc'!A0".to_owned()),
        1 => hostile_text(),
    ]
}

fn data_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("ana@example.org".to_owned()),
        2 => Just("Rosa.Perez@Ejemplo.ES".to_owned()),
        1 => Just("luis@example.org".to_owned()),
        1 => Just("not-an-email".to_owned()),
        1 => Just("a@b.org\r\nBcc: c@d.org".to_owned()),
        1 => Just("<ana@example.org>".to_owned()),
        2 => Just("Ana \"la de la tienda\", Pérez".to_owned()),
        1 => Just("Line\nbreak".to_owned()),
        1 => Just("=HYPERLINK(\"http://evil.example\",\"click\")".to_owned()),
        1 => Just("+cmd|' /C calc'!A0".to_owned()),
        1 => Just("-1+1".to_owned()),
        1 => Just("@SUM(A1:A2)".to_owned()),
        1 => Just("\tTab".to_owned()),
        1 => Just("es-MX".to_owned()),
        1 => Just("news; gardening, no such".to_owned()),
        1 => Just("3.5".to_owned()),
        1 => Just("1e999".to_owned()),
        1 => Just("sí".to_owned()),
        1 => Just("2000-02-30".to_owned()),
        1 => Just("gold".to_owned()),
        1 => Just(String::new()),
        3 => hostile_text(),
    ]
}

#[derive(Debug, Clone)]
struct CsvCase {
    bytes: Vec<u8>,
    delimiter: Option<u8>,
    map: Vec<(String, String)>,
}

/// Quotes a cell as a spreadsheet would, or (sometimes) not at all.
fn encode_cell(cell: &str, delimiter: char, proper: bool) -> String {
    let needs = cell.contains([delimiter, '"', '\n', '\r']);
    if needs && proper {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

fn csv_case() -> impl Strategy<Value = CsvCase> {
    (
        vec(header_cell(), 1..6),
        vec(vec(data_cell(), 0..7), 0..8),
        proptest::sample::select(vec![',', ';', '\t']),
        any::<bool>(),
        any::<bool>(),
        proptest::bool::weighted(0.9),
        proptest::option::of((any::<usize>(), any::<u8>())),
        proptest::option::of(any::<usize>()),
        proptest::option::of(proptest::sample::select(vec![b',', b';', b'\t', b'|'])),
        vec(
            (
                header_cell(),
                "email|name|language|interests|attributes.city|ignore|nope",
            ),
            0..2,
        ),
    )
        .prop_map(
            |(header, rows, delim, bom, crlf, proper, poke, cut, delimiter, map)| {
                let ncols = header.len();
                let end = if crlf { "\r\n" } else { "\n" };
                let mut text = String::new();
                if bom {
                    text.push('\u{feff}');
                }
                let line = |cells: &[String]| {
                    cells
                        .iter()
                        .map(|c| encode_cell(c, delim, proper))
                        .collect::<Vec<_>>()
                        .join(&delim.to_string())
                };
                text.push_str(&line(&header));
                text.push_str(end);
                for mut row in rows {
                    // Mostly the header's width; sometimes one short or one long.
                    if row.len() != ncols && row.len() % 3 != 0 {
                        row.resize(ncols, String::new());
                    }
                    text.push_str(&line(&row));
                    text.push_str(end);
                }
                let mut bytes = text.into_bytes();
                if let Some((at, byte)) = poke {
                    if !bytes.is_empty() {
                        let at = at % bytes.len();
                        bytes[at] = byte;
                    }
                }
                if let Some(at) = cut {
                    bytes.truncate(at % (bytes.len() + 1));
                }
                CsvCase {
                    bytes,
                    delimiter,
                    map,
                }
            },
        )
}

/// The reader never panics; an accepted file's rows are all read, on rising lines, each either
/// a valid address or problems, and no report text ever repeats an address from the file.
#[test]
fn csv_imports_read_every_row_or_refuse_clearly() {
    let mut conn = AnyConnection::Sqlite(SqliteConnection::establish(":memory:").unwrap());
    seed(&mut conn);
    let catalog = PublicCatalog::load_for_staff(&mut conn).unwrap();
    let fields = declarations();
    let upload_catalog = Catalog {
        interests: vec!["news".into(), "gardening".into()],
        fields: fields.clone(),
    };
    runner(CASES)
        .run(&csv_case(), |case| {
            let options = Options {
                language: Language::Es,
                interests: vec![InterestSlug::parse("news").unwrap()],
                map: case.map.clone(),
                delimiter: case.delimiter,
            };
            let prepared = match prepare(&case.bytes, &options, &upload_catalog) {
                Err(refusal) => {
                    prop_assert!(!refusal.is_empty());
                    let all: Vec<&String> = refusal.iter().flat_map(|(_, m)| m).collect();
                    // Refusals answer the uploader only, and may quote the file's header.
                    prop_assert!(all.iter().all(|m| m.len() < 2000), "{all:?}");
                    return Ok(());
                }
                Ok(p) => p,
            };
            prop_assert!(prepared.rows >= 1);
            let rows = match read_prepared(&prepared, &catalog, &fields) {
                Ok(rows) => rows,
                Err(e) => return Err(TestCaseError::fail(format!("stored parts unreadable: {e}"))),
            };
            prop_assert_eq!(rows.len() as i64, prepared.rows);
            let mut last = 1;
            for (line, outcome) in &rows {
                prop_assert!(*line > last, "lines rise: {rows:?}");
                last = *line;
                match outcome {
                    Ok(email) => prop_assert!(Email::parse(email).is_ok()),
                    Err(problems) => {
                        prop_assert!(!problems.is_empty());
                        for p in problems {
                            prop_assert!(!p.contains('@'), "an address in the report: {p}");
                        }
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Newsletter templates
// ---------------------------------------------------------------------------------------------

/// Pieces of a newsletter template: text, merge fields through filters, `if` blocks (balanced or
/// not), constructs outside the merge-field language (refused), and some that do not compile.
/// Staff may mark a value safe (`|safe`): that is left out, everything else must escape.
fn template_piece() -> impl Strategy<Value = String> {
    let valid = proptest::sample::select(vec![
        "{{ name }}",
        "{{ email }}",
        "{{ attributes.city }}",
        "{{ attributes.tier }}",
        "{{ attributes.nope }}",
        "{{ attributes }}",
        "{{ attributes['city'] }}",
        "{{ name|upper }}",
        "{{ name|title }}",
        "{{ name|capitalize }}",
        "{{ name|trim }}",
        "{{ name|default('amigo') }}",
        "{{ name or 'friend' }}",
        "{{ name|e }}",
        "{{ name|escape|upper }}",
        "{{ name|lower|e }}",
        "{{ name[1:] }}",
        "{{ name|first }}",
        "{{ name|length }}",
        "{{ attributes.tier|first }}",
        "{{ attributes.tier|last }}",
        "{{ 'a' if name else 'b' }}",
        "{{ org }} {{ postal_address }}",
        "{{ unsubscribe_url }}",
        "{% if name %}a{% else %}b{% endif %}",
        "{% if attributes.city == 'Tucson' and language in ['en', 'es'] %}x{% elif not name %}y{% endif %}",
        "{% if attributes.tier is defined %}{{ attributes.tier }}{% endif %}",
        "{% raw %}{{ name }}{% endraw %}",
        "</body>",
        "<html><body>",
    ]);
    let broken = proptest::sample::select(vec![
        "{{ name|nope }}",
        "{{ name|replace('q', 'Q') }}",
        "{{ name|list|join('') }}",
        "{{ name|indent(2) }}",
        "{{ '%s'|format(name) }}",
        "{{ name ~ attributes.city }}",
        "{{ name * 3 }}",
        "{{ [name, email] }}",
        "{{ {'a': name} }}",
        "{{ undefined_thing }}",
        "{{ range(3) }}",
        "{{ name.upper() }}",
        "{% for c in name %}{{ c }}{% endfor %}",
        "{% set x = name %}{{ x }}",
        "{% set x %}{{ name }}{% endset %}{{ x }}",
        "{% macro m(v) %}<b>{{ v }}</b>{% endmacro %}{{ m(name) }}",
        "{% filter upper %}{{ name }}{% endfilter %}",
        "{% if name %}",
        "{% endif %}",
        "{% for c in name %}",
        "{% endfor %}",
        "{% include 'default/body.html' %}",
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
    ]);
    prop_oneof![
        12 => valid.prop_map(str::to_owned),
        2 => broken.prop_map(str::to_owned),
        // Literal text without digits, so it never spells the marker below.
        4 => "[a-zA-Z ,.!&<>/=\"'\n]{0,12}",
    ]
}

fn template() -> impl Strategy<Value = String> {
    vec(template_piece(), 0..8).prop_map(|p| p.concat())
}

/// Merge values carry this; the whole of it raw in the HTML would mean a value went in
/// unescaped. (`<q7` alone is not proof: a template may put its own `<` before `{{ name[1:] }}`,
/// a value whose first character is cut off, and the value's `>` is then still escaped.)
const MARKER: &str = "<q7 onmouseover=alert(1)>";

#[derive(Debug, Clone)]
struct TemplateCase {
    subject: String,
    html: String,
    text: Option<String>,
    variant: Option<String>,
    name: String,
    city: String,
}

fn template_case() -> impl Strategy<Value = TemplateCase> {
    (
        template(),
        template(),
        proptest::option::of(template()),
        proptest::option::of(template()),
        hostile_text(),
        hostile_text(),
    )
        .prop_map(|(subject, html, text, variant, name, city)| TemplateCase {
            subject,
            html,
            text,
            variant,
            name: format!("{name}{MARKER}\r\nBcc: x@example.org{}", "n".repeat(40)),
            city: format!("{MARKER}{city}"),
        })
}

/// Compiling and rendering never panic and end (fuel); merge values are escaped in the HTML
/// part whatever filters they pass through, and a subject stays on one line.
#[test]
fn templates_escape_merge_values_and_end() {
    let templates = Templates::new("Org <b>", Some("1 Main St")).unwrap();
    runner(CASES)
        .run(&template_case(), |case| {
            let mut variants = BTreeMap::new();
            if let Some(html) = &case.variant {
                variants.insert(
                    Language::Es,
                    Content {
                        subject: "Hola {{ name }}".into(),
                        html: html.clone(),
                        text: None,
                        preheader: None,
                    },
                );
            }
            let content = NewsletterContent {
                default: Content {
                    subject: case.subject.clone(),
                    html: case.html.clone(),
                    text: case.text.clone(),
                    preheader: None,
                },
                variants,
            };
            let started = std::time::Instant::now();
            let declared = ["city".to_owned(), "tier".to_owned()];
            let Ok(compiled) = CompiledNewsletter::compile(&content, &declared, "Org", None) else {
                return Ok(());
            };
            let attributes = json!({"city": case.city, "tier": [MARKER, 1], "age": 3});
            for language in Language::ALL {
                let data = MergeData {
                    name: Some(&case.name),
                    email: "ana+<q7>@example.org",
                    language,
                    attributes: &attributes,
                    unsubscribe_url: "https://example.org/unsubscribe/<q7>",
                    preferences_url: "https://example.org/preferences/x",
                };
                if let Ok(out) = compiled.render(&data, &templates) {
                    prop_assert!(
                        !out.html.contains(MARKER) && !out.html.contains("<q7>"),
                        "unescaped in:\n{}",
                        out.html
                    );
                    prop_assert!(!out.subject.contains(['\r', '\n']), "{:?}", out.subject);
                }
            }
            prop_assert!(
                started.elapsed().as_secs() < 20,
                "took {:?}",
                started.elapsed()
            );
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

const SECRET: &[u8] = b"props-secret-that-is-long-enough-0123456789";

#[derive(Debug, Clone)]
enum Forgery {
    /// Anything at all.
    Random(String),
    /// A genuine manage token with one character changed.
    ManageMutated(usize, char),
    /// A genuine access token with one character changed.
    JwtMutated(usize, char),
    /// A genuine token with bytes cut from the end or appended.
    Truncated(bool, usize),
    Appended(bool, String),
}

fn forgery() -> impl Strategy<Value = Forgery> {
    let token_char = proptest::sample::select(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ %"
            .chars()
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,64}",
            "enl_[A-Za-z0-9_-]{43}",
            "[A-Za-z0-9_-]{10,40}\\.[A-Za-z0-9_-]{10,80}\\.[A-Za-z0-9_-]{0,43}",
        ]
        .prop_map(Forgery::Random),
        (any::<usize>(), token_char.clone()).prop_map(|(i, c)| Forgery::ManageMutated(i, c)),
        (any::<usize>(), token_char).prop_map(|(i, c)| Forgery::JwtMutated(i, c)),
        (any::<bool>(), 1..8usize).prop_map(|(b, n)| Forgery::Truncated(b, n)),
        (any::<bool>(), "[A-Za-z0-9_=.-]{1,4}").prop_map(|(b, s)| Forgery::Appended(b, s)),
    ]
}

fn replace_char(token: &str, at: usize, c: char) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let at = at % chars.len();
    chars[at] = c;
    chars.into_iter().collect()
}

/// No verifier panics on any input, and none accepts anything but the exact genuine token:
/// not a changed character, not a cut or extended one, not another kind of token.
#[test]
fn token_verifiers_accept_only_genuine_tokens() {
    let manage = ManageTokens::new(SECRET);
    let jwt = JwtKeys::new(SECRET, "http://127.0.0.1");
    let id = uuid::Uuid::now_v7();
    let now = chrono::Utc::now().timestamp();
    let genuine_manage = manage.sign(id);
    let genuine_jwt = jwt.issue("staff-1", 0, now).unwrap();
    assert_eq!(manage.verify(&genuine_manage), Some(id));
    assert_eq!(jwt.verify(&genuine_jwt), Some(("staff-1".to_owned(), 0)));
    // Each kind of token is refused where the other is expected.
    assert_eq!(jwt.verify(&genuine_manage), None);
    assert_eq!(manage.verify(&genuine_jwt), None);
    let (key, _, hash) = enlace::auth::new_api_key();
    runner(CASES * 4)
        .run(&forgery(), |forgery| {
            let candidate = match &forgery {
                Forgery::Random(s) => s.clone(),
                Forgery::ManageMutated(at, c) => replace_char(&genuine_manage, *at, *c),
                Forgery::JwtMutated(at, c) => replace_char(&genuine_jwt, *at, *c),
                Forgery::Truncated(which, n) => {
                    let t = if *which {
                        &genuine_manage
                    } else {
                        &genuine_jwt
                    };
                    t[..t.len() - n].to_owned()
                }
                Forgery::Appended(which, s) => {
                    let t = if *which {
                        &genuine_manage
                    } else {
                        &genuine_jwt
                    };
                    format!("{t}{s}")
                }
            };
            let m = manage.verify(&candidate);
            prop_assert!(m.is_none() || candidate == genuine_manage, "{candidate}");
            let j = jwt.verify(&candidate);
            prop_assert!(j.is_none() || candidate == genuine_jwt, "{candidate}");
            let _ = enlace::tokens::is_well_formed(&candidate);
            if candidate != key {
                prop_assert_ne!(enlace::auth::hash_api_key(&candidate), hash.clone());
            }
            Ok(())
        })
        .unwrap();
}

/// Near-miss access tokens signed with the right key are refused too: another algorithm, no
/// key id, a missing claim, another audience or issuer, expired, or not valid yet.
#[test]
fn access_tokens_with_a_wrong_claim_are_refused() {
    let jwt = JwtKeys::new(SECRET, "http://127.0.0.1");
    let now = chrono::Utc::now().timestamp();
    let genuine = jwt.issue("staff-1", 0, now).unwrap();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(genuine.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    // The signing key, derived as the service derives it.
    let key = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(b"enlace/jwt/v1");
        mac.finalize().into_bytes().to_vec()
    };
    let sign = |alg: jsonwebtoken::Algorithm, kid: Option<&str>, claims: Value| {
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&key),
        )
        .unwrap()
    };
    let good = json!({"sub": "staff-1", "iss": "http://127.0.0.1", "aud": "enlace-staff",
                      "iat": now, "exp": now + 600, "generation": 0});
    assert!(
        jwt.verify(&sign(
            jsonwebtoken::Algorithm::HS256,
            Some(&kid),
            good.clone()
        ))
        .is_some(),
        "the derivation above matches the service's"
    );
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    use jsonwebtoken::Algorithm::{HS256, HS384, HS512};
    let cases = [
        ("HS384", sign(HS384, Some(&kid), good.clone())),
        ("HS512", sign(HS512, Some(&kid), good.clone())),
        ("no kid", sign(HS256, None, good.clone())),
        ("other kid", sign(HS256, Some("000000000000"), good.clone())),
        ("no exp", sign(HS256, Some(&kid), without("exp"))),
        ("no sub", sign(HS256, Some(&kid), without("sub"))),
        ("no aud", sign(HS256, Some(&kid), without("aud"))),
        ("no iss", sign(HS256, Some(&kid), without("iss"))),
        (
            "expired",
            sign(HS256, Some(&kid), with("exp", json!(now - 120))),
        ),
        (
            "audience",
            sign(HS256, Some(&kid), with("aud", json!("enlace-public"))),
        ),
        (
            "issuer",
            sign(HS256, Some(&kid), with("iss", json!("http://evil.example"))),
        ),
        (
            "not yet valid",
            sign(HS256, Some(&kid), with("nbf", json!(now + 3600))),
        ),
        (
            "exp as text",
            sign(HS256, Some(&kid), with("exp", json!("9999999999"))),
        ),
    ];
    for (what, token) in cases {
        assert_eq!(jwt.verify(&token), None, "{what}");
    }
}

/// Text shaped like an address, and anything at all.
fn address_like() -> impl Strategy<Value = String> {
    prop_oneof![
        spellings::mailbox_and_spelling().prop_map(|(_, s)| s),
        "[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~\\-]{0,12}@[a-zA-Z0-9.\\-\\[\\]:]{0,20}",
        "\\PC{0,8}@\\PC{0,12}",
        hostile_text(),
        (hostile_text(), hostile_text()).prop_map(|(a, b)| format!("{a}@{b}")),
    ]
}

#[test]
fn every_spelling_of_a_mailbox_is_one_address() {
    runner(CASES * 4)
        .run(
            &spellings::mailbox_and_spelling(),
            |(canonical, spelling)| {
                let parsed = Email::parse(&spelling);
                prop_assert_eq!(
                    parsed.as_ref().map(Email::as_str),
                    Ok(canonical.as_str()),
                    "{:?}",
                    spelling
                );
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn accepted_addresses_are_canonical_and_deliverable() {
    runner(CASES * 4)
        .run(&address_like(), |raw| {
            if let Ok(email) = Email::parse(&raw) {
                let canonical = email.as_str();
                // Canonical means a fixed point: parsing it again changes nothing.
                let again = Email::parse(canonical);
                prop_assert_eq!(again.as_ref().map(Email::as_str), Ok(canonical));
                // Whatever is accepted can go on an SMTP envelope, with a dotted domain name.
                prop_assert!(
                    canonical.parse::<lettre::Address>().is_ok(),
                    "{canonical:?}"
                );
                let domain = email.domain();
                prop_assert!(domain.is_ascii() && domain.contains('.'), "{canonical:?}");
                prop_assert!(
                    !domain.starts_with('[') && !domain.ends_with('.'),
                    "{canonical:?}"
                );
                prop_assert!(!canonical.contains("..") && !canonical.starts_with('.'));
                prop_assert!(!canonical.contains(".@"));
            }
            Ok(())
        })
        .unwrap();
}

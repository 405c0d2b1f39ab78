//! `enlace copy --to postgres://…`: moves a list from its SQLite file (`ENLACE_DATABASE_URL`)
//! into an empty PostgreSQL database, table by table, and shows that nothing was lost or changed
//! on the way: each table's rows are counted and checksummed on both sides, the same way, and
//! the command prints the two side by side.
//!
//! **What is copied.** Every table the migrations define, found at run time in the two databases'
//! catalogs (so a table added by a later migration is copied too, with no change here), except
//! `__diesel_schema_migrations`: each database keeps its own record of the migrations applied to
//! it. The target is migrated first with the same built-in migrations `enlace migrate` applies,
//! so its schema is exactly Enlace's; the source must already be at this Enlace's migrations
//! (`enlace migrate` brings it there) and the two must then have the same tables and columns.
//! Tables are filled in foreign-key order (a table after those it refers to, from PostgreSQL's
//! `pg_constraint`).
//!
//! **How a row travels.** SQLite hands each row over as a JSON array (`json_array(…)`) in
//! primary-key order; Enlace normalises every value by the column's PostgreSQL type (below) and
//! inserts a batch with one `INSERT … SELECT … FROM json_populate_recordset(NULL::table, $1)`,
//! which converts each value to its column's type. No typed struct per table is needed. Column
//! types the copy knows: text, integers, booleans (0/1 in SQLite) and timestamps without time
//! zone (text in SQLite); a column of any other type stops the copy before a row is written.
//! PostgreSQL keeps times to the microsecond, as Enlace itself writes them (`db::now`); a finer
//! SQLite time would be cut to the microsecond, on both sides of the comparison.
//!
//! **Triggers.** The change-feed triggers would renumber every copied person and tombstone
//! (`change_seq`) as if they had just changed. Each batch therefore disables the table's own
//! triggers (`ALTER TABLE … DISABLE TRIGGER USER`, which keeps the foreign-key checks) and enables
//! them again inside its transaction, so no committed state ever has them off.
//!
//! **Counters.** The change numbers are the one piece of state kept outside the tables that
//! differs between the backends: SQLite counts them in `change_counter.value`, PostgreSQL takes
//! them from the sequence `change_numbers`. After the tables, that sequence is set to the highest
//! number in use (the copied counter, or a larger `change_seq`), so the next change gets a larger
//! number and integrations syncing from a cursor miss nothing. Any sequence owned by a column
//! (serial or identity) is set past that column's largest value. Enlace's ids are UUIDs and need
//! nothing.
//!
//! **Rows the migrations write.** The migrations put a row in `change_counter` and
//! `readiness_probe`, and the data migrations record themselves in `data_migrations`
//! ([`FILLED_BY_MIGRATIONS`]). An empty target may hold those; the copy replaces them with
//! SQLite's, in the transaction of the table's first batch. A later migration that writes rows of
//! its own must be added there.
//!
//! **A consistent source.** The whole run reads SQLite inside one read transaction, so it sees one
//! committed state throughout: a signup is copied with its consent record, token and mail, or not
//! at all. Changes committed after that moment are not copied, so Enlace should be stopped first.
//! Nothing is written to the SQLite file (`PRAGMA query_only`).
//!
//! **Resuming.** Each batch is one PostgreSQL transaction that also records, in a table the
//! command creates in the target (`enlace_copy_progress`), how many rows of the table are copied
//! and the primary key of the last one. An interrupted copy (a crash, a lost connection, Ctrl-C)
//! therefore leaves whole batches only, and running the command again goes on after the last
//! one. The progress table also holds the source's row counts and checksums, taken when the copy
//! began; a run that finds the source changed since refuses to go on, since the partial copy no
//! longer belongs to it. It is dropped once every table checks out. Two copies into one database
//! at once are prevented with an advisory lock.
//!
//! **"Empty".** A target is empty when none of the source's tables holds a row in it (the rows of
//! [`FILLED_BY_MIGRATIONS`] aside): a fresh database, or one `enlace migrate` has prepared.
//! Anything else is refused before anything is written, unless it holds the progress table of an
//! interrupted copy.
//!
//! **The checksum.** For each table, SHA-256 over its rows in primary-key order, one line per row:
//! the row's values as a JSON array in the target's column order, each normalised (timestamps as
//! `YYYY-MM-DDTHH:MM:SS.ffffff`, booleans as `true`/`false`, integers as numbers, text as text).
//! Both databases are read in one order: SQLite in its key order (bytewise for text), PostgreSQL
//! with text keys in the bytewise `"C"` collation, whatever the database's own collation. A time
//! in a key is text in SQLite, ordered as text, which is its time order in the form Enlace writes
//! times (`2026-12-06 10:00:00.123456`); PostgreSQL orders it as a time. A resumed copy picks up
//! after the last key as SQLite holds it, not in its normalised form.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context};
use diesel::connection::{DefaultLoadingMode, SimpleConnection};
use diesel::pg::PgRowByRowLoadingMode;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::backup::{self, quoted, Line};
use crate::db::DatabaseUrl;

/// Rows per batch unless told otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 1000;
/// A batch is also closed once its rows reach this many bytes of JSON (import parts and
/// newsletters can be large).
const BATCH_BYTES: usize = 8 << 20;
/// The progress record the command keeps in the target while it copies.
pub const PROGRESS_TABLE: &str = "enlace_copy_progress";
/// Each database's own record of its migrations; never copied.
const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";
/// Tables the migrations themselves write rows into: allowed in an empty target, and replaced by
/// SQLite's rows when copied.
pub const FILLED_BY_MIGRATIONS: &[&str] = &["change_counter", "data_migrations", "readiness_probe"];
/// PostgreSQL advisory lock held while a copy writes ("enlace" in ASCII).
const COPY_LOCK: i64 = 0x656e_6c61_6365;

/// How a copy runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Rows per batch (one PostgreSQL transaction each).
    pub batch_rows: usize,
    /// Stop with an error after this many committed batches, as an interruption would (tests).
    pub stop_after_batches: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
            stop_after_batches: None,
        }
    }
}

/// One table, counted and checksummed in both databases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCheck {
    pub table: String,
    pub sqlite_rows: i64,
    pub postgres_rows: i64,
    pub sqlite_sha256: String,
    pub postgres_sha256: String,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.sqlite_rows == self.postgres_rows && self.sqlite_sha256 == self.postgres_sha256
    }
}

/// What a finished copy found, table by table, in the order they were copied.
#[derive(Clone, Debug)]
pub struct Report {
    pub tables: Vec<TableCheck>,
    /// The copy went on from an interrupted one.
    pub resumed: bool,
}

impl Report {
    pub fn matches(&self) -> bool {
        self.tables.iter().all(TableCheck::matches)
    }

    /// The table the command prints: rows on each side, the checksum, and OK or MISMATCH.
    pub fn describe(&self) -> String {
        let width = self
            .tables
            .iter()
            .map(|t| t.table.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!(
            "{:width$}  {:>11}  {:>15}  {:64}  result\n",
            "table", "SQLite rows", "PostgreSQL rows", "sha256"
        );
        for t in &self.tables {
            let verdict = if t.matches() {
                "OK".to_owned()
            } else if t.sqlite_sha256 == t.postgres_sha256 {
                "MISMATCH".to_owned()
            } else {
                format!("MISMATCH (PostgreSQL: {})", t.postgres_sha256)
            };
            out.push_str(&format!(
                "{:width$}  {:>11}  {:>15}  {:64}  {verdict}\n",
                t.table, t.sqlite_rows, t.postgres_rows, t.sqlite_sha256
            ));
        }
        out
    }
}

/// How a value is read, normalised and written, from the column's PostgreSQL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Boolean,
    Timestamp,
}

impl Kind {
    fn of(pg_type: &str) -> Option<Self> {
        match pg_type {
            "text" | "character varying" => Some(Self::Text),
            "smallint" | "integer" | "bigint" => Some(Self::Integer),
            "boolean" => Some(Self::Boolean),
            "timestamp without time zone" => Some(Self::Timestamp),
            _ => None,
        }
    }
}

/// A table as both databases have it: its columns in the target's order and its primary key.
#[derive(Clone, Debug)]
struct Table {
    name: String,
    columns: Vec<(String, Kind)>,
    /// Positions in `columns` of the primary key's columns, in key order.
    key: Vec<usize>,
    /// It has triggers of its own, switched off while its rows are copied.
    triggers: bool,
}

/// Where a copy stands with one table, as recorded in the target.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Progress {
    sqlite_rows: i64,
    sqlite_sha256: String,
    copied_rows: i64,
    /// The primary key of the last copied row, as a JSON array.
    last_key: Option<Vec<Value>>,
    done: bool,
}

/// Copies the SQLite database `source_url` names into the PostgreSQL database `target_url`
/// names, then counts and checksums both. `say` hears what the copy is doing (no addresses or
/// credentials). The report may hold mismatches; it is an error only when the copy could not be
/// made or checked.
pub fn copy(
    source_url: &str,
    target_url: &str,
    options: &Options,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<Report> {
    ensure!(options.batch_rows > 0, "a batch must hold at least one row");
    let target_url = match DatabaseUrl::parse(target_url) {
        Ok(DatabaseUrl::Postgres(url)) => url,
        _ => bail!(
            "--to must be a PostgreSQL URL, like postgres://user@host/database; \
             enlace copy moves a list from SQLite into PostgreSQL"
        ),
    };
    let source = match DatabaseUrl::parse(source_url)? {
        DatabaseUrl::Sqlite(path) => path,
        DatabaseUrl::Postgres(_) => bail!(
            "ENLACE_DATABASE_URL names a PostgreSQL database: enlace copy moves a list from \
             SQLite (sqlite://…) into PostgreSQL"
        ),
    };
    let mut lite = open_source(&source)?;
    if backup::is_served(&source) {
        say(&format!(
            "Enlace is serving {}: what changes there from now on is not copied; stop it first \
             to copy everything",
            source.display()
        ));
    }
    let place = describe_target(&target_url);
    let mut pg = PgConnection::establish(&target_url)
        .map_err(|e| anyhow!("cannot connect to PostgreSQL at {place}: {e}"))?;
    let locked: Flag = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS flag")
        .bind::<BigInt, _>(COPY_LOCK)
        .get_result(&mut pg)
        .context("taking the copy lock in PostgreSQL")?;
    ensure!(
        locked.flag,
        "another enlace copy is writing into PostgreSQL at {place}; wait until it has finished"
    );

    let resumed = has_table(&mut pg, PROGRESS_TABLE)?;
    if !resumed {
        let source_tables = source_tables(&mut lite)?;
        refuse_a_list(&mut pg, &source_tables, &place)?;
    }
    say(&format!("migrating PostgreSQL at {place}"));
    crate::db::Db::connect(&target_url, 1)
        .and_then(|db| db.migrate())
        .with_context(|| format!("migrating PostgreSQL at {place}"))?;
    let tables = schema(&mut pg, &mut lite)?;

    say("reading the SQLite database");
    let mut sums = BTreeMap::new();
    for table in &tables {
        sums.insert(table.name.clone(), sqlite_sum(&mut lite, table)?);
    }
    let mut progress = if resumed {
        let recorded = read_progress(&mut pg)?;
        check_same_source(&tables, &sums, &recorded)?;
        let done = recorded.values().filter(|p| p.done).count();
        say(&format!(
            "going on with the interrupted copy: {done} of {} tables already copied",
            tables.len()
        ));
        recorded
    } else {
        start_progress(&mut pg, &tables, &sums)?
    };

    let mut batches = 0u64;
    for table in &tables {
        let Some(at) = progress.get_mut(&table.name) else {
            bail!("the progress record has no row for table {}", table.name);
        };
        if !at.done {
            copy_table(&mut lite, &mut pg, table, at, options, &mut batches)?;
            let rows = match at.copied_rows {
                1 => "1 row".to_owned(),
                n => format!("{n} rows"),
            };
            say(&format!("{}: {rows} copied", table.name));
        }
    }
    set_counters(&mut pg, &tables)?;

    say("checking PostgreSQL against SQLite");
    let mut checks = Vec::new();
    for table in &tables {
        let (sqlite_rows, sqlite_sha256) = sums[&table.name].clone();
        let (postgres_rows, postgres_sha256) = postgres_sum(&mut pg, table)?;
        checks.push(TableCheck {
            table: table.name.clone(),
            sqlite_rows,
            postgres_rows,
            sqlite_sha256,
            postgres_sha256,
        });
    }
    let report = Report {
        tables: checks,
        resumed,
    };
    if report.matches() {
        pg.batch_execute(&format!("DROP TABLE {}", quoted(PROGRESS_TABLE)))
            .context("removing the progress record")?;
    }
    // The read transaction on SQLite ends here; nothing was written in it.
    lite.batch_execute("COMMIT").ok();
    Ok(report)
}

/// Opens the SQLite database read-only and starts the read transaction every read of the run
/// shares; checks that it is a sound Enlace database at this Enlace's migrations.
fn open_source(path: &Path) -> anyhow::Result<SqliteConnection> {
    ensure!(
        path.is_file(),
        "there is no SQLite database at {}",
        path.display()
    );
    let mut lite = backup::open(path)?;
    lite.batch_execute("PRAGMA query_only = ON; BEGIN")?;
    backup::check(&mut lite, path)?;
    let applied: BTreeSet<String> = diesel::sql_query(format!(
        "SELECT version AS line FROM {}",
        quoted(MIGRATIONS_TABLE)
    ))
    .load::<Line>(&mut lite)?
    .into_iter()
    .map(|l| l.line)
    .collect();
    let built_in: BTreeSet<String> = crate::db::sqlite_migration_versions()?
        .into_iter()
        .collect();
    let missing: Vec<&String> = built_in.difference(&applied).collect();
    ensure!(
        missing.is_empty(),
        "{} lacks migrations of this Enlace ({}): run `enlace migrate` on it first",
        path.display(),
        join(&missing)
    );
    let unknown: Vec<&String> = applied.difference(&built_in).collect();
    ensure!(
        unknown.is_empty(),
        "{} was migrated by a newer Enlace ({}): copy it with that version",
        path.display(),
        join(&unknown)
    );
    Ok(lite)
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `host:port/database` of a PostgreSQL URL, without user or password.
fn describe_target(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => format!(
            "{}:{}{}",
            parsed
                .host_str()
                .filter(|h| !h.is_empty())
                .unwrap_or("localhost"),
            parsed.port().unwrap_or(5432),
            parsed.path()
        ),
        Err(_) => "the database --to names".to_owned(),
    }
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

/// A string as an SQL literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn has_table(pg: &mut PgConnection, name: &str) -> anyhow::Result<bool> {
    let found: Flag = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relname = $1 AND c.relkind IN ('r', 'p')) AS flag",
    )
    .bind::<Text, _>(name)
    .get_result(pg)
    .context("reading PostgreSQL's catalog")?;
    Ok(found.flag)
}

/// The source's tables, but for the record of its migrations.
fn source_tables(lite: &mut SqliteConnection) -> anyhow::Result<Vec<String>> {
    Ok(backup::table_names(lite)?
        .into_iter()
        .filter(|t| t != MIGRATIONS_TABLE)
        .collect())
}

/// Refuses a target where any of Enlace's tables holds rows (but those the migrations write).
fn refuse_a_list(pg: &mut PgConnection, tables: &[String], place: &str) -> anyhow::Result<()> {
    let mut holding = Vec::new();
    for table in tables {
        if FILLED_BY_MIGRATIONS.contains(&table.as_str()) || !has_table(pg, table)? {
            continue;
        }
        let rows: Flag = diesel::sql_query(format!(
            "SELECT EXISTS (SELECT 1 FROM {}) AS flag",
            quoted(table)
        ))
        .get_result(pg)
        .with_context(|| format!("reading table {table} in PostgreSQL"))?;
        if rows.flag {
            holding.push(table.as_str());
        }
    }
    ensure!(
        holding.is_empty(),
        "PostgreSQL at {place} is not empty: {} already hold rows. enlace copy fills an empty \
         database only; nothing was changed",
        holding.join(", ")
    );
    Ok(())
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    type_name: String,
}

#[derive(QueryableByName)]
struct Pair {
    #[diesel(sql_type = Text)]
    first: String,
    #[diesel(sql_type = Text)]
    second: String,
}

/// The tables to copy, in foreign-key order, as the target's catalog describes them; the
/// source must have the same tables with the same columns.
fn schema(pg: &mut PgConnection, lite: &mut SqliteConnection) -> anyhow::Result<Vec<Table>> {
    let columns: Vec<ColumnRow> = diesel::sql_query(
        "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
         format_type(a.atttypid, NULL) AS type_name \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
         ORDER BY c.relname, a.attnum",
    )
    .load(pg)
    .context("reading PostgreSQL's catalog")?;
    let keys: Vec<Pair> = diesel::sql_query(
        "SELECT c.relname::text AS first, a.attname::text AS second \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, position) \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
         WHERE con.contype = 'p' AND n.nspname = current_schema() \
         ORDER BY c.relname, k.position",
    )
    .load(pg)
    .context("reading PostgreSQL's catalog")?;
    let references: Vec<Pair> = diesel::sql_query(
        "SELECT c.relname::text AS first, r.relname::text AS second \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_class r ON r.oid = con.confrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE con.contype = 'f' AND n.nspname = current_schema()",
    )
    .load(pg)
    .context("reading PostgreSQL's catalog")?;
    let triggered: BTreeSet<String> = diesel::sql_query(
        "SELECT DISTINCT c.relname::text AS line FROM pg_trigger t \
         JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT t.tgisinternal AND n.nspname = current_schema()",
    )
    .load::<Line>(pg)
    .context("reading PostgreSQL's catalog")?
    .into_iter()
    .map(|l| l.line)
    .collect();

    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for c in columns {
        if c.table_name == MIGRATIONS_TABLE || c.table_name == PROGRESS_TABLE {
            continue;
        }
        let kind = Kind::of(&c.type_name).ok_or_else(|| {
            anyhow!(
                "column {}.{} has type {}, which enlace copy cannot copy",
                c.table_name,
                c.column_name,
                c.type_name
            )
        })?;
        tables
            .entry(c.table_name.clone())
            .or_insert_with(|| Table {
                name: c.table_name.clone(),
                columns: Vec::new(),
                key: Vec::new(),
                triggers: triggered.contains(&c.table_name),
            })
            .columns
            .push((c.column_name, kind));
    }
    for k in keys {
        if let Some(table) = tables.get_mut(&k.first) {
            let position = table
                .columns
                .iter()
                .position(|(name, _)| *name == k.second)
                .ok_or_else(|| anyhow!("key column {}.{} not found", k.first, k.second))?;
            table.key.push(position);
        }
    }
    for table in tables.values() {
        ensure!(
            !table.key.is_empty(),
            "table {} has no primary key, so its rows cannot be copied in order",
            table.name
        );
        for &k in &table.key {
            let (name, kind) = &table.columns[k];
            ensure!(
                matches!(kind, Kind::Text | Kind::Integer | Kind::Timestamp),
                "key column {}.{name} is neither text, an integer nor a time",
                table.name
            );
        }
    }

    // The source must have exactly these tables and columns.
    let in_source: BTreeSet<String> = source_tables(lite)?.into_iter().collect();
    let in_target: BTreeSet<String> = tables.keys().cloned().collect();
    let only_source: Vec<&String> = in_source.difference(&in_target).collect();
    let only_target: Vec<&String> = in_target.difference(&in_source).collect();
    ensure!(
        only_source.is_empty() && only_target.is_empty(),
        "the two databases have different tables (only in SQLite: [{}]; only in PostgreSQL: \
         [{}]); are both at this Enlace's migrations?",
        join(&only_source),
        join(&only_target)
    );
    for table in tables.values() {
        let source_columns: BTreeSet<String> = diesel::sql_query(format!(
            "SELECT name AS line FROM pragma_table_info({})",
            literal(&table.name)
        ))
        .load::<Line>(lite)?
        .into_iter()
        .map(|l| l.line)
        .collect();
        let target_columns: BTreeSet<String> =
            table.columns.iter().map(|(name, _)| name.clone()).collect();
        ensure!(
            source_columns == target_columns,
            "table {} has different columns in SQLite ({}) and PostgreSQL ({})",
            table.name,
            source_columns.into_iter().collect::<Vec<_>>().join(", "),
            target_columns.into_iter().collect::<Vec<_>>().join(", ")
        );
    }

    // Foreign-key order: a table after every table it refers to.
    let mut needs: BTreeMap<String, BTreeSet<String>> = tables
        .keys()
        .map(|t| (t.clone(), BTreeSet::new()))
        .collect();
    for r in references {
        if r.first != r.second && tables.contains_key(&r.second) {
            if let Some(set) = needs.get_mut(&r.first) {
                set.insert(r.second);
            }
        }
    }
    let mut ordered = Vec::new();
    while !needs.is_empty() {
        let ready: Vec<String> = needs
            .iter()
            .filter(|(_, set)| set.is_empty())
            .map(|(t, _)| t.clone())
            .collect();
        ensure!(
            !ready.is_empty(),
            "the foreign keys between tables {} form a loop",
            needs.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        for t in ready {
            needs.remove(&t);
            for set in needs.values_mut() {
                set.remove(&t);
            }
            if let Some(table) = tables.remove(&t) {
                ordered.push(table);
            }
        }
    }
    Ok(ordered)
}

/// Row counts and SHA-256 of rows, as lines fed one at a time.
struct Summer {
    hash: Sha256,
    rows: i64,
}

impl Summer {
    fn new() -> Self {
        Self {
            hash: Sha256::new(),
            rows: 0,
        }
    }

    fn add(&mut self, row: &[Value]) {
        let line = Value::Array(row.to_vec()).to_string();
        self.hash.update(line.as_bytes());
        self.hash.update(b"\n");
        self.rows += 1;
    }

    fn finish(self) -> (i64, String) {
        (self.rows, crate::tokens::hex(&self.hash.finalize()))
    }
}

/// `SELECT json_array(columns) … ORDER BY key` on SQLite, after `key` when given.
fn sqlite_select(table: &Table, after: bool) -> String {
    let columns = table
        .columns
        .iter()
        .map(|(name, _)| quoted(name))
        .collect::<Vec<_>>()
        .join(", ");
    let key: Vec<String> = table
        .key
        .iter()
        .map(|&k| quoted(&table.columns[k].0))
        .collect();
    let filter = if after {
        let marks = vec!["?"; key.len()].join(", ");
        format!(" WHERE ({}) > ({marks})", key.join(", "))
    } else {
        String::new()
    };
    format!(
        "SELECT json_array({columns}) AS line FROM {}{filter} ORDER BY {}",
        quoted(&table.name),
        key.join(", ")
    )
}

/// Reads the table's rows from SQLite in key order (after the key `after`, as SQLite holds it),
/// one at a time: each normalised, with its key as SQLite holds it and its size.
fn each_sqlite_row(
    lite: &mut SqliteConnection,
    table: &Table,
    after: Option<&[Value]>,
    mut each: impl FnMut(Vec<Value>, Vec<Value>, usize) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut query = diesel::sql_query(sqlite_select(table, after.is_some()))
        .into_boxed::<diesel::sqlite::Sqlite>();
    for value in after.unwrap_or_default() {
        query = match value {
            Value::String(s) => query.bind::<Text, _>(s.clone()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => query.bind::<BigInt, _>(i),
                None => query.bind::<diesel::sql_types::Double, _>(n.as_f64().unwrap_or(0.0)),
            },
            other => bail!("a key of table {} is {other}", table.name),
        };
    }
    let rows = query
        .load_iter::<Line, DefaultLoadingMode>(lite)
        .with_context(|| format!("reading table {} from SQLite", table.name))?;
    for line in rows {
        let line = line.with_context(|| format!("reading table {} from SQLite", table.name))?;
        let raw = row_values(table, &line.line)?;
        let key: Vec<Value> = table.key.iter().map(|&k| raw[k].clone()).collect();
        ensure!(
            key.iter().all(|v| !v.is_null()),
            "a row of table {} has no key",
            table.name
        );
        each(normalise_values(table, raw)?, key, line.line.len())?;
    }
    Ok(())
}

fn sqlite_sum(lite: &mut SqliteConnection, table: &Table) -> anyhow::Result<(i64, String)> {
    let mut sum = Summer::new();
    each_sqlite_row(lite, table, None, |row, _, _| {
        sum.add(&row);
        Ok(())
    })?;
    Ok(sum.finish())
}

/// The same count and checksum, read from PostgreSQL in the same order.
fn postgres_sum(pg: &mut PgConnection, table: &Table) -> anyhow::Result<(i64, String)> {
    let columns = table
        .columns
        .iter()
        .map(|(name, _)| quoted(name))
        .collect::<Vec<_>>()
        .join(", ");
    let order = table
        .key
        .iter()
        .map(|&k| match &table.columns[k] {
            (name, Kind::Text) => format!("{} COLLATE \"C\"", quoted(name)),
            (name, _) => quoted(name),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT json_build_array({columns})::text AS line FROM {} ORDER BY {order}",
        quoted(&table.name)
    );
    let mut sum = Summer::new();
    let rows = diesel::sql_query(sql)
        .load_iter::<Line, PgRowByRowLoadingMode>(pg)
        .with_context(|| format!("reading table {} from PostgreSQL", table.name))?;
    for line in rows {
        let line = line.with_context(|| format!("reading table {} from PostgreSQL", table.name))?;
        sum.add(&normalise_values(table, row_values(table, &line.line)?)?);
    }
    Ok(sum.finish())
}

/// A row read as a JSON array, in the table's column order.
fn row_values(table: &Table, line: &str) -> anyhow::Result<Vec<Value>> {
    let values: Vec<Value> = serde_json::from_str(line)
        .with_context(|| format!("a row of table {} is not a JSON array", table.name))?;
    ensure!(
        values.len() == table.columns.len(),
        "a row of table {} has {} values for {} columns",
        table.name,
        values.len(),
        table.columns.len()
    );
    Ok(values)
}

/// Each value of a row normalised by its column's type.
fn normalise_values(table: &Table, values: Vec<Value>) -> anyhow::Result<Vec<Value>> {
    values
        .into_iter()
        .zip(&table.columns)
        .map(|(value, (column, kind))| {
            normalise(*kind, value).with_context(|| format!("column {}.{column}", table.name))
        })
        .collect()
}

/// One value in the form both sides are compared in and PostgreSQL is given.
fn normalise(kind: Kind, value: Value) -> anyhow::Result<Value> {
    Ok(match (kind, value) {
        (_, Value::Null) => Value::Null,
        (Kind::Text, Value::String(s)) => Value::String(s),
        (Kind::Text, Value::Number(n)) => Value::String(n.to_string()),
        (Kind::Integer, Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
                _ => bail!("{n} is not an integer"),
            },
        },
        (Kind::Integer, Value::String(s)) => Value::from(
            s.trim()
                .parse::<i64>()
                .map_err(|_| anyhow!("{s:?} is not an integer"))?,
        ),
        (Kind::Boolean, Value::Bool(b)) => Value::Bool(b),
        (Kind::Boolean, Value::Number(n)) => match n.as_i64() {
            Some(0) => Value::Bool(false),
            Some(1) => Value::Bool(true),
            _ => bail!("{n} is not a boolean (0 or 1)"),
        },
        (Kind::Timestamp, Value::String(s)) => Value::String(normal_time(&s)?),
        (kind, value) => bail!("{value} cannot be read as {kind:?}"),
    })
}

/// A stored time as `YYYY-MM-DDTHH:MM:SS.ffffff`: SQLite holds `2026-12-06 10:00:00.123456`
/// (diesel), sometimes without the fraction or with a `T`; PostgreSQL's JSON gives
/// `2026-12-06T10:00:00.123456` with trailing zeros of the fraction left out.
fn normal_time(text: &str) -> anyhow::Result<String> {
    use chrono::{NaiveDateTime, SubsecRound};
    let bare = text.trim().replacen('T', " ", 1);
    let time = if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&bare.replacen(' ', "T", 1)) {
        t.naive_utc()
    } else {
        let bare = bare.strip_suffix('Z').unwrap_or(&bare);
        [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(bare, format).ok())
        .ok_or_else(|| anyhow!("{text:?} is not a time"))?
    };
    Ok(time
        .trunc_subsecs(6)
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string())
}

/// Creates the progress record of a new copy, with the source's counts and checksums.
fn start_progress(
    pg: &mut PgConnection,
    tables: &[Table],
    sums: &BTreeMap<String, (i64, String)>,
) -> anyhow::Result<BTreeMap<String, Progress>> {
    let rows: Vec<Value> = tables
        .iter()
        .enumerate()
        .map(|(position, t)| {
            let (rows, sha256) = &sums[&t.name];
            serde_json::json!({
                "table_name": t.name, "position": position, "sqlite_rows": rows,
                "sqlite_sha256": sha256,
            })
        })
        .collect();
    let table = quoted(PROGRESS_TABLE);
    pg.transaction(|pg| {
        pg.batch_execute(&format!(
            "CREATE TABLE {table} (\
                table_name TEXT PRIMARY KEY NOT NULL, \
                position INTEGER NOT NULL, \
                sqlite_rows BIGINT NOT NULL, \
                sqlite_sha256 TEXT NOT NULL, \
                copied_rows BIGINT NOT NULL DEFAULT 0, \
                last_key TEXT, \
                done BOOLEAN NOT NULL DEFAULT FALSE)"
        ))?;
        diesel::sql_query(format!(
            "INSERT INTO {table} (table_name, position, sqlite_rows, sqlite_sha256) \
             SELECT table_name, position, sqlite_rows, sqlite_sha256 \
             FROM json_populate_recordset(NULL::{table}, $1::json)"
        ))
        .bind::<Text, _>(Value::Array(rows).to_string())
        .execute(pg)?;
        diesel::QueryResult::Ok(())
    })
    .context("recording the copy's progress in PostgreSQL")?;
    Ok(sums
        .iter()
        .map(|(name, (rows, sha256))| {
            let at = Progress {
                sqlite_rows: *rows,
                sqlite_sha256: sha256.clone(),
                copied_rows: 0,
                last_key: None,
                done: false,
            };
            (name.clone(), at)
        })
        .collect())
}

fn read_progress(pg: &mut PgConnection) -> anyhow::Result<BTreeMap<String, Progress>> {
    let lines: Vec<Line> = diesel::sql_query(format!(
        "SELECT json_build_array(table_name, sqlite_rows, sqlite_sha256, copied_rows, last_key, \
         done)::text AS line FROM {}",
        quoted(PROGRESS_TABLE)
    ))
    .load(pg)
    .context("reading the progress of the interrupted copy")?;
    let damaged = || anyhow!("the progress record in {PROGRESS_TABLE} is damaged");
    let mut progress = BTreeMap::new();
    for line in lines {
        let v: Vec<Value> = serde_json::from_str(&line.line).map_err(|_| damaged())?;
        let [name, rows, sha256, copied, key, done] = v.as_slice() else {
            return Err(damaged());
        };
        let last_key = match key {
            Value::Null => None,
            Value::String(s) => Some(serde_json::from_str(s).map_err(|_| damaged())?),
            _ => return Err(damaged()),
        };
        progress.insert(
            name.as_str().ok_or_else(damaged)?.to_owned(),
            Progress {
                sqlite_rows: rows.as_i64().ok_or_else(damaged)?,
                sqlite_sha256: sha256.as_str().ok_or_else(damaged)?.to_owned(),
                copied_rows: copied.as_i64().ok_or_else(damaged)?,
                last_key,
                done: done.as_bool().ok_or_else(damaged)?,
            },
        );
    }
    Ok(progress)
}

/// On resuming: the source is the one the interrupted copy began with.
fn check_same_source(
    tables: &[Table],
    sums: &BTreeMap<String, (i64, String)>,
    recorded: &BTreeMap<String, Progress>,
) -> anyhow::Result<()> {
    let start_over = "its partial copy cannot be completed: drop the PostgreSQL database, create \
                      it again empty, and run enlace copy again";
    let now: BTreeSet<&String> = tables.iter().map(|t| &t.name).collect();
    let then: BTreeSet<&String> = recorded.keys().collect();
    ensure!(
        now == then,
        "the tables to copy are not those of the interrupted copy; {start_over}"
    );
    for table in tables {
        let (rows, sha256) = &sums[&table.name];
        let at = &recorded[&table.name];
        ensure!(
            *rows == at.sqlite_rows && *sha256 == at.sqlite_sha256,
            "the SQLite database has changed since the interrupted copy began (table {}: {} \
             rows then, {rows} now); {start_over}",
            table.name,
            at.sqlite_rows
        );
    }
    Ok(())
}

/// Copies the rest of one table, a batch per transaction.
fn copy_table(
    lite: &mut SqliteConnection,
    pg: &mut PgConnection,
    table: &Table,
    at: &mut Progress,
    options: &Options,
    batches: &mut u64,
) -> anyhow::Result<()> {
    let after = at.last_key.clone();
    let mut batch: Vec<Vec<Value>> = Vec::new();
    let mut batch_key: Option<Vec<Value>> = None;
    let mut bytes = 0;
    let mut commit = |pg: &mut PgConnection,
                      batch: &mut Vec<Vec<Value>>,
                      key: Option<Vec<Value>>,
                      at: &mut Progress,
                      last: bool|
     -> anyhow::Result<()> {
        write_batch(pg, table, batch, key, at, last)?;
        batch.clear();
        *batches += 1;
        if options.stop_after_batches == Some(*batches) {
            bail!(
                "stopped after {batches} batches, as --stop-after-batches asked; run the same \
                 command again to go on"
            );
        }
        Ok(())
    };
    each_sqlite_row(lite, table, after.as_deref(), |row, key, size| {
        batch.push(row);
        batch_key = Some(key);
        bytes += size;
        if batch.len() >= options.batch_rows || bytes >= BATCH_BYTES {
            commit(pg, &mut batch, batch_key.take(), at, false)?;
            bytes = 0;
        }
        Ok(())
    })?;
    commit(pg, &mut batch, batch_key, at, true)
}

/// One batch in one transaction: the rows, and the progress they make (up to `key`, the last
/// row's key as SQLite holds it). The first batch of a table the migrations fill replaces the
/// migrations' rows.
fn write_batch(
    pg: &mut PgConnection,
    table: &Table,
    rows: &[Vec<Value>],
    key: Option<Vec<Value>>,
    at: &mut Progress,
    last: bool,
) -> anyhow::Result<()> {
    let name = quoted(&table.name);
    let columns = table
        .columns
        .iter()
        .map(|(c, _)| quoted(c))
        .collect::<Vec<_>>()
        .join(", ");
    let objects: Vec<Value> = rows
        .iter()
        .map(|row| {
            Value::Object(
                table
                    .columns
                    .iter()
                    .zip(row)
                    .map(|((c, _), v)| (c.clone(), v.clone()))
                    .collect(),
            )
        })
        .collect();
    let key_text = key.as_ref().map(|k| Value::Array(k.clone()).to_string());
    let copied = at.copied_rows + rows.len() as i64;
    let first = at.copied_rows == 0 && at.last_key.is_none();
    pg.transaction(|pg| {
        if first && FILLED_BY_MIGRATIONS.contains(&table.name.as_str()) {
            pg.batch_execute(&format!("DELETE FROM {name}"))?;
        }
        if !rows.is_empty() {
            if table.triggers {
                pg.batch_execute(&format!("ALTER TABLE {name} DISABLE TRIGGER USER"))?;
            }
            diesel::sql_query(format!(
                "INSERT INTO {name} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} \
                 FROM json_populate_recordset(NULL::{name}, $1::json)"
            ))
            .bind::<Text, _>(Value::Array(objects).to_string())
            .execute(pg)?;
            if table.triggers {
                pg.batch_execute(&format!("ALTER TABLE {name} ENABLE TRIGGER USER"))?;
            }
        }
        diesel::sql_query(format!(
            "UPDATE {} SET copied_rows = $1, last_key = COALESCE($2, last_key), done = $3 \
             WHERE table_name = $4",
            quoted(PROGRESS_TABLE)
        ))
        .bind::<BigInt, _>(copied)
        .bind::<diesel::sql_types::Nullable<Text>, _>(key_text)
        .bind::<Bool, _>(last)
        .bind::<Text, _>(&table.name)
        .execute(pg)?;
        diesel::QueryResult::Ok(())
    })
    .with_context(|| format!("writing rows of table {} into PostgreSQL", table.name))?;
    at.copied_rows = copied;
    if key.is_some() {
        at.last_key = key;
    }
    at.done = last;
    Ok(())
}

/// Sets the change-number sequence past every number in use, and each column-owned sequence
/// past its column's largest value.
fn set_counters(pg: &mut PgConnection, tables: &[Table]) -> anyhow::Result<()> {
    let owned: Vec<ColumnRow> = diesel::sql_query(
        "SELECT s.relname::text AS type_name, c.relname::text AS table_name, \
         a.attname::text AS column_name \
         FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
         JOIN pg_class c ON c.oid = d.refobjid \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid \
         JOIN pg_namespace n ON n.oid = s.relnamespace \
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
         AND d.deptype IN ('a', 'i') AND n.nspname = current_schema()",
    )
    .load(pg)
    .context("reading PostgreSQL's sequences")?;
    let mut statements = Vec::new();
    for o in owned {
        statements.push(format!(
            "SELECT setval({}, m) FROM (SELECT MAX({}) AS m FROM {}) x WHERE m IS NOT NULL",
            literal(&quoted(&o.type_name)),
            quoted(&o.column_name),
            quoted(&o.table_name)
        ));
    }
    let sequence: Flag =
        diesel::sql_query("SELECT to_regclass('change_numbers') IS NOT NULL AS flag")
            .get_result(pg)?;
    if sequence.flag {
        let mut highest: Vec<String> = tables
            .iter()
            .filter(|t| t.columns.iter().any(|(c, _)| c == "change_seq"))
            .map(|t| format!("(SELECT MAX(change_seq) FROM {})", quoted(&t.name)))
            .collect();
        if tables
            .iter()
            .any(|t| t.name == "change_counter" && t.columns.iter().any(|(c, _)| c == "value"))
        {
            highest.push("(SELECT MAX(value) FROM change_counter)".to_owned());
        }
        if !highest.is_empty() {
            statements.push(format!(
                "SELECT setval('change_numbers', h) FROM (SELECT GREATEST({}) AS h) x \
                 WHERE h > 0",
                highest.join(", ")
            ));
        }
    }
    for statement in statements {
        diesel::sql_query(&statement)
            .execute(pg)
            .context("setting PostgreSQL's sequences past the copied rows")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_from_either_database_read_the_same() {
        for text in [
            "2026-12-06 10:00:00.123456",
            "2026-12-06T10:00:00.123456",
            "2026-12-06 10:00:00.123456789",
            "2026-12-06T10:00:00.123456Z",
            "2026-12-06T10:00:00.123456+00:00",
        ] {
            assert_eq!(
                normal_time(text).unwrap(),
                "2026-12-06T10:00:00.123456",
                "{text}"
            );
        }
        for text in [
            "2026-12-06 10:00:00",
            "2026-12-06T10:00:00",
            "2026-12-06 10:00",
        ] {
            assert_eq!(
                normal_time(text).unwrap(),
                "2026-12-06T10:00:00.000000",
                "{text}"
            );
        }
        assert_eq!(
            normal_time("2026-12-06T10:00:00.1").unwrap(),
            "2026-12-06T10:00:00.100000"
        );
        assert!(normal_time("yesterday").is_err());
    }

    #[test]
    fn values_are_normalised_by_their_column_type() {
        assert_eq!(normalise(Kind::Boolean, json!(1)).unwrap(), json!(true));
        assert_eq!(normalise(Kind::Boolean, json!(0)).unwrap(), json!(false));
        assert_eq!(
            normalise(Kind::Boolean, json!(false)).unwrap(),
            json!(false)
        );
        assert!(normalise(Kind::Boolean, json!(2)).is_err());
        assert_eq!(normalise(Kind::Integer, json!("42")).unwrap(), json!(42));
        assert_eq!(normalise(Kind::Integer, json!(42.0)).unwrap(), json!(42));
        assert!(normalise(Kind::Integer, json!(4.5)).is_err());
        assert_eq!(
            normalise(Kind::Text, json!("{\"a\":1}")).unwrap(),
            json!("{\"a\":1}")
        );
        assert_eq!(
            normalise(Kind::Timestamp, Value::Null).unwrap(),
            Value::Null
        );
        assert!(normalise(Kind::Timestamp, json!(5)).is_err());
    }

    #[test]
    fn a_target_is_named_without_its_credentials() {
        assert_eq!(
            describe_target("postgres://enlace:s3cret@db.example.org:6543/list?sslmode=require"),
            "db.example.org:6543/list"
        );
        assert_eq!(
            describe_target("postgres://db.example.org/list"),
            "db.example.org:5432/list"
        );
    }
}

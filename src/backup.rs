//! Backups of the embedded SQLite database: a consistent copy taken while Enlace serves and
//! sends (`enlace backup FILE`), putting one back (`enlace restore FILE`), and copies on a
//! schedule with the newest few kept (`ENLACE_BACKUP_DIR`).
//!
//! A copy is SQLite's `VACUUM INTO`: it reads the database in one read transaction, so it holds
//! exactly the transactions committed when it began (a signup is in it with its consent record,
//! token and mail, or not at all), and writers go on meanwhile. Every copy is checked
//! (`PRAGMA integrity_check`) and described by its tables' row counts and checksums, which a
//! restore prints again so the two can be compared.
//!
//! PostgreSQL has its own tools for this (`pg_dump`, `pg_restore`; see the README).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use sha2::{Digest, Sha256};

use crate::db::DatabaseUrl;

/// One table of a database: how many rows it has and a checksum of their contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSum {
    pub table: String,
    pub rows: i64,
    /// SHA-256 over every row's values in primary-key order, hex.
    pub sha256: String,
}

/// The SQLite file a database URL names; PostgreSQL is backed up with its own tools.
pub fn sqlite_path(database_url: &str) -> anyhow::Result<PathBuf> {
    match DatabaseUrl::parse(database_url)? {
        DatabaseUrl::Sqlite(path) => Ok(path),
        DatabaseUrl::Postgres(_) => bail!(
            "this database is PostgreSQL: back it up with pg_dump and restore it with pg_restore \
             (see \"Backups\" in the README)"
        ),
    }
}

pub(crate) fn open(path: &Path) -> anyhow::Result<SqliteConnection> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .with_context(|| format!("opening {}", path.display()))?;
    conn.batch_execute("PRAGMA busy_timeout = 10000;")?;
    Ok(conn)
}

#[derive(QueryableByName)]
pub(crate) struct Line {
    #[diesel(sql_type = Text)]
    pub(crate) line: String,
}

/// `PRAGMA integrity_check` says "ok", and the file is an Enlace database.
pub(crate) fn check(conn: &mut SqliteConnection, path: &Path) -> anyhow::Result<()> {
    let verdict: Vec<Line> =
        diesel::sql_query("SELECT integrity_check AS line FROM pragma_integrity_check")
            .load(conn)
            .with_context(|| format!("{} is not a readable SQLite database", path.display()))?;
    ensure!(
        verdict.len() == 1 && verdict[0].line == "ok",
        "{} is damaged: {}",
        path.display(),
        verdict
            .iter()
            .map(|l| l.line.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let tables = table_names(conn)?;
    ensure!(
        [
            "__diesel_schema_migrations",
            "subscribers",
            "consent_events"
        ]
        .iter()
        .all(|t| tables.iter().any(|name| name == t)),
        "{} is not an Enlace database",
        path.display()
    );
    Ok(())
}

pub(crate) fn table_names(conn: &mut SqliteConnection) -> anyhow::Result<Vec<String>> {
    Ok(diesel::sql_query(
        "SELECT name AS line FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .load::<Line>(conn)?
    .into_iter()
    .map(|l| l.line)
    .collect())
}

pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Row counts and checksums of every table, in name order.
pub fn table_sums(conn: &mut SqliteConnection) -> anyhow::Result<Vec<TableSum>> {
    let mut sums = Vec::new();
    for table in table_names(conn)? {
        let columns: Vec<String> = diesel::sql_query(format!(
            "SELECT name AS line FROM pragma_table_info({}) ORDER BY cid",
            quoted(&table).replace('"', "'")
        ))
        .load::<Line>(conn)?
        .into_iter()
        .map(|l| l.line)
        .collect();
        ensure!(!columns.is_empty(), "table {table} has no columns");
        let row = columns
            .iter()
            .map(|c| format!("quote({})", quoted(c)))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        // Ordered by every column, so the order is total whatever the table's key is.
        let order = columns
            .iter()
            .map(|c| quoted(c))
            .collect::<Vec<_>>()
            .join(", ");
        let lines: Vec<Line> = diesel::sql_query(format!(
            "SELECT {row} AS line FROM {} ORDER BY {order}",
            quoted(&table)
        ))
        .load(conn)
        .with_context(|| format!("reading table {table}"))?;
        let mut hash = Sha256::new();
        for line in &lines {
            hash.update(line.line.as_bytes());
            hash.update(b"\n");
        }
        sums.push(TableSum {
            table,
            rows: lines.len() as i64,
            sha256: crate::tokens::hex(&hash.finalize()),
        });
    }
    Ok(sums)
}

/// Checks the database file at `path` and describes it, table by table.
pub fn sums_of(path: &Path) -> anyhow::Result<Vec<TableSum>> {
    let mut conn = open(path)?;
    check(&mut conn, path)?;
    table_sums(&mut conn)
}

/// Copies the database at `database` into the new file `to` (0600), consistently, while the
/// service may be writing; checks the copy and describes it.
pub fn backup(database: &Path, to: &Path) -> anyhow::Result<Vec<TableSum>> {
    ensure!(
        database.exists(),
        "there is no database at {}",
        database.display()
    );
    if to.exists() {
        bail!(
            "{} exists already; a backup never overwrites a file",
            to.display()
        );
    }
    let mut source = open(database)?;
    // An empty file of our own first: VACUUM INTO accepts one, and the copy is private from the
    // start (it holds everyone's address).
    crate::files::ensure_private_file(to).with_context(|| format!("creating {}", to.display()))?;
    let copied = diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(to.to_string_lossy())
        .execute(&mut source);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(to);
        return Err(e).with_context(|| format!("copying the database into {}", to.display()));
    }
    drop(source);
    sums_of(to)
}

/// Takes the lock every `enlace serve` on this SQLite database holds while it runs, so that a
/// restore can tell that the database is in use. `None` when the lock is held elsewhere.
fn serving_lock_path(database: &Path) -> PathBuf {
    PathBuf::from(format!("{}.lock", database.display()))
}

fn flock(file: &File, operation: libc::c_int) -> bool {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor this process owns for as long as `file` lives.
    unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) == 0 }
}

fn lock_file(database: &Path) -> anyhow::Result<File> {
    let path = serving_lock_path(database);
    crate::files::ensure_private_file(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    File::open(&path).with_context(|| format!("opening {}", path.display()))
}

/// Whether an `enlace serve` holds the serving lock of this SQLite database now (without
/// creating the lock file or keeping the lock).
pub(crate) fn is_served(database: &Path) -> bool {
    match File::open(serving_lock_path(database)) {
        Ok(file) => !flock(&file, libc::LOCK_EX),
        Err(_) => false,
    }
}

/// Held by a serving process for as long as it runs (shared: several processes may serve one
/// database file).
pub struct ServingLock(#[allow(dead_code)] File);

pub fn hold_serving_lock(database_url: &str) -> anyhow::Result<Option<ServingLock>> {
    let Ok(DatabaseUrl::Sqlite(path)) = DatabaseUrl::parse(database_url) else {
        return Ok(None);
    };
    if path.to_string_lossy() == ":memory:" {
        return Ok(None);
    }
    let file = lock_file(&path)?;
    ensure!(
        flock(&file, libc::LOCK_SH),
        "{} is being restored; start Enlace again when the restore has finished",
        path.display()
    );
    Ok(Some(ServingLock(file)))
}

/// Puts the backup `from` in place of the database at `database`: refused while Enlace serves
/// it, and refused over an existing database unless `force`. The backup is checked first; the
/// new file replaces the old one in one rename, with the old one's write-ahead log removed.
pub fn restore(from: &Path, database: &Path, force: bool) -> anyhow::Result<Vec<TableSum>> {
    sums_of(from)?;
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::files::create_private_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let lock = lock_file(database)?;
    if !flock(&lock, libc::LOCK_EX) {
        bail!(
            "Enlace is serving {}: stop it before restoring",
            database.display()
        );
    }
    let in_use = std::fs::metadata(database).is_ok_and(|m| m.len() > 0);
    if in_use && !force {
        bail!(
            "{} exists; restoring replaces everything in it: pass --force to do that",
            database.display()
        );
    }
    let staging = PathBuf::from(format!("{}.restoring", database.display()));
    let _ = std::fs::remove_file(&staging);
    crate::files::ensure_private_file(&staging)
        .with_context(|| format!("creating {}", staging.display()))?;
    {
        let mut input = File::open(from).with_context(|| format!("reading {}", from.display()))?;
        let mut output = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&staging)?;
        std::io::copy(&mut input, &mut output)
            .with_context(|| format!("writing {}", staging.display()))?;
        output.flush()?;
        output.sync_all()?;
    }
    // The old database's log belongs to the old file: left beside the new one, SQLite would
    // replay it into it.
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", database.display()));
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", side.display())),
        }
    }
    std::fs::rename(&staging, database)
        .with_context(|| format!("moving the backup into {}", database.display()))?;
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).ok();
    }
    let sums = sums_of(database)?;
    drop(lock);
    Ok(sums)
}

/// Backups on a schedule: every `every`, a copy named by its time into `dir`; the newest `keep`
/// are kept. Runs until the process stops; a failed copy is logged and tried at the next turn.
pub async fn run_scheduled(
    database: PathBuf,
    dir: PathBuf,
    every: Duration,
    keep: usize,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let (database, dir) = (database.clone(), dir.clone());
        let made =
            tokio::task::spawn_blocking(move || scheduled_backup(&database, &dir, keep)).await;
        match made {
            Ok(Ok(path)) => tracing::info!(file = %path.display(), "scheduled backup made"),
            Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "scheduled backup failed"),
            Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
        }
    }
}

const SCHEDULED_PREFIX: &str = "enlace-";
const SCHEDULED_SUFFIX: &str = ".db";

/// One scheduled backup into `dir`, then the oldest beyond `keep` removed.
pub fn scheduled_backup(database: &Path, dir: &Path, keep: usize) -> anyhow::Result<PathBuf> {
    crate::files::create_private_dir_all(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let name = format!(
        "{SCHEDULED_PREFIX}{}{SCHEDULED_SUFFIX}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let path = dir.join(name);
    backup(database, &path)?;
    let mut made: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(SCHEDULED_PREFIX) && n.ends_with(SCHEDULED_SUFFIX))
        })
        .collect();
    // The names sort by time.
    made.sort();
    let excess = made.len().saturating_sub(keep.max(1));
    for old in &made[..excess] {
        std::fs::remove_file(old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(path)
}

/// The table of counts and checksums the commands print.
pub fn describe(sums: &[TableSum]) -> String {
    let width = sums.iter().map(|s| s.table.len()).max().unwrap_or(5).max(5);
    let mut out = format!("{:width$}  {:>10}  sha256\n", "table", "rows");
    for s in sums {
        out.push_str(&format!(
            "{:width$}  {:>10}  {}\n",
            s.table, s.rows, s.sha256
        ));
    }
    out
}

//! Database access: one connection type for SQLite and PostgreSQL, the pool, migrations, and the
//! helper that runs diesel (which is synchronous) on the blocking thread pool.

pub mod archive;
pub mod audit;
pub mod batch;
pub mod canonical;
pub mod confirmations;
pub mod consent;
pub mod dashboard;
pub mod deliveries;
pub mod delivery_results;
pub mod exports;
pub mod ids;
pub mod imports;
pub mod interests;
pub mod jobs;
pub mod mail_events;
pub mod newsletter_actions;
pub mod newsletter_clicks;
pub mod newsletters;
pub mod retention;
pub mod schema;
pub mod segments;
pub mod sessions;
pub mod staff;
pub mod states;
pub mod subscribers;
pub mod suppressions;
pub mod webhooks;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Runs one diesel expression on the concrete connection inside an `AnyConnection`, for the
/// statements the multi-backend connection cannot express (multi-row inserts). The expression
/// is written once and compiled for each backend.
#[macro_use]
mod text_enum;

#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::AnyConnection::Sqlite($c) => $body,
            $crate::db::AnyConnection::Postgresql($c) => $body,
        }
    };
}

/// A connection to either backend; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnManager>;

/// Which backend a URL names, decided by its scheme (so a bad PostgreSQL URL reports its own error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            anyhow::ensure!(!path.is_empty(), "sqlite:// URL has no path");
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url.to_owned()))
        } else {
            anyhow::bail!("database URL must start with sqlite:// or postgres://")
        }
    }
}

/// r2d2 manager that opens the right backend and sets SQLite's per-connection pragmas.
#[derive(Clone, Debug)]
pub struct ConnManager {
    url: DatabaseUrl,
}

impl ManageConnection for ConnManager {
    type Connection = AnyConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn =
                    PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
                // Prepared statements are planned for the parameters they get, every time: a plan
                // cached while a table was nearly empty would otherwise keep scanning it whole
                // long after it has grown (the `= ANY($1)` lookups suffered exactly that).
                conn.batch_execute("SET plan_cache_mode = force_custom_plan")
                    .map_err(r2d2::Error::QueryError)?;
                Ok(AnyConnection::Postgresql(conn))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(r2d2::Error::ConnectionError)?;
                // synchronous=FULL: a commit is on disk before we answer (WAL is set at migration).
                // secure_delete: deleted rows (an erasure) are overwritten with zeros in the
                // page, not merely unlinked; `Db::purge_deleted` then clears the WAL's old copies.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                     PRAGMA synchronous = FULL; PRAGMA journal_mode = WAL; \
                     PRAGMA secure_delete = ON;",
                )
                .map_err(r2d2::Error::QueryError)?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut AnyConnection) -> bool {
        false
    }
}

/// The shared handle: a pool plus the knowledge of which backend it talks to.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// Opens connections outside the pool, for a thread that keeps one of its own.
    manager: ConnManager,
    backend: Backend,
    /// SQLite has one writer at a time. Writers in this process queue here, in order, instead of
    /// in SQLite's busy handler, which sleeps in steps of up to 100 ms.
    write_lock: std::sync::Arc<std::sync::Mutex<()>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Failures of the plumbing around a query (pool, thread pool) rather than of the query itself.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("database query: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("database connection: {0}")]
    Connect(#[from] r2d2::Error),
}

/// Whether a statement failed because a row with the same unique key exists (another request or
/// process wrote it first).
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

impl DbError {
    /// See `is_unique_violation`.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Query(e) if is_unique_violation(e))
    }

    /// Whether this is the database being out of reach or unable to write for now, rather than
    /// something wrong with the request: no connection to be had, a connection lost, a full
    /// disk, I/O errors, a read-only file, PostgreSQL shutting down or starting up.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        match self {
            Self::Pool(_) | Self::Connect(_) => true,
            Self::Join(_) => false,
            Self::Query(Error::DatabaseError(
                Kind::ClosedConnection | Kind::UnableToSendCommand,
                _,
            ))
            | Self::Query(Error::BrokenTransactionManager) => true,
            Self::Query(Error::DatabaseError(_, info)) => {
                let message = info.message().to_ascii_lowercase();
                [
                    "database or disk is full",
                    "disk i/o error",
                    "readonly database",
                    "database is locked",
                    "no space left on device",
                    "could not extend file",
                    "the database system is",
                    "terminating connection",
                    "server closed the connection",
                    "connection to server",
                    "no connection to the server",
                    "could not connect",
                    "connection refused",
                    "broken pipe",
                ]
                .iter()
                .any(|sign| message.contains(sign))
            }
            Self::Query(_) => false,
        }
    }
}

impl Db {
    /// Opens the pool (creating the SQLite file's folder when needed).
    pub fn connect(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let url = DatabaseUrl::parse(url)?;
        let backend = match &url {
            DatabaseUrl::Sqlite(path) => {
                prepare_sqlite_file(path)?;
                Backend::Sqlite
            }
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        };
        let manager = ConnManager { url };
        // Open one connection first so a wrong URL fails with its real cause.
        manager.connect().context("connecting to the database")?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(Duration::from_secs(10))
            .build(manager.clone())
            .context("building the database pool")?;
        Ok(Self {
            pool,
            manager,
            backend,
            write_lock: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// After rows holding someone's data were deleted or cleared (an erasure), removes the
    /// copies the database keeps elsewhere. SQLite: copies the WAL into the database file and
    /// truncates it to nothing (a `TRUNCATE` checkpoint), so no older page image of those rows
    /// stays on disk (`secure_delete` has already zeroed them in the pages); it waits for readers
    /// of older snapshots up to the busy timeout, and answers false when some were still
    /// reading. PostgreSQL: fresh planner statistics for the tables that held them, since
    /// `pg_statistic` quotes sampled values; the dead row versions are left to (auto)vacuum.
    pub fn purge_deleted(&self) -> Result<bool, DbError> {
        #[derive(diesel::QueryableByName)]
        struct Checkpoint {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            busy: i32,
        }
        let mut conn = self.pool.get()?;
        let _turn = self.write_turn();
        match &mut *conn {
            AnyConnection::Sqlite(lite) => {
                use diesel::RunQueryDsl;
                let result: Checkpoint =
                    diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result(lite)?;
                Ok(result.busy == 0)
            }
            AnyConnection::Postgresql(pg) => {
                pg.batch_execute(
                    "ANALYZE subscribers, consent_events, jobs, webhook_messages, \
                     webhook_attempts, mail_events, deliveries",
                )?;
                Ok(true)
            }
        }
    }

    /// Applies the embedded migrations of this backend.
    pub fn migrate(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.get().context("getting a connection to migrate")?;
        run_migrations(&mut conn)
    }

    /// A connection for synchronous callers (CLI, tests, blocking workers).
    pub fn get(&self) -> Result<r2d2::PooledConnection<ConnManager>, DbError> {
        Ok(self.pool.get()?)
    }

    /// Runs `f` with a pooled connection on the blocking thread pool, never on an async worker.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(DbError::from)?;
            f(&mut conn)
        })
        .await
        .map_err(DbError::from)?
    }
}

impl Db {
    /// Like `run`, for closures that write: on SQLite they take the process's write turn first.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.write_blocking(f))
            .await
            .map_err(DbError::from)?
    }

    /// Runs `f` in one write transaction (`write_transaction`: `BEGIN IMMEDIATE` on SQLite) on a
    /// pooled connection, on the blocking pool and in SQLite's write turn (`write`): how a
    /// request or a worker changes anything. Commits when `f` returns `Ok`, rolls back otherwise.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        self.write(move |conn| write_transaction(conn, f)).await
    }

    /// A connection of its own, outside the pool (set up like the pool's), for a thread that
    /// writes often and would otherwise pay the pool's check-out query on every visit.
    pub fn dedicated_connection(&self) -> Result<AnyConnection, DbError> {
        Ok(self.manager.connect()?)
    }

    /// On SQLite, the process's write turn (see `write`); `None` on PostgreSQL.
    pub fn write_turn(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        (self.backend == Backend::Sqlite).then(|| {
            self.write_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        })
    }

    /// `write` for a thread that may block (a dedicated writer thread, the CLI): takes a
    /// pooled connection and, on SQLite, the process's write turn, then runs `f` here.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E>,
        E: From<DbError>,
    {
        let mut conn = self.pool.get().map_err(DbError::from)?;
        let _turn = self.write_turn();
        f(&mut conn)
    }
}

/// Before SQLite opens the database: its folder made (0700) if missing, the file created empty
/// with mode 0600 (SQLite gives its WAL and shared-memory files the database file's mode), and
/// files left open to others by an earlier version narrowed to 0600.
fn prepare_sqlite_file(path: &std::path::Path) -> anyhow::Result<()> {
    let raw = path.to_string_lossy();
    if raw == ":memory:" || raw.starts_with("file:") {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::files::create_private_dir_all(dir)
            .with_context(|| format!("creating database folder {}", dir.display()))?;
    }
    crate::files::ensure_private_file(path)
        .with_context(|| format!("creating the database file {}", path.display()))?;
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{raw}{suffix}"));
        crate::files::narrow(&side).with_context(|| format!("narrowing {}", side.display()))?;
    }
    Ok(())
}

/// Once per SQLite database, after the migrations: a `VACUUM`, so that rows deleted before
/// `secure_delete` was on (by an erasure, say) leave no bytes behind in free pages. Recorded in
/// `data_migrations`; later deletions are overwritten as they happen.
fn vacuum_once(conn: &mut AnyConnection) -> anyhow::Result<()> {
    use diesel::prelude::*;
    use schema::data_migrations;
    const NAME: &str = "secure_delete_vacuum";
    if !matches!(conn, AnyConnection::Sqlite(_)) {
        return Ok(());
    }
    let done: i64 = data_migrations::table
        .filter(data_migrations::name.eq(NAME))
        .count()
        .get_result(conn)
        .context("reading data_migrations")?;
    if done > 0 {
        return Ok(());
    }
    conn.batch_execute("VACUUM")
        .context("vacuuming the database")?;
    let recorded = diesel::insert_into(data_migrations::table)
        .values((
            data_migrations::name.eq(NAME),
            data_migrations::applied_at.eq(now()),
            data_migrations::summary.eq("free pages cleared once; deletions are overwritten since"),
        ))
        .execute(conn);
    match recorded {
        // Another process starting at the same moment did the same.
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(e).context("recording the vacuum"),
    }
    tracing::info!("database vacuumed once so deleted rows leave nothing in free pages");
    Ok(())
}

/// The versions of the SQLite migrations built into this Enlace, oldest first, as
/// `__diesel_schema_migrations` records them once applied.
pub fn sqlite_migration_versions() -> anyhow::Result<Vec<String>> {
    use diesel::migration::MigrationSource;
    let migrations = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("reading the built-in migrations: {e}"))?;
    Ok(migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}

/// The PostgreSQL advisory lock a process holds while it migrates ("enlace", then 1).
const MIGRATION_LOCK: i64 = 0x656e_6c61_6365_0001;

/// Brings the database up to this version: the migrations, then the one-time data changes
/// (canonical addresses, SQLite's vacuum). On PostgreSQL, processes that start at the same
/// moment (several instances after an upgrade) take turns under an advisory lock: the first
/// applies what is pending, the others wait and then find nothing left to do. Without it the
/// second would fail creating a table the first had just created.
pub fn run_migrations(conn: &mut AnyConnection) -> anyhow::Result<()> {
    let AnyConnection::Postgresql(pg) = conn else {
        return migrate_unlocked(conn);
    };
    pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .context("waiting for another process's migrations")?;
    let result = migrate_unlocked(conn);
    let AnyConnection::Postgresql(pg) = conn else {
        unreachable!("the connection cannot change backend")
    };
    // A session lock outlives the transaction: a pooled connection must not keep it.
    let unlocked = pg
        .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .context("releasing the migration lock");
    result.and(unlocked)
}

fn migrate_unlocked(conn: &mut AnyConnection) -> anyhow::Result<()> {
    let result = match conn {
        AnyConnection::Postgresql(pg) => pg
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|v| v.len()),
        AnyConnection::Sqlite(lite) => lite
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.len()),
    };
    let applied = result.map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    if let Some(report) = canonical::canonicalise_addresses(conn)
        .map_err(|e| anyhow::anyhow!("putting stored addresses in canonical form: {e}"))?
    {
        // Ids only: the merges are listed so staff can review them.
        tracing::info!(
            rewritten = report.rewritten,
            merged = report.merged.len(),
            refused = report.refused,
            staff_rewritten = report.staff_rewritten,
            merges = ?report.merged,
            "stored addresses put in canonical form"
        );
    }
    vacuum_once(conn)
}

/// Current time as stored: UTC, microsecond precision on both backends.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(6)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A transaction that writes. On SQLite it starts with `BEGIN IMMEDIATE`, taking the write lock
/// up front: a deferred transaction that reads first would fail with SQLITE_BUSY when another
/// connection commits before it writes. On PostgreSQL it is an ordinary transaction.
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let AnyConnection::Sqlite(lite) = conn else {
        return conn.transaction(f);
    };
    AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE")?;
    let result = f(conn);
    let AnyConnection::Sqlite(lite) = conn else {
        unreachable!("the connection cannot change backend")
    };
    match result {
        Ok(value) => match AnsiTransactionManager::commit_transaction(lite) {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = AnsiTransactionManager::rollback_transaction(lite);
                Err(e.into())
            }
        },
        Err(e) => {
            AnsiTransactionManager::rollback_transaction(lite)?;
            Err(e)
        }
    }
}

/// Takes the change-feed lock (PostgreSQL; a no-op on SQLite, whose writers take turns anyway)
/// before locking subscriber rows with `SELECT ... FOR UPDATE`. Every writer of subscribers
/// takes it before any row lock (the migration's statement triggers do it for UPDATE, INSERT and
/// DELETE), so taking it first here keeps one lock order and no two writers can deadlock.
/// Call inside a write transaction.
pub fn lock_changes(conn: &mut AnyConnection) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    match conn {
        AnyConnection::Postgresql(pg) => {
            pg.batch_execute("SELECT 1 FROM change_counter WHERE id = 1 FOR UPDATE")
        }
        AnyConnection::Sqlite(_) => Ok(()),
    }
}

/// A read-only transaction over one consistent snapshot: PostgreSQL `REPEATABLE READ, READ ONLY`,
/// SQLite a deferred transaction (its snapshot starts with the first read and, in WAL mode, holds
/// until the end). Every query in `f` sees the same committed state.
pub fn read_snapshot<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let begin = match conn {
        AnyConnection::Postgresql(_) => {
            "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        }
        AnyConnection::Sqlite(_) => "BEGIN DEFERRED",
    };
    crate::on_backend!(&mut *conn, |c| {
        AnsiTransactionManager::begin_transaction_sql(c, begin)
    })?;
    let result = f(conn);
    match result {
        Ok(value) => {
            match crate::on_backend!(&mut *conn, |c| AnsiTransactionManager::commit_transaction(
                c
            )) {
                Ok(()) => Ok(value),
                Err(e) => {
                    let _ = crate::on_backend!(&mut *conn, |c| {
                        AnsiTransactionManager::rollback_transaction(c)
                    });
                    Err(e.into())
                }
            }
        }
        Err(e) => {
            crate::on_backend!(
                &mut *conn,
                |c| AnsiTransactionManager::rollback_transaction(c)
            )?;
            Err(e)
        }
    }
}

/// A write that changes nothing of value: the readiness probe's one row gets the time. It
/// succeeds only when the database can be reached and written (not full, not read-only).
pub fn probe_write(conn: &mut AnyConnection) -> Result<(), DbError> {
    use diesel::prelude::*;
    use schema::readiness_probe::dsl as probe;
    diesel::update(probe::readiness_probe.find(1))
        .set(probe::checked_at.eq(now()))
        .execute(conn)?;
    Ok(())
}

//! Imports: checking a staff member's CSV upload and what they say about the people in it,
//! storing it with its plan and queueing the job (the rows themselves are written by the import
//! worker, `imports::run`), following an import's report, listing imports, cancelling one.

use tokio::sync::Notify;

use crate::auth::Principal;
use crate::db::ids::ImportId;
use crate::db::imports::{self as store, Import, ImportPart, ImportProblem};
use crate::db::{self, Db, DbError};
use crate::domain::{FieldErrors, InterestSlug, Language};
use crate::imports::plan::{self, Catalog, Options};
use crate::imports::{import_job, Mode};
use crate::views::imports::FileView;

const MAX_TEXT_CHARS: usize = 500;
/// Report lines shown with an import when no page is asked for.
pub const DEFAULT_PROBLEMS: i64 = 100;

/// What an upload says about its people, as sent (the query string of `POST /api/v1/imports`).
#[derive(Default)]
pub struct ImportRequest {
    pub mode: Option<String>,
    pub source: Option<String>,
    pub consent_note: Option<String>,
    pub language: Option<String>,
    /// Interest slugs, comma-separated.
    pub interests: Option<String>,
    /// `<column>:<field>` pairs.
    pub map: Vec<String>,
    pub delimiter: Option<String>,
}

/// An import request whose options are checked; what needs the database (interests, fields)
/// and the file itself are checked by `create`.
pub struct CheckedRequest {
    mode: Mode,
    source: Option<String>,
    consent_note: Option<String>,
    options: Options,
}

impl ImportRequest {
    /// Checks the options before the file is read: people imported as having consented need a
    /// record of where and how they did; people asked to confirm give their consent by
    /// confirming.
    pub fn check(self) -> Result<CheckedRequest, FieldErrors> {
        let mut errors = FieldErrors::new();
        let text = |raw: Option<String>| raw.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let valid_text =
            |s: &str| s.chars().count() <= MAX_TEXT_CHARS && !s.chars().any(char::is_control);
        let mode = match self.mode.as_deref() {
            None => {
                errors.add("mode", "is required: consented (they agreed elsewhere; give source and consent_note) or confirm (each new person gets a confirmation mail)");
                None
            }
            Some(raw) => {
                let mode = Mode::parse(raw);
                if mode.is_none() {
                    errors.add("mode", "must be consented or confirm");
                }
                mode
            }
        };
        let source = text(self.source);
        let consent_note = text(self.consent_note);
        if source.as_deref().is_some_and(|s| !valid_text(s)) {
            errors.add("source", "must be at most 500 characters on one line");
        }
        if consent_note.as_deref().is_some_and(|s| !valid_text(s)) {
            errors.add("consent_note", "must be at most 500 characters on one line");
        }
        if mode == Some(Mode::Consented) {
            if source.is_none() {
                errors.add("source", "is required with mode=consented: where these people agreed (a sign-up sheet, an event, a form)");
            }
            if consent_note.is_none() {
                errors.add(
                    "consent_note",
                    "is required with mode=consented: what they agreed to and how, kept as evidence",
                );
            }
        }
        if mode == Some(Mode::Confirm) && consent_note.is_some() {
            errors.add("consent_note", "goes with mode=consented only: in confirm mode each person gives consent by confirming");
        }
        let language = match self.language.as_deref() {
            None => Language::En,
            Some(raw) => Language::parse(raw).unwrap_or_else(|e| {
                errors.add("language", e);
                Language::En
            }),
        };
        let mut interests = Vec::new();
        for raw in self
            .interests
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match InterestSlug::parse(raw) {
                Ok(slug) if !interests.contains(&slug) => interests.push(slug),
                Ok(_) => {}
                Err(e) => errors.add("interests", format!("\"{raw}\" {e}")),
            }
        }
        let mut map = Vec::new();
        for raw in &self.map {
            match raw.rsplit_once(':') {
                Some((column, field)) => map.push((column.to_owned(), field.to_owned())),
                None => errors.add("map", format!("\"{raw}\" must look like <column>:<field>")),
            }
        }
        let delimiter = match self.delimiter.as_deref() {
            None => None,
            Some(",") => Some(b','),
            Some(";") => Some(b';'),
            Some("tab" | "\t") => Some(b'\t'),
            Some(_) => {
                errors.add("delimiter", "must be , or ; or tab");
                None
            }
        };
        match mode {
            Some(mode) if errors.is_empty() => Ok(CheckedRequest {
                mode,
                source,
                consent_note,
                options: Options {
                    language,
                    interests,
                    map,
                    delimiter,
                },
            }),
            _ => Err(errors),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateImportError {
    /// The options or the file (whole: nothing is stored when anything is wrong).
    #[error("invalid import")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The interests and custom fields there are, which an upload may refer to.
pub async fn catalog(db: &Db) -> Result<Catalog, DbError> {
    db.run(|conn| -> Result<_, DbError> {
        Ok(Catalog {
            interests: db::interests::list_interests(conn)?
                .into_iter()
                .map(|i| i.slug)
                .collect(),
            fields: db::interests::list_field_declarations(conn)?,
        })
    })
    .await
}

/// A file's columns, each with the field its header names (`email`, `attributes.city`…) if
/// any, for a form where staff choose what each column holds before the import is created.
pub fn detect_columns(
    file: &[u8],
    catalog: &Catalog,
) -> Result<Vec<(String, Option<String>)>, FieldErrors> {
    Ok(plan::detect_columns(file, catalog)?
        .into_iter()
        .map(|(header, field)| (header, field.map(|f| f.label())))
        .collect())
}

/// Checks the whole file against the interests and fields there are, stores it with the import
/// and queues the job (one transaction), then wakes the task worker.
pub async fn create(
    db: &Db,
    task_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    request: CheckedRequest,
    file: Vec<u8>,
) -> Result<Import, CreateImportError> {
    let catalog = catalog(db).await?;
    let unknown: Vec<&str> = request
        .options
        .interests
        .iter()
        .map(InterestSlug::as_str)
        .filter(|slug| !catalog.interests.iter().any(|i| i == slug))
        .collect();
    let mut refusal = FieldErrors::new();
    if !unknown.is_empty() {
        refusal.add(
            "interests",
            format!("unknown interest: {}", unknown.join(", ")),
        );
    }
    // Reading a large file is CPU work: off the async threads.
    let CheckedRequest {
        mode,
        source,
        consent_note,
        options,
    } = request;
    let prepared = tokio::task::spawn_blocking(move || plan::prepare(&file, &options, &catalog))
        .await
        .map_err(anyhow::Error::from)?;
    let prepared = match prepared {
        Ok(p) if refusal.is_empty() => p,
        Ok(_) => return Err(CreateImportError::Invalid(refusal)),
        Err(errors) => {
            refusal.merge_prefixed("", errors);
            return Err(CreateImportError::Invalid(refusal));
        }
    };
    let now = db::now();
    let created_by = match actor {
        Principal::Staff { id, .. } => format!("staff:{id}"),
        Principal::ApiKey { id, .. } => format!("api_key:{id}"),
    };
    let import = Import {
        id: ImportId::new(),
        status: store::ImportStatus::Queued,
        mode: mode.as_str().into(),
        source,
        consent_note,
        plan: serde_json::to_string(&prepared.plan).map_err(anyhow::Error::from)?,
        file: serde_json::to_string(&FileView {
            bytes: prepared.bytes,
            sha256: &prepared.sha256,
        })
        .map_err(anyhow::Error::from)?,
        total_rows: prepared.rows,
        parts: prepared.parts.len() as i64,
        next_part: 0,
        counts: serde_json::to_string(&store::Counts::default()).unwrap_or_default(),
        error: None,
        created_by,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    let parts: Vec<ImportPart> = prepared
        .parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| ImportPart {
            import_id: import.id.clone(),
            part: i as i64,
            first_line: p.first_line,
            body: p.body,
            duplicates: serde_json::to_string(&p.duplicates).unwrap_or_else(|_| "[]".into()),
        })
        .collect();
    let stored = import.clone();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<(), DbError> {
        store::insert_import(conn, &stored, &parts)?;
        db::jobs::insert_job(conn, &import_job(&stored.id, now))?;
        actor.audit(
            conn,
            ip.as_deref(),
            "import.create",
            "import",
            Some(&stored.id),
        )?;
        Ok(())
    })
    .await?;
    task_ready.notify_one();
    tracing::info!(import_id = %import.id, rows = import.total_rows, mode = %import.mode, "import queued");
    Ok(import)
}

/// An import with one page of its per-row report.
pub struct ImportReport {
    pub import: Import,
    pub problems: Vec<ImportProblem>,
    pub problems_total: i64,
    pub problems_offset: i64,
}

/// Progress, counts and the report's lines from `offset`, at most `limit`.
pub async fn get(
    db: &Db,
    id: ImportId,
    offset: i64,
    limit: i64,
) -> Result<Option<ImportReport>, DbError> {
    db.run(move |conn| -> Result<_, DbError> {
        let Some(import) = store::find_import(conn, &id)? else {
            return Ok(None);
        };
        Ok(Some(ImportReport {
            import,
            problems_total: store::count_problems(conn, &id)?,
            problems: store::list_problems(conn, &id, offset, limit)?,
            problems_offset: offset,
        }))
    })
    .await
}

/// Recent imports, newest first, before the import `before`; at most `limit`.
pub async fn list(db: &Db, before: Option<String>, limit: i64) -> Result<Vec<Import>, DbError> {
    db.run(move |conn| store::list_imports(conn, before.as_deref(), limit).map_err(DbError::from))
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum CancelImportError {
    #[error("no such import")]
    NotFound,
    #[error("the import has already ended ({status})")]
    Ended { status: store::ImportStatus },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for CancelImportError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Stops an import that has not finished. Rows already imported stay (and confirmation mails
/// already queued for them go out); the rest of the file is deleted.
pub async fn cancel(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: ImportId,
) -> Result<ImportReport, CancelImportError> {
    let logged = id.clone();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let report = db
        .transaction(move |conn| {
            let import = store::find_import(conn, &id)?.ok_or(CancelImportError::NotFound)?;
            if !store::cancel_import(conn, &id, db::now())? {
                return Err(CancelImportError::Ended {
                    status: import.status,
                });
            }
            actor.audit(conn, ip.as_deref(), "import.cancel", "import", Some(&id))?;
            let import = store::find_import(conn, &id)?.ok_or(CancelImportError::NotFound)?;
            Ok(ImportReport {
                import,
                problems_total: store::count_problems(conn, &id)?,
                problems: store::list_problems(conn, &id, 0, DEFAULT_PROBLEMS)?,
                problems_offset: 0,
            })
        })
        .await?;
    tracing::info!(import_id = %logged, "import cancelled");
    Ok(report)
}

/// Uploads waiting for staff to choose what their columns hold (the console's two steps): kept
/// in the data folder (0600 files in a 0700 folder), each readable only by whoever uploaded it,
/// deleted once the import is created or after a day.
pub mod staged {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    const FOLDER: &str = "imports-staged";
    const KEEP_HOURS: u64 = 24;

    fn folder(data_dir: &Path) -> PathBuf {
        data_dir.join(FOLDER)
    }

    /// The file of upload `id` by `owner`; `None` when either is not a plain identifier.
    fn path_of(data_dir: &Path, owner: &str, id: &str) -> Option<PathBuf> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        (plain(owner) && plain(id)).then(|| folder(data_dir).join(format!("{owner}.{id}.csv")))
    }

    /// Keeps `file` for `owner`; returns its id. Uploads older than a day are deleted.
    pub async fn keep(data_dir: PathBuf, owner: String, file: Vec<u8>) -> anyhow::Result<String> {
        tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let dir = folder(&data_dir);
            crate::files::create_private_dir_all(&dir)?;
            forget_old(&dir);
            let id = uuid::Uuid::new_v4().simple().to_string();
            let path = path_of(&data_dir, &owner, &id)
                .ok_or_else(|| anyhow::anyhow!("not a plain staff id"))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(crate::files::FILE_MODE);
            }
            let mut out = options.open(&path)?;
            out.write_all(&file)?;
            out.sync_all()?;
            Ok(id)
        })
        .await?
    }

    /// The upload `id` by `owner`, if it is still kept.
    pub async fn read(data_dir: &Path, owner: &str, id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(path) = path_of(data_dir, owner, id) else {
            return Ok(None);
        };
        match tokio::fs::read(path).await {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the upload `id` by `owner`.
    pub async fn forget(data_dir: &Path, owner: &str, id: &str) {
        if let Some(path) = path_of(data_dir, owner, id) {
            if let Err(e) = tokio::fs::remove_file(path).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, "could not delete an uploaded file");
                }
            }
        }
    }

    fn forget_old(dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let limit = std::time::Duration::from_secs(KEEP_HOURS * 3600);
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > limit);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

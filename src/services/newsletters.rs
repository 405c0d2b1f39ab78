//! Use cases of newsletters and their sends: write a draft (`drafts`: create, change), delete
//! one, read one (with the progress of its send) or a page of them, preview it for a person and
//! queue test copies (`proofs`), and send it now or at a time, pause, resume or cancel the send
//! (`sends`).
//!
//! Template work (compiling a draft, rendering a preview or a test copy) runs on a blocking
//! thread of its own, at most `render_slots` at a time, holding no connection and no
//! transaction: a slow template then delays only the request that asked for it.

use std::sync::Arc;

use chrono::{Duration, NaiveDateTime};
use tokio::sync::Semaphore;

use crate::auth::Principal;
use crate::config::Settings;
use crate::db::deliveries::{self, Progress};
use crate::db::ids::NewsletterId;
use crate::db::newsletters::{self as store, Newsletter};
use crate::db::states::NewsletterState;
use crate::db::{self, read_snapshot, Db, DbError};
use crate::domain::FieldErrors;
use crate::email::newsletter::{CompiledNewsletter, NewsletterContent};
use crate::email::Templates;

/// Newsletters per page of the list, at most.
const MAX_PAGE: i64 = 200;

/// What staff-side template work needs: the settings it reads (organisation, postal address,
/// public URL, default From, DKIM domain), the partials it renders with, and the slots that bound
/// how much of it runs at once.
#[derive(Clone, Copy)]
pub struct Rendering<'a> {
    pub settings: &'a Settings,
    pub templates: &'a Arc<Templates>,
    pub render_slots: &'a Semaphore,
    /// Signs counted links, so a preview or test copy shows the links the send will have.
    pub links: &'a crate::clicks::LinkSigner,
}

/// Which page of the list: newsletters in one state (or all), after the one named by `cursor`.
#[derive(Debug)]
pub struct ListInput {
    pub status: Option<String>,
    pub cursor: Option<String>,
    pub limit: i64,
}

/// A page of newsletters, newest first; `more` when another page follows.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Newsletter>,
    pub more: bool,
}

/// A newsletter as read at `read_at`, with the progress of its send for principals who may read
/// contacts (progress counts people: how many a filter reached, and what became of them).
#[derive(Debug)]
pub struct Report {
    pub newsletter: Newsletter,
    pub progress: Option<Progress>,
    /// The messages not sent, by state and class of reason (`failed`, `550 5.1.1`, 3), with the
    /// progress.
    pub reasons: Option<Vec<(String, String, i64)>>,
    pub read_at: NaiveDateTime,
}

/// Implements the conversion `Db::transaction` and `Db::run` need for an error enum with a
/// `Db(DbError)` variant.
macro_rules! from_diesel {
    ($($error:ty),*) => {$(
        impl From<diesel::result::Error> for $error {
            fn from(e: diesel::result::Error) -> Self {
                Self::Db(e.into())
            }
        }
    )*};
}

mod drafts;
mod proofs;
mod results;
mod sends;

pub use drafts::{create, duplicate, update, DraftError, DraftInput};
pub use proofs::{
    preview, send_test, Preview, PreviewError, PreviewInput, TestError, TestInput, TestOutbox,
};
pub use results::{results, Clicks, Counts, LinkClicks, Results, ResultsError, Shown};
pub use sends::{
    audience, cancel, pause, resume, send, Audience, AudienceError, SendError, SendInput,
    TransitionError,
};

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("the list request has invalid fields")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("no such newsletter")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("no such newsletter")]
    NotFound,
    #[error("a {0} newsletter is kept as the record of what was sent; only drafts (or sends cancelled before they started) can be deleted")]
    Kept(NewsletterState),
    #[error(transparent)]
    Db(#[from] DbError),
}

from_diesel!(ListError, GetError, DeleteError);

/// A UUID as ids are stored (lower case, hyphenated); `None` for anything else.
pub(super) fn stored_id(raw: &str, hyphenated_only: bool) -> Option<String> {
    if hyphenated_only && raw.len() != 36 {
        return None;
    }
    uuid::Uuid::parse_str(raw).ok().map(|u| u.to_string())
}

pub(super) async fn find(db: &Db, id: &NewsletterId) -> Result<Option<Newsletter>, DbError> {
    let id = id.clone();
    db.run(move |conn| store::find_newsletter(conn, &id).map_err(DbError::from))
        .await
}

pub async fn list(db: &Db, input: ListInput) -> Result<Page, ListError> {
    let invalid =
        |field: &str, message: String| ListError::Invalid(FieldErrors::one(field, message));
    let ListInput {
        status,
        cursor,
        limit,
    } = input;
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(invalid("limit", "must be between 1 and 200".into()));
    }
    let status = match status.as_deref() {
        None => None,
        Some(raw) => Some(NewsletterState::parse(raw).ok_or_else(|| {
            let all: Vec<&str> = NewsletterState::ALL.iter().map(|s| s.as_str()).collect();
            invalid("status", format!("must be one of {}", all.join(", ")))
        })?),
    };
    let not_a_cursor = || invalid("cursor", "is not a cursor from this list".into());
    // The cursor is the last id of the previous page; its creation time is read back.
    let cursor = match cursor.as_deref() {
        Some(raw) => Some(
            stored_id(raw, true)
                .and_then(|id| NewsletterId::parse(&id))
                .ok_or_else(not_a_cursor)?,
        ),
        None => None,
    };
    let page = db
        .run(move |conn| -> Result<_, DbError> {
            read_snapshot(conn, |conn| {
                let before = match cursor {
                    Some(id) => match store::find_newsletter(conn, &id)? {
                        Some(n) => Some((n.created_at, n.id)),
                        None => return Ok(None),
                    },
                    None => None,
                };
                Ok(Some(store::list_newsletters(
                    conn,
                    status,
                    before,
                    limit + 1,
                )?))
            })
        })
        .await?
        .ok_or_else(not_a_cursor)?;
    let more = page.len() as i64 > limit;
    let items = page.into_iter().take(limit as usize).collect();
    Ok(Page { items, more })
}

/// A newsletter, with its progress when `actor` may read contacts.
pub async fn get(db: &Db, actor: &Principal, id: NewsletterId) -> Result<Report, GetError> {
    let with_progress = actor.may_read_contacts();
    let now = db::now();
    db.run(move |conn| {
        read_snapshot(conn, |conn| -> Result<_, GetError> {
            let newsletter = store::find_newsletter(conn, &id)?.ok_or(GetError::NotFound)?;
            let (progress, reasons) = if with_progress {
                let progress = deliveries::progress(conn, &id, now - Duration::seconds(30))?;
                let reasons = (progress.failed + progress.skipped > 0)
                    .then(|| db::delivery_results::unsent(conn, &id))
                    .transpose()?
                    .map(|(live, folded)| unsent_by_reason(live, folded));
                (Some(progress), reasons)
            } else {
                (None, None)
            };
            Ok(Report {
                newsletter,
                progress,
                reasons,
                read_at: now,
            })
        })
    })
    .await
}

/// The messages not sent, by state and class of reason, most first: the live rows' outcomes
/// classed as results keep them (`sending::outcome_class`), added to the rows already folded.
fn unsent_by_reason(
    live: Vec<(String, Option<String>, i64)>,
    folded: Vec<(String, String, i64)>,
) -> Vec<(String, String, i64)> {
    let mut by_reason: std::collections::BTreeMap<(String, String), i64> = Default::default();
    let live = live.into_iter().map(|(state, outcome, n)| {
        let reason = crate::sending::outcome_class(outcome.as_deref());
        (state, reason, n)
    });
    for (state, reason, n) in live.chain(folded) {
        *by_reason.entry((state, reason)).or_default() += n;
    }
    let mut out: Vec<(String, String, i64)> =
        by_reason.into_iter().map(|((s, r), n)| (s, r, n)).collect();
    out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
    out
}

/// Deletes a draft (or a send cancelled before it started); anything else is kept as the record
/// of what was sent.
pub async fn delete(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: NewsletterId,
) -> Result<(), DeleteError> {
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<(), DeleteError> {
        let n = store::find_newsletter(conn, &id)?.ok_or(DeleteError::NotFound)?;
        if !store::delete_unsent(conn, &id)? {
            return Err(DeleteError::Kept(n.status));
        }
        actor.audit(
            conn,
            ip.as_deref(),
            "newsletter.delete",
            "newsletter",
            Some(&id),
        )?;
        Ok(())
    })
    .await
}

/// Compiles content against the fields declared now, away from the database: the declarations
/// are read on a pooled connection given back at once, and the templates are compiled (which
/// renders each on sample data) on a blocking thread that holds no connection and no transaction,
/// at most `render_slots` at a time. A slow template then delays only the request that saved it.
pub(super) async fn compile_apart<E>(
    db: &Db,
    rendering: Rendering<'_>,
    content: NewsletterContent,
) -> Result<Result<CompiledNewsletter, FieldErrors>, E>
where
    E: From<DbError> + From<anyhow::Error> + Send + 'static,
{
    let declared: Vec<String> = db
        .run(|conn| db::interests::list_field_declarations(conn).map_err(DbError::from))
        .await?
        .into_iter()
        .map(|f| f.key)
        .collect();
    let _slot = rendering
        .render_slots
        .acquire()
        .await
        .map_err(anyhow::Error::from)?;
    let org = rendering.settings.org_name.clone();
    let postal = rendering.settings.postal_address.clone();
    tokio::task::spawn_blocking(move || {
        CompiledNewsletter::compile(&content, &declared, &org, postal.as_deref())
    })
    .await
    .map_err(|e| E::from(anyhow::Error::from(e)))
}

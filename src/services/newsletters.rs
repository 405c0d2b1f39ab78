//! Use cases of newsletters and their sends: write a draft (create, change, delete), read one
//! (with the progress of its send) or a page of them, preview it for a person, queue test copies,
//! and send it now or at a time, pause, resume or cancel the send.
//!
//! Template work (compiling a draft, rendering a preview or a test copy) runs on a blocking
//! thread of its own, at most `render_slots` at a time, holding no connection and no
//! transaction: a slow template then delays only the request that asked for it.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use governor::DefaultKeyedRateLimiter;
use lettre::message::Mailbox;
use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};

use crate::auth::Principal;
use crate::config::Settings;
use crate::db::deliveries::{self, Progress};
use crate::db::newsletters::{self as store, Newsletter, NewsletterChanges};
use crate::db::{self, read_snapshot, AnyConnection, Db, DbError};
use crate::domain::{Email, FieldErrors, Language, SegmentFilter};
use crate::email::newsletter::{
    check_content, CompiledNewsletter, Content, MergeData, NewsletterContent, Rendered,
};
use crate::email::Templates;
use crate::jobs::TestMail;
use crate::sending::prepare::{content_of, target_filter};

/// Test copies per request.
const MAX_TEST_RECIPIENTS: usize = 10;

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
}

/// A draft as staff write it; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct DraftInput {
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<Option<String>>,
    pub variants: Option<Option<BTreeMap<Language, Content>>>,
    pub from: Option<Option<String>>,
    pub reply_to: Option<Option<String>>,
    pub segment_id: Option<Option<String>>,
    pub filter: Option<Option<Value>>,
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
    pub read_at: NaiveDateTime,
}

/// Where test copies go out: each staff member or key has an allowance in `limiter`, and
/// `mail_ready` wakes the mail worker once they are queued.
#[derive(Clone, Copy)]
pub struct TestOutbox<'a> {
    pub limiter: &'a DefaultKeyedRateLimiter<String>,
    pub mail_ready: &'a Notify,
}

/// Whose data a preview shows: a subscriber's (by id), or a sample person's.
#[derive(Debug, Default)]
pub struct PreviewInput {
    pub subscriber_id: Option<String>,
    pub language: Option<String>,
}

/// The message a preview shows.
#[derive(Debug)]
pub struct Preview {
    pub language: Language,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub from: String,
}

/// Where test copies go, and in which language.
#[derive(Debug, Default)]
pub struct TestInput {
    pub to: Vec<String>,
    pub language: Option<String>,
}

/// When to send (`None`: now), and the key that makes a repeated request a no-op.
#[derive(Debug, Default)]
pub struct SendInput {
    pub send_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
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

/// Creating or changing a draft.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    #[error("the draft has invalid fields")]
    Invalid(FieldErrors),
    #[error("no such newsletter")]
    NotFound,
    #[error("only drafts can be changed; this newsletter is {0}")]
    NotADraft(String),
    #[error(
        "the draft was changed by someone else meanwhile; read it again and send your change again"
    )]
    ChangedMeanwhile,
    #[error("the newsletter is no longer a draft")]
    NoLongerADraft,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("no such newsletter")]
    NotFound,
    #[error("a {0} newsletter is kept as the record of what was sent; only drafts (or sends cancelled before they started) can be deleted")]
    Kept(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("the preview request has invalid fields")]
    Invalid(FieldErrors),
    #[error("no such newsletter")]
    NotFound,
    /// Rendering for a real person shows their data: that takes the right to read contacts.
    #[error("these credentials do not allow this")]
    Forbidden,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("the test request has invalid fields")]
    Invalid(FieldErrors),
    #[error("no such newsletter")]
    NotFound,
    #[error("too many test copies; wait a minute")]
    TooMany,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the send request has invalid fields")]
    Invalid(FieldErrors),
    #[error("no such newsletter")]
    NotFound,
    #[error(
        "the newsletter is {0} (send it again with the same Idempotency-Key to get its state)"
    )]
    NotSendable(String),
    #[error("sending is refused while ENLACE_POSTAL_ADDRESS is unset: bulk-mail law requires the sender's postal address in every newsletter")]
    NoPostalAddress,
    #[error("the newsletter changed meanwhile; try again")]
    ChangedMeanwhile,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Pausing, resuming or cancelling a send.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error("no such newsletter")]
    NotFound,
    #[error("a {status} newsletter cannot be {done}")]
    Refused { status: String, done: &'static str },
    #[error(transparent)]
    Db(#[from] DbError),
}

from_diesel!(
    ListError,
    GetError,
    DraftError,
    DeleteError,
    PreviewError,
    TestError,
    SendError,
    TransitionError
);

/// A UUID as ids are stored (lower case, hyphenated); `None` for anything else.
fn stored_id(raw: &str, hyphenated_only: bool) -> Option<String> {
    if hyphenated_only && raw.len() != 36 {
        return None;
    }
    uuid::Uuid::parse_str(raw).ok().map(|u| u.to_string())
}

async fn find(db: &Db, id: &str) -> Result<Option<Newsletter>, DbError> {
    let id = id.to_owned();
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
    if status
        .as_deref()
        .is_some_and(|s| !store::STATUSES.contains(&s))
    {
        return Err(invalid(
            "status",
            format!("must be one of {}", store::STATUSES.join(", ")),
        ));
    }
    let not_a_cursor = || invalid("cursor", "is not a cursor from this list".into());
    // The cursor is the last id of the previous page; its creation time is read back.
    let cursor = match cursor.as_deref() {
        Some(raw) => Some(stored_id(raw, true).ok_or_else(not_a_cursor)?),
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
                    status.as_deref(),
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
pub async fn get(db: &Db, actor: &Principal, id: String) -> Result<Report, GetError> {
    let with_progress = actor.may_read_contacts();
    let now = db::now();
    db.run(move |conn| {
        read_snapshot(conn, |conn| -> Result<_, GetError> {
            let newsletter = store::find_newsletter(conn, &id)?.ok_or(GetError::NotFound)?;
            let progress = if with_progress {
                Some(deliveries::progress(
                    conn,
                    &id,
                    now - Duration::seconds(30),
                )?)
            } else {
                None
            };
            Ok(Report {
                newsletter,
                progress,
                read_at: now,
            })
        })
    })
    .await
}

fn mailbox(errors: &mut FieldErrors, field: &str, raw: Option<String>) -> Option<String> {
    let raw = raw?.trim().to_owned();
    match raw.parse::<Mailbox>() {
        Ok(m) if raw.len() <= 320 && !raw.chars().any(char::is_control) => Some(m.to_string()),
        _ => {
            errors.add(field, "must be an address like `Name <news@example.org>`");
            None
        }
    }
}

/// Applies staff input to a newsletter row (a new one, or a draft being changed).
fn apply(errors: &mut FieldErrors, n: &mut Newsletter, input: DraftInput) {
    // The audience is a segment or a filter: naming one replaces the other the draft had.
    let sets_segment = matches!(input.segment_id, Some(Some(_)));
    let sets_filter = matches!(input.filter, Some(Some(_)));
    if sets_segment && !sets_filter {
        n.filter = None;
    }
    if sets_filter && !sets_segment {
        n.segment_id = None;
    }
    if let Some(subject) = input.subject {
        n.subject = subject.trim().to_owned();
    }
    if let Some(html) = input.html {
        n.html = html;
    }
    if let Some(text) = input.text {
        n.text = text;
    }
    if let Some(variants) = input.variants {
        n.variants =
            serde_json::to_string(&variants.unwrap_or_default()).unwrap_or_else(|_| "{}".into());
    }
    if let Some(from) = input.from {
        n.from_address = mailbox(errors, "from", from);
    }
    if let Some(reply_to) = input.reply_to {
        n.reply_to = mailbox(errors, "reply_to", reply_to);
    }
    if let Some(segment_id) = input.segment_id {
        n.segment_id = segment_id.and_then(|raw| {
            let id = stored_id(&raw, true);
            if id.is_none() {
                errors.add("segment_id", "no such segment");
            }
            id
        });
    }
    if let Some(filter) = input.filter {
        n.filter = filter.map(|f| f.to_string());
    }
}

/// What is wrong with a draft's content (sizes, required parts), before its templates are read.
fn content_errors(n: &Newsletter) -> anyhow::Result<FieldErrors> {
    let mut errors = FieldErrors::new();
    let content = content_of(n)?;
    check_content(&mut errors, "", &content.default);
    for (language, c) in &content.variants {
        check_content(&mut errors, &format!("variants.{}.", language.as_str()), c);
    }
    Ok(errors)
}

/// The content's problems, its templates compiled apart from the database (see `compile_apart`)
/// when the content itself is in order. Call before the write transaction.
async fn draft_content_errors(
    db: &Db,
    rendering: Rendering<'_>,
    n: &Newsletter,
) -> Result<FieldErrors, DraftError> {
    let errors = content_errors(n)?;
    if !errors.is_empty() {
        return Ok(errors);
    }
    Ok(
        match compile_apart::<DraftError>(db, rendering, content_of(n)?).await? {
            Ok(_) => FieldErrors::new(),
            Err(errors) => errors,
        },
    )
}

/// Checks a draft as a whole (after the input is applied): addresses and target, with the
/// content's problems found beforehand by `draft_content_errors`.
fn check_draft(
    conn: &mut AnyConnection,
    dkim_domain: Option<&str>,
    n: &Newsletter,
    content_errors: FieldErrors,
) -> Result<(), DraftError> {
    let mut errors = content_errors;
    // Receivers check that the DKIM signature's domain matches the From domain (DMARC).
    if let (Some(signing), Some(from)) = (dkim_domain, &n.from_address) {
        let domain = from
            .parse::<Mailbox>()
            .map(|m| m.email.domain().to_ascii_lowercase())
            .unwrap_or_default();
        if domain != signing && !domain.ends_with(&format!(".{signing}")) {
            errors.add("from", format!(
                "must be an address at {signing} (the DKIM signing domain), or receivers will fail DMARC"
            ));
        }
    }
    if n.segment_id.is_some() && n.filter.is_some() {
        errors.add("segment_id", "give either segment_id or filter, not both");
    }
    if let Some(segment_id) = &n.segment_id {
        if db::segments::find_segment(conn, segment_id)?.is_none() {
            errors.add("segment_id", "no such segment");
        }
    }
    if let Some(raw) = &n.filter {
        let value: Value = serde_json::from_str(raw).map_err(anyhow::Error::from)?;
        match SegmentFilter::parse(&value) {
            Ok(filter) => {
                if let Err(e) = super::segments::check_filter(conn, &filter)? {
                    errors.extend(e);
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    errors.into_result().map_err(DraftError::Invalid)
}

/// Compiles content against the fields declared now, away from the database: the declarations
/// are read on a pooled connection given back at once, and the templates are compiled (which
/// renders each on sample data) on a blocking thread that holds no connection and no transaction,
/// at most `render_slots` at a time. A slow template then delays only the request that saved it.
async fn compile_apart<E>(
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

fn new_draft() -> Newsletter {
    let now = db::now();
    Newsletter {
        id: db::new_id(),
        subject: String::new(),
        html: String::new(),
        text: None,
        variants: "{}".into(),
        from_address: None,
        reply_to: None,
        segment_id: None,
        filter: None,
        status: store::DRAFT.into(),
        send_at: None,
        send_key: None,
        started_at: None,
        finished_at: None,
        created_at: now,
        updated_at: now,
        pause_reason: None,
    }
}

/// A new draft: a subject and HTML are required; its templates must compile against the fields
/// declared now, and its From must suit DKIM signing.
pub async fn create(
    db: &Db,
    rendering: Rendering<'_>,
    actor: &Principal,
    ip: Option<&str>,
    input: DraftInput,
) -> Result<Newsletter, DraftError> {
    let mut errors = FieldErrors::new();
    if input.subject.is_none() {
        errors.add("subject", "is required");
    }
    if input.html.is_none() {
        errors.add("html", "is required");
    }
    let mut n = new_draft();
    apply(&mut errors, &mut n, input);
    errors.into_result().map_err(DraftError::Invalid)?;
    let content_errors = draft_content_errors(db, rendering, &n).await?;
    let dkim_domain = rendering.settings.dkim_signing_domain();
    let stored = n.clone();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<(), DraftError> {
        check_draft(conn, dkim_domain.as_deref(), &stored, content_errors)?;
        store::insert_newsletter(conn, &stored)?;
        actor.audit(
            conn,
            ip.as_deref(),
            "newsletter.create",
            "newsletter",
            Some(&stored.id),
        )?;
        Ok(())
    })
    .await?;
    Ok(n)
}

/// A change to a draft. It is applied and its templates checked outside any transaction; the
/// write then goes through only if nobody changed the draft meanwhile.
pub async fn update(
    db: &Db,
    rendering: Rendering<'_>,
    actor: &Principal,
    ip: Option<&str>,
    id: String,
    input: DraftInput,
) -> Result<Newsletter, DraftError> {
    let read = find(db, &id).await?.ok_or(DraftError::NotFound)?;
    if read.status != store::DRAFT {
        return Err(DraftError::NotADraft(read.status));
    }
    let read_at = read.updated_at;
    let mut n = read;
    let mut errors = FieldErrors::new();
    apply(&mut errors, &mut n, input);
    errors.into_result().map_err(DraftError::Invalid)?;
    let content_errors = draft_content_errors(db, rendering, &n).await?;
    let dkim_domain = rendering.settings.dkim_signing_domain();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<Newsletter, DraftError> {
        let current = store::find_newsletter(conn, &id)?.ok_or(DraftError::NotFound)?;
        if current.status != store::DRAFT {
            return Err(DraftError::NotADraft(current.status));
        }
        if current.updated_at != read_at {
            return Err(DraftError::ChangedMeanwhile);
        }
        check_draft(conn, dkim_domain.as_deref(), &n, content_errors)?;
        n.updated_at = db::now().max(n.updated_at);
        let changes = NewsletterChanges {
            subject: Some(n.subject.clone()),
            html: Some(n.html.clone()),
            text: Some(n.text.clone()),
            variants: Some(n.variants.clone()),
            from_address: Some(n.from_address.clone()),
            reply_to: Some(n.reply_to.clone()),
            segment_id: Some(n.segment_id.clone()),
            filter: Some(n.filter.clone()),
            updated_at: Some(n.updated_at),
        };
        if !store::update_draft(conn, &n.id, &changes)? {
            return Err(DraftError::NoLongerADraft);
        }
        actor.audit(
            conn,
            ip.as_deref(),
            "newsletter.update",
            "newsletter",
            Some(&n.id),
        )?;
        Ok(n)
    })
    .await
}

/// Deletes a draft (or a send cancelled before it started); anything else is kept as the record
/// of what was sent.
pub async fn delete(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: String,
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

/// Links for previews and tests: they lead to a page saying the link is not valid, so a click
/// on a preview can never unsubscribe anyone.
fn inert_urls(settings: &Settings) -> (String, String) {
    let base = settings.base_url();
    (
        format!("{base}/unsubscribe/preview"),
        format!("{base}/preferences/preview"),
    )
}

/// A person's data to render a preview or test copy with.
struct Person<'a> {
    name: Option<&'a str>,
    email: &'a str,
    language: Language,
    attributes: &'a Value,
}

/// Renders a preview or test message with inert links; a template that fails is a problem with
/// the draft's `html`.
fn render_inert(
    templates: &Templates,
    (unsubscribe_url, preferences_url): &(String, String),
    newsletter_id: &str,
    compiled: &CompiledNewsletter,
    person: Person<'_>,
) -> Result<Rendered, FieldErrors> {
    compiled
        .render(
            &MergeData {
                name: person.name,
                email: person.email,
                language: person.language,
                attributes: person.attributes,
                unsubscribe_url,
                preferences_url,
            },
            templates,
        )
        .map_err(|e| {
            tracing::warn!(newsletter_id, error = %e, "a newsletter preview or test could not be rendered");
            FieldErrors::one("html", e.to_string())
        })
}

fn parse_language(raw: Option<&str>) -> Result<Option<Language>, FieldErrors> {
    raw.map(Language::parse)
        .transpose()
        .map_err(|m| FieldErrors::one("language", m))
}

/// The message one subscriber (or a sample person) would get; its unsubscribe links are inert.
/// Showing a real subscriber's message takes the right to read contacts.
pub async fn preview(
    db: &Db,
    rendering: Rendering<'_>,
    actor: &Principal,
    id: String,
    input: PreviewInput,
) -> Result<Preview, PreviewError> {
    let language = parse_language(input.language.as_deref()).map_err(PreviewError::Invalid)?;
    if input.subscriber_id.is_some() && !actor.may_read_contacts() {
        return Err(PreviewError::Forbidden);
    }
    let no_such_subscriber =
        || PreviewError::Invalid(FieldErrors::one("subscriber_id", "no such subscriber"));
    let subscriber_id = match input.subscriber_id.as_deref() {
        Some(raw) => Some(stored_id(raw, false).ok_or_else(no_such_subscriber)?),
        None => None,
    };
    let (n, subscriber) = db
        .run(move |conn| {
            read_snapshot(conn, |conn| -> Result<_, PreviewError> {
                let n = store::find_newsletter(conn, &id)?.ok_or(PreviewError::NotFound)?;
                let subscriber = match subscriber_id {
                    Some(sid) => Some(
                        db::subscribers::find_subscriber(conn, &sid)?
                            .ok_or_else(no_such_subscriber)?,
                    ),
                    None => None,
                };
                Ok((n, subscriber))
            })
        })
        .await?;
    let compiled = compile_apart::<PreviewError>(db, rendering, content_of(&n)?)
        .await?
        .map_err(PreviewError::Invalid)?;
    let templates = rendering.templates.clone();
    let links = inert_urls(rendering.settings);
    let default_from = rendering.settings.from.clone();
    let _slot = rendering
        .render_slots
        .acquire()
        .await
        .map_err(anyhow::Error::from)?;
    tokio::task::spawn_blocking(move || -> Result<Preview, PreviewError> {
        let language = language
            .or_else(|| {
                subscriber
                    .as_ref()
                    .and_then(|s| Language::parse(&s.language).ok())
            })
            .unwrap_or_default();
        let attributes: Value = subscriber
            .as_ref()
            .and_then(|s| serde_json::from_str(&s.attributes).ok())
            .unwrap_or_else(|| json!({}));
        let person = Person {
            name: subscriber
                .as_ref()
                .map_or(Some("Ana"), |s| s.name.as_deref()),
            email: subscriber
                .as_ref()
                .map_or("ana@example.org", |s| s.email.as_str()),
            language,
            attributes: &attributes,
        };
        let out = render_inert(&templates, &links, &n.id, &compiled, person)
            .map_err(PreviewError::Invalid)?;
        Ok(Preview {
            language,
            subject: out.subject,
            html: out.html,
            text: out.text,
            from: n.from_address.unwrap_or(default_from),
        })
    })
    .await
    .map_err(anyhow::Error::from)?
}

/// Who a test-send allowance belongs to.
fn limiter_key(actor: &Principal) -> String {
    match actor {
        Principal::Staff { id, .. } => format!("staff:{id}"),
        Principal::ApiKey { id, .. } => format!("key:{id}"),
    }
}

/// Queues the newsletter, marked as a test, to a few staff addresses; answers how many were
/// queued. Each staff member or key has its own allowance, so a key that can write
/// drafts cannot turn test sends into a way to mail anyone at will.
pub async fn send_test(
    db: &Db,
    rendering: Rendering<'_>,
    outbox: TestOutbox<'_>,
    actor: &Principal,
    ip: Option<&str>,
    id: String,
    input: TestInput,
) -> Result<usize, TestError> {
    if input.to.is_empty() || input.to.len() > MAX_TEST_RECIPIENTS {
        return Err(TestError::Invalid(FieldErrors::one(
            "to",
            "give 1 to 10 addresses",
        )));
    }
    let mut to = Vec::new();
    for (i, raw) in input.to.iter().enumerate() {
        let email = Email::parse(raw)
            .map_err(|m| TestError::Invalid(FieldErrors::one(format!("to[{i}]"), m)))?;
        to.push(email.as_str().to_owned());
    }
    let language = parse_language(input.language.as_deref())
        .map_err(TestError::Invalid)?
        .unwrap_or(Language::En);
    let copies = NonZeroU32::new(to.len() as u32).unwrap_or(NonZeroU32::MIN);
    if !matches!(
        outbox.limiter.check_key_n(&limiter_key(actor), copies),
        Ok(Ok(()))
    ) {
        return Err(TestError::TooMany);
    }
    // Read, then compile and render apart from the database; only the queueing is a write.
    let n = find(db, &id).await?.ok_or(TestError::NotFound)?;
    let compiled = compile_apart::<TestError>(db, rendering, content_of(&n)?)
        .await?
        .map_err(TestError::Invalid)?;
    let templates = rendering.templates.clone();
    let links = inert_urls(rendering.settings);
    let slot = rendering
        .render_slots
        .acquire()
        .await
        .map_err(anyhow::Error::from)?;
    let mails = tokio::task::spawn_blocking(move || -> Result<Vec<TestMail>, FieldErrors> {
        let empty = json!({});
        to.iter()
            .map(|address| {
                let person = Person {
                    name: None,
                    email: address,
                    language,
                    attributes: &empty,
                };
                let out = render_inert(&templates, &links, &n.id, &compiled, person)?;
                Ok(TestMail {
                    to: address.clone(),
                    language,
                    subject: format!("[TEST] {}", out.subject),
                    html: out.html,
                    text: out.text,
                    unsubscribe_url: links.0.clone(),
                    from: n.from_address.clone(),
                    reply_to: n.reply_to.clone(),
                })
            })
            .collect()
    })
    .await
    .map_err(anyhow::Error::from)?
    .map_err(TestError::Invalid)?;
    drop(slot);
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    let queued = db
        .transaction(move |conn| -> Result<usize, TestError> {
            let n = store::find_newsletter(conn, &id)?.ok_or(TestError::NotFound)?;
            let now = db::now();
            for mail in &mails {
                crate::jobs::enqueue_test_mail(conn, mail, now)?;
            }
            actor.audit(
                conn,
                ip.as_deref(),
                "newsletter.test",
                "newsletter",
                Some(&n.id),
            )?;
            Ok(mails.len())
        })
        .await?;
    outbox.mail_ready.notify_one();
    Ok(queued)
}

/// When a send asked for at `send_at` starts: now, or a time within the coming year.
fn start_time(
    send_at: Option<DateTime<Utc>>,
    now: NaiveDateTime,
) -> Result<NaiveDateTime, SendError> {
    let Some(at) = send_at else {
        return Ok(now);
    };
    let invalid = |message| SendError::Invalid(FieldErrors::one("send_at", message));
    let at = at.naive_utc();
    if at < now - Duration::minutes(1) {
        return Err(invalid("is in the past; leave it out to send now"));
    }
    if at > now + Duration::days(366) {
        return Err(invalid("must be within a year"));
    }
    Ok(at.max(now))
}

/// Schedules a draft (or an overdue send) to go out at the time asked for, and wakes the engine.
/// The same request again with the same idempotency key changes nothing. Refused while no postal
/// address is configured (bulk-mail law requires it in every newsletter), without an audience, or
/// when the templates no longer compile against the fields declared now.
pub async fn send(
    db: &Db,
    rendering: Rendering<'_>,
    send_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: String,
    input: SendInput,
) -> Result<(), SendError> {
    let now = db::now();
    let send_at = start_time(input.send_at, now)?;
    let key = input.idempotency_key;
    // The templates are checked against the fields declared now (some may have been removed
    // since the draft was saved), apart from the database, before the transaction.
    let stored = find(db, &id).await?.ok_or(SendError::NotFound)?;
    let compiled: Result<CompiledNewsletter, FieldErrors> =
        compile_apart::<SendError>(db, rendering, content_of(&stored)?).await?;
    let postal_address_set = rendering.settings.postal_address.is_some();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<(), SendError> {
        let n = store::find_newsletter(conn, &id)?.ok_or(SendError::NotFound)?;
        // The same request again: leave the send as it stands.
        if key.is_some() && n.send_key == key && n.status != store::DRAFT {
            return Ok(());
        }
        if !matches!(n.status.as_str(), store::DRAFT | store::OVERDUE) {
            return Err(SendError::NotSendable(n.status));
        }
        if !postal_address_set {
            return Err(SendError::NoPostalAddress);
        }
        if n.segment_id.is_none() && n.filter.is_none() {
            return Err(SendError::Invalid(FieldErrors::one(
                "segment_id",
                "the newsletter needs a segment_id or a filter before it is sent",
            )));
        }
        if n.updated_at != stored.updated_at {
            return Err(SendError::ChangedMeanwhile);
        }
        compiled.map_err(SendError::Invalid)?;
        target_filter(conn, &n)
            .map_err(|e| SendError::Invalid(FieldErrors::one("segment_id", e.to_string())))?;
        if !store::schedule(conn, &n.id, send_at, key.as_deref(), now)? {
            return Err(SendError::ChangedMeanwhile);
        }
        actor.audit(
            conn,
            ip.as_deref(),
            "newsletter.send",
            "newsletter",
            Some(&n.id),
        )?;
        Ok(())
    })
    .await?;
    send_ready.notify_one();
    Ok(())
}

/// One staff transition of a send: from one of `from` to `to` (to `CANCELLED`, from any state
/// not yet finished, skipping the deliveries not yet made). Wakes the engine after commit.
async fn transition(
    db: &Db,
    send_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: String,
    (from, to): (&'static [&'static str], &'static str),
    (action, done): (&'static str, &'static str),
) -> Result<(), TransitionError> {
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<(), TransitionError> {
        let n = store::find_newsletter(conn, &id)?.ok_or(TransitionError::NotFound)?;
        let now = db::now();
        let moved = if to == store::CANCELLED {
            store::cancel(conn, &id, now)?
        } else {
            store::transition(conn, &id, from, to, now)?
        };
        if !moved {
            return Err(TransitionError::Refused {
                status: n.status,
                done,
            });
        }
        if to == store::CANCELLED {
            deliveries::skip_cancelled(conn)?;
        }
        let action = format!("newsletter.{action}");
        actor.audit(conn, ip.as_deref(), &action, "newsletter", Some(&id))?;
        Ok(())
    })
    .await?;
    send_ready.notify_one();
    Ok(())
}

/// Pauses a send in progress.
pub async fn pause(
    db: &Db,
    send_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: String,
) -> Result<(), TransitionError> {
    let states = (&[store::SENDING][..], store::PAUSED);
    transition(db, send_ready, actor, ip, id, states, ("pause", "paused")).await
}

/// Resumes a paused send.
pub async fn resume(
    db: &Db,
    send_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: String,
) -> Result<(), TransitionError> {
    let states = (&[store::PAUSED][..], store::SENDING);
    transition(db, send_ready, actor, ip, id, states, ("resume", "resumed")).await
}

/// Cancels a send that has not finished.
pub async fn cancel(
    db: &Db,
    send_ready: &Notify,
    actor: &Principal,
    ip: Option<&str>,
    id: String,
) -> Result<(), TransitionError> {
    let states = (&[][..], store::CANCELLED);
    transition(
        db,
        send_ready,
        actor,
        ip,
        id,
        states,
        ("cancel", "cancelled"),
    )
    .await
}

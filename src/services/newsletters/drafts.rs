//! Drafts: creating one and changing it, each checked as a whole (content, templates compiled
//! against the fields declared now, addresses, audience) before it is written.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use lettre::message::Mailbox;
use serde_json::Value;

use super::{compile_apart, find, stored_id, Rendering};
use crate::auth::Principal;
use crate::db::ids::{NewsletterId, SegmentId};
use crate::db::newsletters::{self as store, Newsletter, NewsletterChanges};
use crate::db::states::NewsletterState;
use crate::db::{self, AnyConnection, Db, DbError};
use crate::domain::{FieldErrors, Language, SegmentFilter};
use crate::email::newsletter::{check_content, Content};
use crate::sending::prepare::content_of;

/// A draft as staff write it; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct DraftInput {
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<Option<String>>,
    pub preheader: Option<Option<String>>,
    /// Count clicks on its links (off unless asked for).
    pub count_clicks: Option<bool>,
    /// Publish it in the public archive once sent (off unless asked for).
    pub archived: Option<bool>,
    pub variants: Option<Option<BTreeMap<Language, Content>>>,
    pub from: Option<Option<String>>,
    pub reply_to: Option<Option<String>>,
    pub segment_id: Option<Option<String>>,
    pub filter: Option<Option<Value>>,
    /// The draft's `updated_at` as the writer last read it: a change made by someone else since
    /// is never overwritten (`ChangedMeanwhile`). `None` changes the draft as it is now.
    pub read_version: Option<NaiveDateTime>,
}

/// Creating or changing a draft.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    #[error("the draft has invalid fields")]
    Invalid(FieldErrors),
    #[error("no such newsletter")]
    NotFound,
    #[error("only drafts can be changed; this newsletter is {0}")]
    NotADraft(NewsletterState),
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

from_diesel!(DraftError);

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
    if let Some(preheader) = input.preheader {
        n.preheader = preheader.map(|p| p.trim().to_owned());
    }
    if let Some(count_clicks) = input.count_clicks {
        n.count_clicks = count_clicks;
    }
    if let Some(archived) = input.archived {
        n.archived = archived;
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
            let id = stored_id(&raw, true).and_then(|id| SegmentId::parse(&id));
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
                if let Err(e) = crate::services::segments::check_filter(conn, &filter)? {
                    errors.extend(e);
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    errors.into_result().map_err(DraftError::Invalid)
}

fn new_draft() -> Newsletter {
    let now = db::now();
    Newsletter {
        id: NewsletterId::new(),
        subject: String::new(),
        html: String::new(),
        text: None,
        variants: "{}".into(),
        from_address: None,
        reply_to: None,
        segment_id: None,
        filter: None,
        status: NewsletterState::Draft,
        send_at: None,
        send_key: None,
        started_at: None,
        finished_at: None,
        created_at: now,
        updated_at: now,
        pause_reason: None,
        preheader: None,
        count_clicks: false,
        archived: false,
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
    insert_draft(db, rendering, actor, ip, n, "newsletter.create").await
}

/// Checks a new draft as a whole and stores it, recording `action` in the audit log.
async fn insert_draft(
    db: &Db,
    rendering: Rendering<'_>,
    actor: &Principal,
    ip: Option<&str>,
    n: Newsletter,
    action: &'static str,
) -> Result<Newsletter, DraftError> {
    let content_errors = draft_content_errors(db, rendering, &n).await?;
    let dkim_domain = rendering.settings.dkim_signing_domain();
    let stored = n.clone();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<(), DraftError> {
        check_draft(conn, dkim_domain.as_deref(), &stored, content_errors)?;
        store::insert_newsletter(conn, &stored)?;
        let id = Some(stored.id.as_str());
        actor.audit(conn, ip.as_deref(), action, "newsletter", id)?;
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
    id: NewsletterId,
    input: DraftInput,
) -> Result<Newsletter, DraftError> {
    let read = find(db, &id).await?.ok_or(DraftError::NotFound)?;
    if read.status != NewsletterState::Draft {
        return Err(DraftError::NotADraft(read.status));
    }
    let read_at = read.updated_at;
    if input.read_version.is_some_and(|v| v != read_at) {
        return Err(DraftError::ChangedMeanwhile);
    }
    let mut n = read;
    let mut errors = FieldErrors::new();
    apply(&mut errors, &mut n, input);
    errors.into_result().map_err(DraftError::Invalid)?;
    let content_errors = draft_content_errors(db, rendering, &n).await?;
    let dkim_domain = rendering.settings.dkim_signing_domain();
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<Newsletter, DraftError> {
        let current = store::find_newsletter(conn, &id)?.ok_or(DraftError::NotFound)?;
        if current.status != NewsletterState::Draft {
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
            preheader: Some(n.preheader.clone()),
            count_clicks: Some(n.count_clicks),
            archived: Some(n.archived),
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

/// A new draft with the content, addresses and audience of newsletter `id` (any state): the way
/// to send a past newsletter again, or to start from it. Checked as any new draft is (templates
/// against the fields declared now, the From against DKIM, the segment still there).
pub async fn duplicate(
    db: &Db,
    rendering: Rendering<'_>,
    actor: &Principal,
    ip: Option<&str>,
    id: NewsletterId,
) -> Result<Newsletter, DraftError> {
    let source = find(db, &id).await?.ok_or(DraftError::NotFound)?;
    let mut n = new_draft();
    n.subject = source.subject;
    n.html = source.html;
    n.text = source.text;
    n.preheader = source.preheader;
    n.count_clicks = source.count_clicks;
    n.archived = source.archived;
    n.variants = source.variants;
    n.from_address = source.from_address;
    n.reply_to = source.reply_to;
    n.segment_id = source.segment_id;
    n.filter = source.filter;
    insert_draft(db, rendering, actor, ip, n, "newsletter.duplicate").await
}

//! Newsletter drafts: content in one or two languages, a target, previews and test sends.
//! Sending them (and pausing, resuming, cancelling) is in `sends.rs`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use lettre::message::Mailbox;
use serde::Deserialize;
use serde_json::{json, Value};

use super::HandlerResult;
use crate::auth::{Authorized, ReadNewsletters, WriteNewsletters};
use crate::db::deliveries::{self, Progress};
use crate::db::newsletters::{self as store, Newsletter, NewsletterChanges};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::{Email, Language, SegmentFilter};
use crate::email::newsletter::{
    check_content, CompiledNewsletter, Content, MergeData, NewsletterContent,
};
use crate::error::{ApiError, FieldErrors};
use crate::sending::prepare::content_of;
use crate::startup::AppState;

/// Largest draft request: content in up to three versions, HTML and text each up to 512 KiB.
const MAX_DRAFT_BYTES: usize = 4 * 1024 * 1024;

/// Test sends per request.
const MAX_TEST_RECIPIENTS: usize = 10;

fn time(t: Option<NaiveDateTime>) -> Value {
    t.map(|t| Value::from(t.and_utc().to_rfc3339()))
        .unwrap_or(Value::Null)
}

/// The progress of a send: counts by state, the rate over the last 30 s, and the time left.
pub fn progress_view(p: &Progress, newsletter: &Newsletter, now: NaiveDateTime) -> Value {
    let window = newsletter
        .started_at
        .map(|s| (now - s).num_milliseconds().clamp(1, 30_000) as f64 / 1000.0)
        .unwrap_or(30.0);
    let per_second = if newsletter.status == store::SENDING {
        p.recent as f64 / window
    } else {
        0.0
    };
    let eta = (per_second > 0.0).then(|| (p.pending as f64 / per_second).ceil() as i64);
    json!({
        "total": p.total, "sent": p.sent, "failed": p.failed, "skipped": p.skipped,
        "pending": p.pending, "per_second": (per_second * 10.0).round() / 10.0, "eta_seconds": eta,
    })
}

pub fn view(n: &Newsletter, progress: Option<Value>) -> Value {
    let mut v = json!({
        "id": n.id,
        "subject": n.subject,
        "html": n.html,
        "text": n.text,
        "variants": serde_json::from_str::<Value>(&n.variants).unwrap_or_else(|_| json!({})),
        "from": n.from_address,
        "reply_to": n.reply_to,
        "segment_id": n.segment_id,
        "filter": n.filter.as_deref().and_then(|f| serde_json::from_str::<Value>(f).ok()),
        "status": n.status,
        "pause_reason": n.pause_reason,
        "send_at": time(n.send_at),
        "started_at": time(n.started_at),
        "finished_at": time(n.finished_at),
        "created_at": n.created_at.and_utc().to_rfc3339(),
        "updated_at": n.updated_at.and_utc().to_rfc3339(),
    });
    if let Some(progress) = progress {
        v["progress"] = progress;
    }
    v
}

/// A newsletter id from the path: anything but a UUID cannot exist.
pub fn path_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound)
}

/// Loads a newsletter with its progress when `with_progress`. Progress counts people (how many
/// a filter reached, and what became of them), so it goes only to callers who may read
/// contacts: see `Principal::may_read_contacts`.
pub async fn load_view(state: &AppState, id: String, with_progress: bool) -> HandlerResult {
    let now = db::now();
    let found = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            let Some(n) = store::find_newsletter(conn, &id)? else {
                return Ok(None);
            };
            let p = if with_progress {
                Some(deliveries::progress(
                    conn,
                    &id,
                    now - chrono::Duration::seconds(30),
                )?)
            } else {
                None
            };
            Ok(Some((n, p)))
        })
        .await?;
    let (n, p) = found.ok_or(ApiError::NotFound)?;
    let progress = p.map(|p| progress_view(&p, &n, now));
    Ok(HttpResponse::Ok().json(view(&n, progress)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_newsletters(
    _auth: Authorized<ReadNewsletters>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let q = query.map_err(ApiError::from_extractor)?.into_inner();
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
    if q.status
        .as_deref()
        .is_some_and(|s| !store::STATUSES.contains(&s))
    {
        return Err(ApiError::field(
            "status",
            format!("must be one of {}", store::STATUSES.join(", ")),
        ));
    }
    // The cursor is the last id of the previous page; its creation time is read back.
    let cursor = match q.cursor.as_deref() {
        Some(raw) => Some(
            super::hyphenated_uuid(raw)
                .ok_or_else(|| ApiError::field("cursor", "is not a cursor from this list"))?,
        ),
        None => None,
    };
    let page = state
        .db
        .run(move |conn| -> Result<_, DbError> {
            let before = match cursor {
                Some(id) => match store::find_newsletter(conn, &id)? {
                    Some(n) => Some((n.created_at, n.id)),
                    None => return Ok(None),
                },
                None => None,
            };
            Ok(Some(store::list_newsletters(
                conn,
                q.status.as_deref(),
                before,
                limit + 1,
            )?))
        })
        .await?
        .ok_or_else(|| ApiError::field("cursor", "is not a cursor from this list"))?;
    let more = page.len() as i64 > limit;
    let items: Vec<Value> = page
        .iter()
        .take(limit as usize)
        .map(|n| {
            json!({
                "id": n.id, "subject": n.subject, "status": n.status, "pause_reason": n.pause_reason,
                "segment_id": n.segment_id,
                "send_at": time(n.send_at), "started_at": time(n.started_at),
                "finished_at": time(n.finished_at), "created_at": n.created_at.and_utc().to_rfc3339(),
                "updated_at": n.updated_at.and_utc().to_rfc3339(),
            })
        })
        .collect();
    let next = more
        .then(|| items.last().map(|i| i["id"].clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({ "data": items, "next_cursor": next })))
}

pub async fn get_newsletter(
    auth: Authorized<ReadNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    load_view(&state, path_id(&id)?, auth.principal.may_read_contacts()).await
}

/// A draft as written in a request; every field optional for PATCH.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DraftBody {
    subject: Option<String>,
    html: Option<String>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    text: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    variants: Option<Option<BTreeMap<Language, Content>>>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    from: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    reply_to: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    segment_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::json::nullable")]
    filter: Option<Option<Value>>,
}

fn mailbox(errors: &mut FieldErrors, field: &str, raw: Option<String>) -> Option<String> {
    let raw = raw?.trim().to_owned();
    match raw.parse::<Mailbox>() {
        Ok(m) if raw.len() <= 320 && !raw.chars().any(char::is_control) => Some(m.to_string()),
        _ => {
            errors
                .entry(field.into())
                .or_default()
                .push("must be an address like `Name <news@example.org>`".into());
            None
        }
    }
}

/// What is wrong with a draft's content (sizes, required parts), before its templates are read.
fn content_errors(n: &Newsletter) -> Result<FieldErrors, ApiError> {
    let mut errors = FieldErrors::new();
    let content = content_of(n).map_err(ApiError::Internal)?;
    check_content(&mut errors, "", &content.default);
    for (language, c) in &content.variants {
        check_content(&mut errors, &format!("variants.{}.", language.as_str()), c);
    }
    Ok(errors)
}

/// The content's problems, its templates compiled apart from the database (see `compile_apart`)
/// when the content itself is in order. Call before the write transaction.
async fn draft_content_errors(state: &AppState, n: &Newsletter) -> Result<FieldErrors, ApiError> {
    let errors = content_errors(n)?;
    if !errors.is_empty() {
        return Ok(errors);
    }
    let content = content_of(n).map_err(ApiError::Internal)?;
    Ok(match compile_apart(state, content).await? {
        Ok(_) => FieldErrors::new(),
        Err(errors) => errors,
    })
}

/// Checks a draft as a whole (after a PATCH is applied): addresses and target, with the content's
/// problems found beforehand by `draft_content_errors`.
fn check_draft(
    conn: &mut AnyConnection,
    state: &AppState,
    n: &Newsletter,
    content_errors: FieldErrors,
) -> Result<(), ApiError> {
    let mut errors = content_errors;
    // Receivers check that the DKIM signature's domain matches the From domain (DMARC).
    if let (Some(signing), Some(from)) = (state.settings.dkim_signing_domain(), &n.from_address) {
        let domain = from
            .parse::<Mailbox>()
            .map(|m| m.email.domain().to_ascii_lowercase())
            .unwrap_or_default();
        if domain != signing && !domain.ends_with(&format!(".{signing}")) {
            errors.entry("from".into()).or_default().push(format!(
                "must be an address at {signing} (the DKIM signing domain), or receivers will fail DMARC"
            ));
        }
    }
    if n.segment_id.is_some() && n.filter.is_some() {
        errors
            .entry("segment_id".into())
            .or_default()
            .push("give either segment_id or filter, not both".into());
    }
    if let Some(segment_id) = &n.segment_id {
        if db::segments::find_segment(conn, segment_id)?.is_none() {
            errors
                .entry("segment_id".into())
                .or_default()
                .push("no such segment".into());
        }
    }
    if let Some(raw) = &n.filter {
        let value: Value = serde_json::from_str(raw).map_err(|e| ApiError::Internal(e.into()))?;
        match SegmentFilter::parse(&value) {
            Ok(filter) => {
                let fields = db::interests::list_field_declarations(conn)?;
                let interests: Vec<String> = db::interests::list_interests(conn)?
                    .into_iter()
                    .map(|i| i.slug)
                    .collect();
                filter
                    .check(&fields, &interests)
                    .map_err(|e| errors.extend(e))
                    .ok();
            }
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Compiles content against the fields declared now, away from the database: the declarations
/// are read on a pooled connection given back at once, and the templates are compiled (which
/// renders each on sample data) on a blocking thread that holds no connection and no transaction,
/// at most `render_slots` at a time. A slow template then delays only the request that saved it.
pub async fn compile_apart(
    state: &AppState,
    content: NewsletterContent,
) -> Result<Result<CompiledNewsletter, FieldErrors>, ApiError> {
    let declared: Vec<String> = state
        .db
        .run(|conn| db::interests::list_field_declarations(conn).map_err(DbError::from))
        .await?
        .into_iter()
        .map(|f| f.key)
        .collect();
    let _slot = state
        .render_slots
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let (org, postal) = (
        state.settings.org_name.clone(),
        state.settings.postal_address.clone(),
    );
    tokio::task::spawn_blocking(move || {
        CompiledNewsletter::compile(&content, &declared, &org, postal.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))
}

/// Applies a request body to a newsletter row (a new one, or a draft being changed).
fn apply(errors: &mut FieldErrors, n: &mut Newsletter, body: DraftBody) {
    // The audience is a segment or a filter: naming one replaces the other the draft had.
    let sets_segment = matches!(body.segment_id, Some(Some(_)));
    let sets_filter = matches!(body.filter, Some(Some(_)));
    if sets_segment && !sets_filter {
        n.filter = None;
    }
    if sets_filter && !sets_segment {
        n.segment_id = None;
    }
    if let Some(subject) = body.subject {
        n.subject = subject.trim().to_owned();
    }
    if let Some(html) = body.html {
        n.html = html;
    }
    if let Some(text) = body.text {
        n.text = text;
    }
    if let Some(variants) = body.variants {
        n.variants =
            serde_json::to_string(&variants.unwrap_or_default()).unwrap_or_else(|_| "{}".into());
    }
    if let Some(from) = body.from {
        n.from_address = mailbox(errors, "from", from);
    }
    if let Some(reply_to) = body.reply_to {
        n.reply_to = mailbox(errors, "reply_to", reply_to);
    }
    if let Some(segment_id) = body.segment_id {
        n.segment_id = match segment_id {
            Some(raw) => match super::hyphenated_uuid(&raw) {
                Some(id) => Some(id),
                None => {
                    errors
                        .entry("segment_id".into())
                        .or_default()
                        .push("no such segment".into());
                    None
                }
            },
            None => None,
        };
    }
    if let Some(filter) = body.filter {
        n.filter = filter.map(|f| f.to_string());
    }
}

pub async fn create_newsletter(
    auth: Authorized<WriteNewsletters>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HandlerResult {
    let body: DraftBody = super::large_json(&req, payload, MAX_DRAFT_BYTES).await?;
    let mut errors = FieldErrors::new();
    if body.subject.is_none() {
        errors
            .entry("subject".into())
            .or_default()
            .push("is required".into());
    }
    if body.html.is_none() {
        errors
            .entry("html".into())
            .or_default()
            .push("is required".into());
    }
    let now = db::now();
    let mut n = Newsletter {
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
    };
    apply(&mut errors, &mut n, body);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let content_errors = draft_content_errors(&state, &n).await?;
    let state2 = state.clone();
    let stored = n.clone();
    state
        .db
        .transaction(move |conn| -> Result<(), ApiError> {
            check_draft(conn, &state2, &stored, content_errors)?;
            store::insert_newsletter(conn, &stored)?;
            auth.audit(conn, "newsletter.create", "newsletter", Some(&stored.id))?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::Created().json(view(&n, None)))
}

pub async fn update_newsletter(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let body: DraftBody = super::large_json(&req, payload, MAX_DRAFT_BYTES).await?;
    // The change is applied and its templates checked outside any transaction; the write then
    // goes through only if nobody changed the draft meanwhile (else 409: send it again).
    let lookup = id.clone();
    let read = state
        .db
        .run(move |conn| store::find_newsletter(conn, &lookup).map_err(DbError::from))
        .await?
        .ok_or(ApiError::NotFound)?;
    let not_a_draft = |status: &str| {
        ApiError::Conflict(format!(
            "only drafts can be changed; this newsletter is {status}"
        ))
    };
    if read.status != store::DRAFT {
        return Err(not_a_draft(&read.status));
    }
    let read_at = read.updated_at;
    let mut n = read;
    let mut errors = FieldErrors::new();
    apply(&mut errors, &mut n, body);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let content_errors = draft_content_errors(&state, &n).await?;
    let state2 = state.clone();
    let updated = state
        .db
        .transaction(move |conn| -> Result<Newsletter, ApiError> {
            let current = store::find_newsletter(conn, &id)?.ok_or(ApiError::NotFound)?;
            if current.status != store::DRAFT {
                return Err(not_a_draft(&current.status));
            }
            if current.updated_at != read_at {
                return Err(ApiError::Conflict(
                    "the draft was changed by someone else meanwhile; read it again and send your change again".into(),
                ));
            }
            check_draft(conn, &state2, &n, content_errors)?;
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
                return Err(ApiError::Conflict(
                    "the newsletter is no longer a draft".into(),
                ));
            }
            auth.audit(conn, "newsletter.update", "newsletter", Some(&n.id))?;
            Ok(n)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view(&updated, None)))
}

pub async fn delete_newsletter(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    state
        .db
        .transaction(move |conn| -> Result<(), ApiError> {
            let n = store::find_newsletter(conn, &id)?.ok_or(ApiError::NotFound)?;
            if !store::delete_unsent(conn, &id)? {
                return Err(ApiError::Conflict(format!(
                    "a {} newsletter is kept as the record of what was sent; only drafts (or sends cancelled before they started) can be deleted",
                    n.status
                )));
            }
            auth.audit(conn, "newsletter.delete", "newsletter", Some(&id))?;
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Links for previews and tests: they lead to a page saying the link is not valid, so a click
/// on a preview can never unsubscribe anyone.
fn inert_urls(state: &AppState) -> (String, String) {
    let base = state.settings.base_url();
    (
        format!("{base}/unsubscribe/preview"),
        format!("{base}/preferences/preview"),
    )
}

/// Renders a preview or test message with inert links.
fn render_inert(
    state: &AppState,
    newsletter_id: &str,
    compiled: &CompiledNewsletter,
    name: Option<&str>,
    email: &str,
    language: Language,
    attributes: &Value,
) -> Result<crate::email::newsletter::Rendered, ApiError> {
    let (unsubscribe_url, preferences_url) = inert_urls(state);
    compiled
        .render(
            &MergeData {
                name,
                email,
                language,
                attributes,
                unsubscribe_url: &unsubscribe_url,
                preferences_url: &preferences_url,
            },
            &state.templates,
        )
        .map_err(|e| {
            tracing::warn!(newsletter_id, error = %e, "a newsletter preview or test could not be rendered");
            ApiError::field("html", e.to_string())
        })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    subscriber_id: Option<String>,
    language: Option<String>,
}

/// The message one subscriber (or a sample person) would get; unsubscribe links are inert.
pub async fn preview_newsletter(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<String>,
    body: Result<super::json::Json<PreviewBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    let language = match body.language.as_deref() {
        Some(raw) => Some(Language::parse(raw).map_err(|m| ApiError::field("language", m))?),
        None => None,
    };
    // Rendering for a real person shows their data: that takes the right to read contacts.
    if body.subscriber_id.is_some() && !auth.principal.may_read_contacts() {
        return Err(ApiError::Forbidden);
    }
    let subscriber_id = match body.subscriber_id.as_deref() {
        Some(raw) => {
            Some(path_id(raw).map_err(|_| ApiError::field("subscriber_id", "no such subscriber"))?)
        }
        None => None,
    };
    let (n, subscriber) = state
        .db
        .run(move |conn| -> Result<_, ApiError> {
            let n = store::find_newsletter(conn, &id)?.ok_or(ApiError::NotFound)?;
            let subscriber = match subscriber_id {
                Some(sid) => Some(
                    db::subscribers::find_subscriber(conn, &sid)?
                        .ok_or_else(|| ApiError::field("subscriber_id", "no such subscriber"))?,
                ),
                None => None,
            };
            Ok((n, subscriber))
        })
        .await?;
    let content = content_of(&n).map_err(ApiError::Internal)?;
    let compiled = compile_apart(&state, content)
        .await?
        .map_err(ApiError::Validation)?;
    let state2 = state.clone();
    let _slot = state
        .render_slots
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let rendered = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
            let language = language
                .or_else(|| subscriber.as_ref().and_then(|s| Language::parse(&s.language).ok()))
                .unwrap_or_default();
            let attributes: Value = subscriber
                .as_ref()
                .and_then(|s| serde_json::from_str(&s.attributes).ok())
                .unwrap_or_else(|| json!({}));
            let out = render_inert(
                &state2,
                &n.id,
                &compiled,
                subscriber.as_ref().map_or(Some("Ana"), |s| s.name.as_deref()),
                subscriber.as_ref().map_or("ana@example.org", |s| s.email.as_str()),
                language,
                &attributes,
            )?;
            Ok(json!({
                "language": language.as_str(), "subject": out.subject, "html": out.html, "text": out.text,
                "from": n.from_address.unwrap_or_else(|| state2.settings.from.clone()),
            }))
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    Ok(HttpResponse::Ok().json(rendered))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    to: Vec<String>,
    language: Option<String>,
}

/// Queues the newsletter, marked as a test, to a few staff addresses.
pub async fn test_newsletter(
    auth: Authorized<WriteNewsletters>,
    id: web::Path<String>,
    body: Result<super::json::Json<TestBody>, actix_web::Error>,
    state: web::Data<AppState>,
) -> HandlerResult {
    let id = path_id(&id)?;
    let body = body.map_err(ApiError::from_extractor)?.into_inner();
    if body.to.is_empty() || body.to.len() > MAX_TEST_RECIPIENTS {
        return Err(ApiError::field("to", "give 1 to 10 addresses"));
    }
    let mut to = Vec::new();
    for (i, raw) in body.to.iter().enumerate() {
        let email = Email::parse(raw).map_err(|m| ApiError::field(&format!("to[{i}]"), m))?;
        to.push(email.as_str().to_owned());
    }
    let language = match body.language.as_deref() {
        Some(raw) => Language::parse(raw).map_err(|m| ApiError::field("language", m))?,
        None => Language::En,
    };
    // A key that can write drafts cannot turn test sends into a way to mail anyone at will.
    let who = match &auth.principal {
        crate::auth::Principal::Staff { id, .. } => format!("staff:{id}"),
        crate::auth::Principal::ApiKey { id, .. } => format!("key:{id}"),
    };
    let n = std::num::NonZeroU32::new(to.len() as u32).unwrap_or(std::num::NonZeroU32::MIN);
    if !matches!(state.test_send_limiter.check_key_n(&who, n), Ok(Ok(()))) {
        return Err(ApiError::TooManyRequests {
            retry_after_secs: 60,
        });
    }
    // Read, then compile and render apart from the database; only the queueing is a write.
    let lookup = id.clone();
    let n = state
        .db
        .run(move |conn| store::find_newsletter(conn, &lookup).map_err(DbError::from))
        .await?
        .ok_or(ApiError::NotFound)?;
    let content = content_of(&n).map_err(ApiError::Internal)?;
    let compiled = compile_apart(&state, content)
        .await?
        .map_err(ApiError::Validation)?;
    let _slot = state
        .render_slots
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let state2 = state.clone();
    let mails =
        tokio::task::spawn_blocking(move || -> Result<Vec<crate::jobs::TestMail>, ApiError> {
            let empty = json!({});
            to.iter()
                .map(|address| {
                    let out =
                        render_inert(&state2, &n.id, &compiled, None, address, language, &empty)?;
                    Ok(crate::jobs::TestMail {
                        to: address.clone(),
                        language,
                        subject: format!("[TEST] {}", out.subject),
                        html: out.html,
                        text: out.text,
                        unsubscribe_url: inert_urls(&state2).0,
                        from: n.from_address.clone(),
                        reply_to: n.reply_to.clone(),
                    })
                })
                .collect()
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    drop(_slot);
    let queued = state
        .db
        .transaction(move |conn| -> Result<usize, ApiError> {
            let n = store::find_newsletter(conn, &id)?.ok_or(ApiError::NotFound)?;
            let now = db::now();
            for mail in &mails {
                crate::jobs::enqueue_test_mail(conn, mail, now)?;
            }
            auth.audit(conn, "newsletter.test", "newsletter", Some(&n.id))?;
            Ok(mails.len())
        })
        .await?;
    state.mail_ready.notify_one();
    Ok(HttpResponse::Accepted().json(json!({ "queued": queued })))
}

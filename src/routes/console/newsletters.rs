//! Newsletters: the list by state, a newsletter's page (its content in both languages, its
//! audience and, while it goes out, its progress updating live), the editor (English and Spanish
//! side by side; a colleague's newer save is never overwritten), duplicating a past newsletter
//! as a new draft, deleting a draft, and pausing, resuming or cancelling a send — each through
//! the same use cases as the API (`services::newsletters`).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use minijinja::{context, Value};
use serde::Deserialize;

use super::frame::NoticeQuery;
use super::frame::{Console, Posted, Signed};
use crate::auth::{ReadNewsletters, SendNewsletters, WriteNewsletters};
use crate::db::ids::NewsletterId;
use crate::db::newsletters::Newsletter;
use crate::db::states::NewsletterState;
use crate::domain::{FieldErrors, Language};
use crate::email::newsletter::Content;
use crate::routes::newsletters::rendering;
use crate::services::newsletters::{
    self as service, AudienceError, DeleteError, DraftError, DraftInput, GetError, ListError,
    ListInput, PreviewError, PreviewInput, SendError, SendInput, TestError, TestInput, TestOutbox,
    TransitionError,
};
use crate::services::segments;
use crate::state::AppState;

/// Newsletters per page of the list.
const PAGE: i64 = 25;

/// The version a form carries: the draft's `updated_at` as stored.
const VERSION_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

/// A notice of this area named by the query (`?notice=draft_saved`), if it is one.
fn notice(raw: Option<&str>) -> Option<String> {
    const KNOWN: &[&str] = &[
        "draft_created",
        "draft_saved",
        "draft_deleted",
        "duplicated",
        "paused",
        "resumed",
        "cancelled",
        "sending",
        "scheduled",
        "test_sent",
        "archived",
        "withdrawn",
    ];
    raw.filter(|n| KNOWN.contains(n)).map(str::to_owned)
}

/// The audience "everyone subscribed": every person has one of the list's two languages (whom
/// a send reaches among them — confirmed, not suppressed — the send decides, as for any filter).
fn everyone_filter() -> serde_json::Value {
    serde_json::json!({"any": [{"language": "en"}, {"language": "es"}]})
}

/// `everyone`, `filter` (another filter, set through the API), `none` (not chosen yet) or the
/// segment's id.
fn audience_of(n: &Newsletter) -> String {
    match (&n.segment_id, &n.filter) {
        (Some(id), _) => id.as_str().to_owned(),
        (None, Some(raw)) => {
            let value = serde_json::from_str::<serde_json::Value>(raw).ok();
            if value == Some(everyone_filter()) {
                "everyone"
            } else {
                "filter"
            }
            .to_owned()
        }
        (None, None) => "none".into(),
    }
}

/// The Spanish version of a newsletter, if it has one.
fn spanish(n: &Newsletter) -> Option<Content> {
    serde_json::from_str::<BTreeMap<Language, Content>>(&n.variants)
        .ok()
        .and_then(|mut v| v.remove(&Language::Es))
}

fn summary(n: &Newsletter) -> Value {
    context! {
        id => n.id.as_str(),
        subject => &n.subject,
        status => n.status.as_str(),
        has_spanish => spanish(n).is_some(),
        created_at => n.created_at.to_string(),
        updated_at => n.updated_at.to_string(),
        send_at => n.send_at.map(|t| t.to_string()),
        started_at => n.started_at.map(|t| t.to_string()),
        finished_at => n.finished_at.map(|t| t.to_string()),
    }
}

pub async fn list(signed: Signed<ReadNewsletters>, query: web::Query<ListQuery>) -> HttpResponse {
    let console = &signed.console;
    let status = query
        .status
        .as_deref()
        .filter(|s| NewsletterState::parse(s).is_some())
        .map(str::to_owned);
    let input = ListInput {
        status: status.clone(),
        cursor: query.after.clone(),
        limit: PAGE,
    };
    let page = match service::list(&console.state.db, input).await {
        Ok(page) => page,
        Err(ListError::Invalid(_)) => return console.error(StatusCode::BAD_REQUEST, "bad_form"),
        Err(e) => return console.internal(e),
    };
    let next = page
        .more
        .then(|| page.items.last().map(|n| n.id.as_str().to_owned()))
        .flatten();
    // The progress of each send under way (a list holds few), shown on its row.
    let mut rows = Vec::with_capacity(page.items.len());
    for n in &page.items {
        let progress = if n.status == NewsletterState::Sending {
            match service::get(&console.state.db, &console.principal, n.id.clone()).await {
                Ok(report) => report.progress.map(|p| {
                    context! { done => p.sent + p.failed + p.skipped, total => p.total }
                }),
                Err(GetError::NotFound) => None,
                Err(e) => return console.internal(e),
            }
        } else {
            None
        };
        rows.push(context! { progress => progress, ..summary(n) });
    }
    let live = page
        .items
        .iter()
        .any(|n| n.status == NewsletterState::Sending);
    let states: Vec<&str> = NewsletterState::ALL.iter().map(|s| s.as_str()).collect();
    console.page(
        StatusCode::OK,
        "newsletters/list",
        context! {
            newsletters => rows,
            live => live,
            states => states,
            status => status,
            next => next,
            paged => query.after.is_some(),
            may_write => console.principal.passes::<WriteNewsletters>(),
            area_notice => notice(query.notice.as_deref()),
        },
    )
}

fn newsletter_id(raw: &str) -> Option<NewsletterId> {
    NewsletterId::parse(raw)
}

/// A newsletter's page: content, audience, dates and the progress of its send.
pub async fn show(
    signed: Signed<ReadNewsletters>,
    id: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let console = &signed.console;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let report = match service::get(&console.state.db, &console.principal, id).await {
        Ok(report) => report,
        Err(GetError::NotFound) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    let n = &report.newsletter;
    let segment = match &n.segment_id {
        Some(segment_id) => match segments::list(&console.state.db).await {
            Ok(all) => all
                .into_iter()
                .find(|s| s.id == *segment_id)
                .map(|s| s.name),
            Err(e) => return console.internal(e),
        },
        None => None,
    };
    let progress = report.progress.as_ref().map(|p| {
        // Sent in the last 30 seconds: the rate now, and the time left at that rate.
        let per_minute = p.recent * 2;
        let minutes_left = (per_minute > 0).then(|| (p.pending + per_minute - 1) / per_minute);
        context! {
            total => p.total,
            sent => p.sent,
            failed => p.failed,
            skipped => p.skipped,
            pending => p.pending,
            done => p.sent + p.failed + p.skipped,
            per_minute => per_minute,
            minutes_left => minutes_left,
        }
    });
    let reasons: Vec<Value> = report
        .reasons
        .iter()
        .flatten()
        .map(|(state, reason, count)| {
            // An SMTP reply's class says whether retrying could ever help.
            let kind = match reason.as_bytes().first() {
                Some(b'5') => "permanent",
                Some(b'4') => "temporary",
                _ if state == "skipped" => "skipped",
                _ => "local",
            };
            context! { state => state, reason => reason, kind => kind, count => count }
        })
        .collect();
    let status = n.status;
    let live = matches!(
        status,
        NewsletterState::Sending | NewsletterState::Scheduled
    );
    let es = spanish(n);
    console.page(
        StatusCode::OK,
        "newsletters/show",
        context! {
            n => summary(n),
            from => &n.from_address,
            reply_to => &n.reply_to,
            english => context! {
                subject => &n.subject,
                preheader => &n.preheader,
                html => &n.html,
                text => &n.text,
            },
            spanish => es.map(|c| context! {
                subject => c.subject,
                preheader => c.preheader,
                html => c.html,
                text => c.text,
            }),
            audience => match (&segment, audience_of(n).as_str()) {
                (Some(_), _) => "segment".to_owned(),
                (None, "everyone" | "filter" | "none") => audience_of(n),
                (None, _) => "segment_gone".to_owned(),
            },
            segment => segment,
            filter => &n.filter,
            pause_reason => &n.pause_reason,
            progress => progress,
            reasons => reasons,
            live => live,
            may_write => console.principal.passes::<WriteNewsletters>(),
            may_send => console.principal.passes::<SendNewsletters>(),
            may_edit => status == NewsletterState::Draft,
            may_pause => status == NewsletterState::Sending,
            may_resume => status == NewsletterState::Paused,
            may_cancel => matches!(
                status,
                NewsletterState::Scheduled
                    | NewsletterState::Overdue
                    | NewsletterState::Sending
                    | NewsletterState::Paused
            ),
            archive => archive_view(&console.state, n),
            area_notice => notice(query.notice.as_deref()),
        },
    )
}

/// The editor's form as sent: its field names are the ones the service names its errors by.
#[derive(Deserialize, Default)]
pub struct DraftForm {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    preheader: String,
    #[serde(default)]
    html: String,
    #[serde(default)]
    text: String,
    #[serde(default, rename = "variants.es.subject")]
    es_subject: String,
    #[serde(default, rename = "variants.es.preheader")]
    es_preheader: String,
    #[serde(default, rename = "variants.es.html")]
    es_html: String,
    #[serde(default, rename = "variants.es.text")]
    es_text: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    reply_to: String,
    /// `everyone`, `filter` (keep the filter set through the API), `none` (choose later) or a
    /// segment's id.
    #[serde(default)]
    audience: String,
    /// A ticked box's value (`on`), absent when unticked.
    #[serde(default)]
    count_clicks: Option<String>,
    #[serde(default)]
    archived: Option<String>,
    /// The draft's `updated_at` when the editor was opened (none for a new draft).
    #[serde(default)]
    version: String,
}

fn optional(raw: &str) -> Option<String> {
    Some(raw.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Text as typed in a browser's textarea (CRLF line ends), as stored (LF).
fn typed(raw: &str) -> String {
    raw.replace("\r\n", "\n")
}

impl DraftForm {
    fn from_newsletter(n: &Newsletter) -> Self {
        let es = spanish(n);
        Self {
            subject: n.subject.clone(),
            preheader: n.preheader.clone().unwrap_or_default(),
            html: n.html.clone(),
            text: n.text.clone().unwrap_or_default(),
            es_subject: es.as_ref().map(|c| c.subject.clone()).unwrap_or_default(),
            es_preheader: es
                .as_ref()
                .and_then(|c| c.preheader.clone())
                .unwrap_or_default(),
            es_html: es.as_ref().map(|c| c.html.clone()).unwrap_or_default(),
            es_text: es.and_then(|c| c.text).unwrap_or_default(),
            from: n.from_address.clone().unwrap_or_default(),
            reply_to: n.reply_to.clone().unwrap_or_default(),
            audience: audience_of(n),
            count_clicks: n.count_clicks.then(|| "on".to_owned()),
            archived: n.archived.then(|| "on".to_owned()),
            version: n.updated_at.format(VERSION_FORMAT).to_string(),
        }
    }

    fn value(&self) -> Value {
        context! {
            subject => &self.subject,
            preheader => &self.preheader,
            html => &self.html,
            text => &self.text,
            es_subject => &self.es_subject,
            es_preheader => &self.es_preheader,
            es_html => &self.es_html,
            es_text => &self.es_text,
            from => &self.from,
            reply_to => &self.reply_to,
            audience => &self.audience,
            count_clicks => self.count_clicks.is_some(),
            archived => self.archived.is_some(),
            version => &self.version,
        }
    }

    /// The change the form asks for. A Spanish version left wholly blank means none (Spanish
    /// readers get the English one); a blank text part is derived from the HTML; a blank
    /// preheader means none.
    fn input(&self, errors: &mut FieldErrors) -> DraftInput {
        let spanish_given = [
            &self.es_subject,
            &self.es_preheader,
            &self.es_html,
            &self.es_text,
        ]
        .iter()
        .any(|v| !v.trim().is_empty());
        let variants = spanish_given.then(|| {
            let es = Content {
                subject: self.es_subject.trim().to_owned(),
                html: typed(&self.es_html),
                text: optional(&self.es_text).map(|t| typed(&t)),
                preheader: optional(&self.es_preheader),
            };
            BTreeMap::from([(Language::Es, es)])
        });
        let (segment_id, filter) = match self.audience.as_str() {
            "none" | "" => (Some(None), Some(None)),
            "everyone" => (Some(None), Some(Some(everyone_filter()))),
            "filter" => (None, None),
            id => (Some(Some(id.to_owned())), Some(None)),
        };
        let read_version = if self.version.is_empty() {
            None
        } else {
            let parsed = NaiveDateTime::parse_from_str(&self.version, VERSION_FORMAT).ok();
            if parsed.is_none() {
                errors.add("version", "is not a version of this draft");
            }
            parsed
        };
        DraftInput {
            subject: Some(self.subject.trim().to_owned()),
            html: Some(typed(&self.html)),
            text: Some(optional(&self.text).map(|t| typed(&t))),
            preheader: Some(optional(&self.preheader)),
            count_clicks: Some(self.count_clicks.is_some()),
            archived: Some(self.archived.is_some()),
            variants: Some(variants),
            from: Some(optional(&self.from)),
            reply_to: Some(optional(&self.reply_to)),
            segment_id,
            filter,
            read_version,
        }
    }
}

/// What the editor shows besides the form: who can be chosen as the audience and which merge
/// fields a template may use.
struct EditorScreen<'a> {
    id: Option<&'a str>,
    status: StatusCode,
    errors: Value,
    /// A colleague saved the draft after this editor opened it: when, and nothing was saved.
    conflict: Option<String>,
    has_filter: bool,
    /// A notice of this area to show (`duplicated` after a duplicate opens its copy).
    notice: Option<String>,
}

async fn editor(console: &Console, form: &DraftForm, screen: EditorScreen<'_>) -> HttpResponse {
    let all = match segments::list(&console.state.db).await {
        Ok(all) => all,
        Err(e) => return console.internal(e),
    };
    let fields = match crate::services::catalog::list_fields(&console.state.db).await {
        Ok(fields) => fields,
        Err(e) => return console.internal(e),
    };
    let segments: Vec<Value> = all
        .iter()
        .map(|s| context! { id => s.id.as_str(), name => &s.name })
        .collect();
    let keys: Vec<String> = fields.into_iter().map(|f| f.key).collect();
    console.page(
        screen.status,
        "newsletters/edit",
        context! {
            id => screen.id,
            form => form.value(),
            errors => screen.errors,
            conflict => screen.conflict,
            has_filter => screen.has_filter || form.audience == "filter",
            // A draft may wait for its audience; one with an audience can't lose it here.
            may_choose_later => screen.id.is_none() || form.audience == "none",
            segments => segments,
            field_keys => keys,
            area_notice => screen.notice,
        },
    )
}

pub async fn new_page(signed: Signed<WriteNewsletters>) -> HttpResponse {
    let form = DraftForm {
        audience: "everyone".into(),
        ..DraftForm::default()
    };
    let screen = EditorScreen {
        id: None,
        status: StatusCode::OK,
        errors: Value::from(()),
        conflict: None,
        has_filter: false,
        notice: None,
    };
    editor(&signed.console, &form, screen).await
}

fn invalid_screen<'a>(
    console: &Console,
    id: Option<&'a str>,
    errors: &FieldErrors,
) -> EditorScreen<'a> {
    EditorScreen {
        id,
        status: StatusCode::UNPROCESSABLE_ENTITY,
        errors: console.field_errors(errors),
        conflict: None,
        has_filter: false,
        notice: None,
    }
}

pub async fn create(posted: Posted<WriteNewsletters, DraftForm>) -> HttpResponse {
    let console = &posted.console;
    let form = &posted.form;
    let mut errors = FieldErrors::new();
    let mut input = form.input(&mut errors);
    input.read_version = None;
    if !errors.is_empty() {
        return editor(console, form, invalid_screen(console, None, &errors)).await;
    }
    let state = &console.state;
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match service::create(&state.db, rendering(state), actor, ip, input).await {
        Ok(n) => console.redirect(
            &format!("/newsletters/{}", n.id.as_str()),
            Some("draft_created"),
        ),
        Err(DraftError::Invalid(errors)) => {
            editor(console, form, invalid_screen(console, None, &errors)).await
        }
        Err(e) => console.internal(e),
    }
}

pub async fn edit_page(
    signed: Signed<WriteNewsletters>,
    id: web::Path<String>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let console = &signed.console;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let n = match service::get(&console.state.db, &console.principal, id).await {
        Ok(report) => report.newsletter,
        Err(GetError::NotFound) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    if n.status != NewsletterState::Draft {
        return console.redirect(&format!("/newsletters/{}", n.id.as_str()), None);
    }
    let screen = EditorScreen {
        id: Some(n.id.as_str()),
        status: StatusCode::OK,
        errors: Value::from(()),
        conflict: None,
        has_filter: audience_of(&n) == "filter",
        notice: notice(query.notice.as_deref()),
    };
    editor(console, &DraftForm::from_newsletter(&n), screen).await
}

pub async fn edit(
    posted: Posted<WriteNewsletters, DraftForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let form = &posted.form;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let mut errors = FieldErrors::new();
    let input = form.input(&mut errors);
    let shown_id = id.as_str().to_owned();
    if !errors.is_empty() {
        return editor(
            console,
            form,
            invalid_screen(console, Some(&shown_id), &errors),
        )
        .await;
    }
    let state = &console.state;
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match service::update(&state.db, rendering(state), actor, ip, id.clone(), input).await {
        Ok(n) => console.redirect(
            &format!("/newsletters/{}", n.id.as_str()),
            Some("draft_saved"),
        ),
        Err(DraftError::Invalid(errors)) => {
            editor(
                console,
                form,
                invalid_screen(console, Some(&shown_id), &errors),
            )
            .await
        }
        Err(DraftError::ChangedMeanwhile) => {
            // Someone saved the draft since this editor opened it: say when, keep what this
            // member typed on the page, and save nothing.
            let saved_at = match service::get(&state.db, actor, id).await {
                Ok(report) => report.newsletter.updated_at.to_string(),
                Err(GetError::NotFound) => {
                    return console.error(StatusCode::NOT_FOUND, "not_found")
                }
                Err(e) => return console.internal(e),
            };
            let screen = EditorScreen {
                id: Some(&shown_id),
                status: StatusCode::CONFLICT,
                errors: Value::from(()),
                conflict: Some(saved_at),
                has_filter: false,
                notice: None,
            };
            editor(console, form, screen).await
        }
        Err(DraftError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(DraftError::NotADraft(_) | DraftError::NoLongerADraft) => {
            console.redirect(&format!("/newsletters/{shown_id}"), None)
        }
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct EmptyForm {}

/// A new draft made from this newsletter.
pub async fn duplicate(
    posted: Posted<WriteNewsletters, EmptyForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let state = &console.state;
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match service::duplicate(&state.db, rendering(state), actor, ip, id.clone()).await {
        Ok(n) => console.redirect(
            &format!("/newsletters/{}/edit", n.id.as_str()),
            Some("duplicated"),
        ),
        Err(DraftError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        // The copy no longer passes as a draft (a field or segment it used is gone): open the
        // original's problems in the editor of a new draft.
        Err(DraftError::Invalid(errors)) => {
            let form = match service::get(&state.db, actor, id).await {
                Ok(report) => {
                    let mut form = DraftForm::from_newsletter(&report.newsletter);
                    form.version = String::new();
                    form
                }
                Err(e) => return console.internal(e),
            };
            editor(console, &form, invalid_screen(console, None, &errors)).await
        }
        Err(e) => console.internal(e),
    }
}

pub async fn delete(
    posted: Posted<WriteNewsletters, EmptyForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match service::delete(&console.state.db, actor, ip, id).await {
        Ok(()) => console.redirect("/newsletters", Some("draft_deleted")),
        Err(DeleteError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(DeleteError::Kept(_)) => console.error(StatusCode::CONFLICT, "newsletter_kept"),
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize)]
pub struct TransitionForm {
    #[serde(default)]
    action: String,
}

/// Where a newsletter stands in the public archive: chosen or not, public now (its send has
/// started), and its pages.
fn archive_view(state: &AppState, n: &Newsletter) -> Value {
    let base = state.settings.base_url();
    let public = n.archived
        && n.started_at.is_some()
        && crate::db::archive::PUBLIC_STATES.contains(&n.status);
    context! {
        archived => n.archived,
        public => public,
        cancelled => n.status == NewsletterState::Cancelled,
        en_url => crate::email::newsletter::page_url(&base, Language::En, n.id.as_str()),
        es_url => crate::email::newsletter::page_url(&base, Language::Es, n.id.as_str()),
    }
}

#[derive(Deserialize)]
pub struct ArchivedForm {
    #[serde(default)]
    archived: String,
}

/// Publishes the newsletter in the public archive (`archived=true`) or withdraws it.
pub async fn set_archived(
    posted: Posted<WriteNewsletters, ArchivedForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let archived = match posted.form.archived.as_str() {
        "true" => true,
        "false" => false,
        _ => return console.error(StatusCode::BAD_REQUEST, "bad_form"),
    };
    let shown = id.as_str().to_owned();
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    match crate::services::archive::set_archived(&console.state.db, actor, ip, id, archived).await {
        Ok(()) => console.redirect(
            &format!("/newsletters/{shown}"),
            Some(if archived { "archived" } else { "withdrawn" }),
        ),
        Err(crate::services::archive::ArchiveError::NotFound) => {
            console.error(StatusCode::NOT_FOUND, "not_found")
        }
        Err(e) => console.internal(e),
    }
}

/// Pauses, resumes or cancels a send (`action`).
pub async fn transition(
    posted: Posted<SendNewsletters, TransitionForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let state = &console.state;
    let (db, ready) = (&state.db, &state.send_ready);
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    let shown = id.as_str().to_owned();
    let (done, notice) = match posted.form.action.as_str() {
        "pause" => (service::pause(db, ready, actor, ip, id).await, "paused"),
        "resume" => (service::resume(db, ready, actor, ip, id).await, "resumed"),
        "cancel" => (service::cancel(db, ready, actor, ip, id).await, "cancelled"),
        _ => return console.error(StatusCode::BAD_REQUEST, "bad_form"),
    };
    match done {
        Ok(()) => console.redirect(&format!("/newsletters/{shown}"), Some(notice)),
        Err(TransitionError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(TransitionError::Refused { .. }) => {
            console.error(StatusCode::CONFLICT, "newsletter_moved_on")
        }
        Err(e) => console.internal(e),
    }
}

/// What the confirmation page shows besides the form: the audience now, and what went wrong.
struct SendScreen {
    status: StatusCode,
    errors: Value,
    /// The draft changed (or the counts moved) since the page was shown: look again.
    changed: bool,
}

/// The confirmation step before a send: how many people get it in each language, from which
/// address, now or at a time in the member's time zone.
async fn send_screen(
    console: &Console,
    id: NewsletterId,
    form: &SendForm,
    screen: SendScreen,
) -> HttpResponse {
    let state = &console.state;
    let report = match service::get(&state.db, &console.principal, id.clone()).await {
        Ok(report) => report,
        Err(GetError::NotFound) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    let n = &report.newsletter;
    if !matches!(n.status, NewsletterState::Draft | NewsletterState::Overdue) {
        return console.redirect(&format!("/newsletters/{}", n.id.as_str()), None);
    }
    let (audience, problem) = match service::audience(&state.db, &state.settings.from, id).await {
        Ok(audience) => (Some(audience), None),
        Err(AudienceError::NoAudience) => (None, Some("no_audience".to_owned())),
        Err(AudienceError::Unreadable(_)) => (None, Some("audience_gone".to_owned())),
        Err(AudienceError::NotFound) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    let problem = problem.or_else(|| {
        state
            .settings
            .postal_address
            .is_none()
            .then(|| "no_postal_address".to_owned())
    });
    let counts: Vec<Value> = audience
        .iter()
        .flat_map(|a| a.by_language.iter())
        .map(|(language, count)| context! { language => language.as_str(), count => count })
        .collect();
    let total: i64 = audience
        .iter()
        .flat_map(|a| a.by_language.iter())
        .map(|(_, c)| c)
        .sum();
    let key = if form.key.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        form.key.clone()
    };
    console.page(
        screen.status,
        "newsletters/send",
        context! {
            n => summary(n),
            from => audience.as_ref().map(|a| a.from.clone()),
            counts => counts,
            total => total,
            problem => problem,
            has_spanish => spanish(n).is_some(),
            version => audience.as_ref().map(|a| a.version.format(VERSION_FORMAT).to_string()),
            key => key,
            form => context! { when => if form.when.is_empty() { "now" } else { form.when.as_str() }, send_at => &form.send_at },
            errors => screen.errors,
            changed => screen.changed,
        },
    )
}

#[derive(Deserialize, Default)]
pub struct SendForm {
    /// `now` or `later`.
    #[serde(default)]
    when: String,
    /// A date and time as a browser's datetime-local input sends it (`2026-12-08T09:30`), in the
    /// member's time zone.
    #[serde(default)]
    send_at: String,
    /// The draft's version the counts were shown for.
    #[serde(default)]
    version: String,
    /// Makes a second click (or a resubmitted form) the same send.
    #[serde(default)]
    key: String,
}

pub async fn send_page(signed: Signed<SendNewsletters>, id: web::Path<String>) -> HttpResponse {
    let console = &signed.console;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let screen = SendScreen {
        status: StatusCode::OK,
        errors: Value::from(()),
        changed: false,
    };
    send_screen(console, id, &SendForm::default(), screen).await
}

/// `2026-12-08T09:30` in `zone`, as a UTC time; `None` when it is not such a time (or falls in a
/// gap of a clock change).
fn local_time(zone: chrono_tz::Tz, raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    let local = NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&chrono::Utc))
}

pub async fn send(
    posted: Posted<SendNewsletters, SendForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let form = &posted.form;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let mut errors = FieldErrors::new();
    let send_at = match form.when.as_str() {
        "now" => None,
        "later" => {
            let at = local_time(console.zone, &form.send_at);
            if at.is_none() {
                errors.add("send_at", "must be a date and time like 2026-12-31 18:00");
            }
            at
        }
        _ => return console.error(StatusCode::BAD_REQUEST, "bad_form"),
    };
    let read_version = NaiveDateTime::parse_from_str(&form.version, VERSION_FORMAT).ok();
    if read_version.is_none() || form.key.is_empty() || form.key.len() > 100 {
        return console.error(StatusCode::BAD_REQUEST, "bad_form");
    }
    if !errors.is_empty() {
        let screen = SendScreen {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            errors: console.field_errors(&errors),
            changed: false,
        };
        return send_screen(console, id, form, screen).await;
    }
    let input = SendInput {
        send_at,
        idempotency_key: Some(format!("console:{}", form.key)),
        read_version,
    };
    let state = &console.state;
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    let shown = id.as_str().to_owned();
    let result = service::send(
        &state.db,
        rendering(state),
        &state.send_ready,
        actor,
        ip,
        id.clone(),
        input,
    )
    .await;
    match result {
        Ok(()) => {
            let notice = if send_at.is_some() {
                "scheduled"
            } else {
                "sending"
            };
            console.redirect(&format!("/newsletters/{shown}"), Some(notice))
        }
        Err(SendError::Invalid(errors)) => {
            let screen = SendScreen {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                errors: console.field_errors(&errors),
                changed: false,
            };
            send_screen(console, id, form, screen).await
        }
        Err(SendError::ChangedMeanwhile) => {
            // A fresh key: this member confirms the new counts as a new decision.
            let retry = SendForm {
                when: form.when.clone(),
                send_at: form.send_at.clone(),
                ..SendForm::default()
            };
            let screen = SendScreen {
                status: StatusCode::CONFLICT,
                errors: Value::from(()),
                changed: true,
            };
            send_screen(console, id, &retry, screen).await
        }
        Err(SendError::NotSendable(_)) => console.redirect(&format!("/newsletters/{shown}"), None),
        Err(SendError::NoPostalAddress) => {
            let screen = SendScreen {
                status: StatusCode::CONFLICT,
                errors: Value::from(()),
                changed: false,
            };
            send_screen(console, id, form, screen).await
        }
        Err(SendError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize, Default)]
pub struct TestForm {
    /// Addresses, one per line or separated by commas.
    #[serde(default)]
    to: String,
    #[serde(default)]
    language: String,
}

/// Test copies of a draft to the addresses given (the member's own by default).
pub async fn test(
    posted: Posted<WriteNewsletters, TestForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let form = &posted.form;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let to: Vec<String> = form
        .to
        .split(['\n', ','])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    let input = TestInput {
        to,
        language: optional(&form.language),
    };
    let state = &console.state;
    let outbox = TestOutbox {
        limiter: &state.test_send_limiter,
        mail_ready: &state.mail_ready,
    };
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    let shown = id.as_str().to_owned();
    match service::send_test(&state.db, rendering(state), outbox, actor, ip, id, input).await {
        Ok(_) => console.redirect(&format!("/newsletters/{shown}"), Some("test_sent")),
        Err(TestError::Invalid(errors)) => {
            let messages: Vec<String> = errors
                .iter()
                .flat_map(|(_, messages)| messages.iter())
                .map(|m| state.templates.console_message(console.language, m))
                .collect();
            console.page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "newsletters/test_refused",
                context! { id => shown, messages => messages },
            )
        }
        Err(TestError::TooMany) => console.error(StatusCode::TOO_MANY_REQUESTS, "too_many"),
        Err(TestError::NotFound) => console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => console.internal(e),
    }
}

#[derive(Deserialize, Default)]
pub struct PreviewQuery {
    #[serde(default)]
    language: Option<String>,
    /// A person's address: the message as they would get it. Blank: a sample person.
    #[serde(default)]
    person: Option<String>,
}

impl PreviewQuery {
    fn input(&self) -> PreviewInput {
        PreviewInput {
            subscriber_id: None,
            email: self.person.as_deref().and_then(optional),
            language: self.language.as_deref().and_then(optional),
        }
    }
}

/// The message as a person (or a sample person) would get it, in either language: subject,
/// From, the HTML at phone and desktop widths (each in a sandboxed frame) and the text part.
pub async fn preview(
    signed: Signed<ReadNewsletters>,
    id: web::Path<String>,
    query: web::Query<PreviewQuery>,
) -> HttpResponse {
    let console = &signed.console;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let state = &console.state;
    let subject = match service::get(&state.db, &console.principal, id.clone()).await {
        Ok(report) => report.newsletter.subject,
        Err(GetError::NotFound) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    let input = query.input();
    let result = service::preview(
        &state.db,
        rendering(state),
        &console.principal,
        id.clone(),
        input,
    )
    .await;
    let (status, shown, errors) = match result {
        Ok(p) => (
            StatusCode::OK,
            Some(context! {
                language => p.language.as_str(),
                subject => p.subject,
                from => p.from,
                text => p.text,
                headers => p.headers,
                wire_headers => p.wire_headers,
            }),
            Value::from(()),
        ),
        Err(PreviewError::Invalid(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            console.field_errors(&errors),
        ),
        Err(PreviewError::Forbidden) => return console.error(StatusCode::FORBIDDEN, "forbidden"),
        Err(PreviewError::NotFound) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    let frame_query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("language", query.language.as_deref().unwrap_or_default())
        .append_pair("person", query.person.as_deref().unwrap_or_default())
        .finish();
    console.page(
        status,
        "newsletters/preview",
        context! {
            id => id.as_str(),
            newsletter_subject => subject,
            preview => shown,
            errors => errors,
            query => context! {
                language => query.language.clone().unwrap_or_default(),
                person => query.person.clone().unwrap_or_default(),
            },
            frame_query => frame_query,
        },
    )
}

/// The HTML part alone, for the preview's frames: scripts, plugins, forms and navigation off
/// (`sandbox`), nothing fetched but images, framed only by the console itself.
pub async fn preview_frame(
    signed: Signed<ReadNewsletters>,
    id: web::Path<String>,
    query: web::Query<PreviewQuery>,
) -> HttpResponse {
    use actix_web::http::header;
    let console = &signed.console;
    let Some(id) = newsletter_id(&id) else {
        return console.error(StatusCode::NOT_FOUND, "not_found");
    };
    let state = &console.state;
    let html = match service::preview(
        &state.db,
        rendering(state),
        &console.principal,
        id,
        query.input(),
    )
    .await
    {
        Ok(p) => p.html,
        Err(PreviewError::Invalid(_)) => {
            return console.error(StatusCode::UNPROCESSABLE_ENTITY, "bad_form")
        }
        Err(PreviewError::Forbidden) => return console.error(StatusCode::FORBIDDEN, "forbidden"),
        Err(PreviewError::NotFound) => return console.error(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => return console.internal(e),
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "SAMEORIGIN"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; \
             frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
        ))
        .body(html)
}

/// An autosave that saved nothing, as a problem document (RFC 9457) whose `state` tells the
/// page what to say: `refused`, `invalid` (with the `messages`), `conflict`, `gone` or `failed`.
fn unsaved(status: StatusCode, state: &str, messages: &[String]) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(serde_json::json!({
            "type": format!("urn:enlace:problem:autosave-{state}"),
            "title": "The draft was not saved",
            "status": status.as_u16(),
            "state": state,
            "messages": messages,
        }))
}

/// The editor's autosave (`assets/console.js`): the same change as saving the form, answered in
/// JSON so the page stays as it is — the new version when saved; when a colleague saved first,
/// `409` and nothing saved; when the draft can't be saved as it stands, `422` with the messages.
pub async fn autosave(
    posted: Posted<WriteNewsletters, DraftForm>,
    id: web::Path<String>,
) -> HttpResponse {
    let console = &posted.console;
    let form = &posted.form;
    let Some(id) = newsletter_id(&id) else {
        return unsaved(StatusCode::NOT_FOUND, "gone", &[]);
    };
    let mut errors = FieldErrors::new();
    let input = form.input(&mut errors);
    if input.read_version.is_none() {
        return unsaved(StatusCode::BAD_REQUEST, "refused", &[]);
    }
    let state = &console.state;
    let (actor, ip) = (&console.principal, console.ip.as_deref());
    let refused = |errors: &FieldErrors| {
        let messages: Vec<String> = errors
            .iter()
            .flat_map(|(_, messages)| messages.iter())
            .map(|m| state.templates.console_message(console.language, m))
            .collect();
        unsaved(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &messages)
    };
    if !errors.is_empty() {
        return refused(&errors);
    }
    match service::update(&state.db, rendering(state), actor, ip, id, input).await {
        Ok(n) => HttpResponse::Ok().json(serde_json::json!({
            "state": "saved",
            "version": n.updated_at.format(VERSION_FORMAT).to_string(),
        })),
        Err(DraftError::Invalid(errors)) => refused(&errors),
        Err(DraftError::ChangedMeanwhile) => unsaved(StatusCode::CONFLICT, "conflict", &[]),
        Err(DraftError::NotFound | DraftError::NotADraft(_) | DraftError::NoLongerADraft) => {
            unsaved(StatusCode::CONFLICT, "gone", &[])
        }
        Err(e) => {
            tracing::error!(error = %e, "autosaving a draft failed");
            unsaved(StatusCode::INTERNAL_SERVER_ERROR, "failed", &[])
        }
    }
}

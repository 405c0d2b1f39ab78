//! Proofs of a newsletter: a preview of the message one person would get, and test copies
//! queued to a few staff addresses. Their links are inert.

use std::num::NonZeroU32;

use governor::DefaultKeyedRateLimiter;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::{compile_apart, find, stored_id, Rendering};
use crate::auth::Principal;
use crate::config::Settings;
use crate::db::ids::{NewsletterId, SubscriberId};
use crate::db::newsletters as store;
use crate::db::{self, read_snapshot, Db, DbError};
use crate::domain::{Email, FieldErrors, Language};
use crate::email::newsletter::{CompiledNewsletter, MergeData, Rendered};
use crate::email::Templates;
use crate::jobs::TestMail;
use crate::sending::prepare::mail_content;

/// Test copies per request.
const MAX_TEST_RECIPIENTS: usize = 10;

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
    /// The person by address instead (the console's search box); `subscriber_id` wins.
    pub email: Option<String>,
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
    /// The main headers the message goes out with, by name, as written (see `email::headers_of`).
    pub headers: Vec<(&'static str, String)>,
    /// Every header exactly as it goes on the wire (a DKIM signature is added when sending).
    pub wire_headers: String,
}

/// Where test copies go, and in which language.
#[derive(Debug, Default)]
pub struct TestInput {
    pub to: Vec<String>,
    pub language: Option<String>,
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

from_diesel!(PreviewError, TestError);

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
/// the draft's `html`. `archive_base` (the public URL, for a newsletter in the archive) adds the
/// "view in your browser" link its messages carry.
fn render_inert(
    templates: &Templates,
    (unsubscribe_url, preferences_url): &(String, String),
    (newsletter_id, archive_base): (&str, Option<&str>),
    compiled: &CompiledNewsletter,
    person: Person<'_>,
) -> Result<Rendered, FieldErrors> {
    let view_online = archive_base
        .map(|base| crate::email::newsletter::page_url(base, person.language, newsletter_id));
    compiled
        .render_with_link(
            &MergeData {
                name: person.name,
                email: person.email,
                language: person.language,
                attributes: person.attributes,
                unsubscribe_url,
                preferences_url,
            },
            templates,
            view_online.as_deref(),
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
    id: NewsletterId,
    input: PreviewInput,
) -> Result<Preview, PreviewError> {
    let language = parse_language(input.language.as_deref()).map_err(PreviewError::Invalid)?;
    if (input.subscriber_id.is_some() || input.email.is_some()) && !actor.may_read_contacts() {
        return Err(PreviewError::Forbidden);
    }
    let no_such_subscriber =
        || PreviewError::Invalid(FieldErrors::one("subscriber_id", "no such subscriber"));
    let subscriber_id = match input.subscriber_id.as_deref() {
        Some(raw) => Some(
            stored_id(raw, false)
                .and_then(|id| SubscriberId::parse(&id))
                .ok_or_else(no_such_subscriber)?,
        ),
        None => None,
    };
    let email =
        match input.email.as_deref().map(str::trim) {
            Some(raw) => Some(crate::domain::Email::parse(raw).map_err(|_| {
                PreviewError::Invalid(FieldErrors::one("email", "no such subscriber"))
            })?),
            None => None,
        };
    let (n, subscriber) = db
        .run(move |conn| {
            read_snapshot(conn, |conn| -> Result<_, PreviewError> {
                let n = store::find_newsletter(conn, &id)?.ok_or(PreviewError::NotFound)?;
                let subscriber = match (subscriber_id, email) {
                    (Some(sid), _) => Some(
                        db::subscribers::find_subscriber(conn, &sid)?
                            .ok_or_else(no_such_subscriber)?,
                    ),
                    (None, Some(email)) => Some(
                        db::subscribers::find_subscriber_by_email(conn, email.as_str())?
                            .ok_or_else(|| {
                                PreviewError::Invalid(FieldErrors::one(
                                    "email",
                                    "no such subscriber",
                                ))
                            })?,
                    ),
                    (None, None) => None,
                };
                Ok((n, subscriber))
            })
        })
        .await?;
    let compiled = compile_apart::<PreviewError>(db, rendering, mail_content(&n, rendering.links)?)
        .await?
        .map_err(PreviewError::Invalid)?;
    let templates = rendering.templates.clone();
    let links = inert_urls(rendering.settings);
    let archive_base = n.archived.then(|| rendering.settings.base_url());
    let default_from = rendering.settings.from.clone();
    let list_id = rendering.settings.list_id();
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
        let out = render_inert(
            &templates,
            &links,
            (&n.id, archive_base.as_deref()),
            &compiled,
            person,
        )
        .map_err(PreviewError::Invalid)?;
        let from = n.from_address.clone().unwrap_or(default_from);
        let (headers, wire_headers) = preview_headers(
            &n,
            &from,
            (language, &out),
            &links.0,
            list_id,
            subscriber.as_ref(),
        )?;
        Ok(Preview {
            language,
            subject: out.subject,
            html: out.html,
            text: out.text,
            from,
            headers,
            wire_headers,
        })
    })
    .await
    .map_err(anyhow::Error::from)?
}

/// The headers the newsletter's message to this person (or the sample person) goes out with,
/// built by the same composer as every message sent; only the unsubscribe link is inert.
fn preview_headers(
    n: &store::Newsletter,
    from: &str,
    (language, out): (Language, &Rendered),
    unsubscribe_url: &str,
    list_id: String,
    subscriber: Option<&db::subscribers::Subscriber>,
) -> anyhow::Result<(Vec<(&'static str, String)>, String)> {
    let mailbox = |raw: &str| -> anyhow::Result<lettre::message::Mailbox> {
        raw.parse()
            .map_err(|e| anyhow::anyhow!("stored mailbox: {e}"))
    };
    let from = mailbox(from)?;
    let reply_to = n.reply_to.as_deref().map(mailbox).transpose()?;
    let (to_email, to_name) = match subscriber {
        Some(s) => (s.email.clone(), s.name.clone()),
        None => ("ana@example.org".to_owned(), Some("Ana".to_owned())),
    };
    let who = subscriber.map_or("preview", |s| s.id.as_str());
    let message_id = format!("<{}.{who}@{}>", n.id, from.email.domain());
    let mail = crate::email::OutgoingMail {
        to_email,
        to_name,
        language,
        subject: out.subject.clone(),
        text: out.text.clone(),
        html: out.html.clone(),
        unsubscribe_url: unsubscribe_url.to_owned(),
        from: Some(from.clone()),
        reply_to,
        list_id: Some(list_id),
        message_id: Some(message_id),
    };
    crate::email::headers_of(&from, mail).map_err(|e| anyhow::anyhow!("{e}"))
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
    id: NewsletterId,
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
    let compiled = compile_apart::<TestError>(db, rendering, mail_content(&n, rendering.links)?)
        .await?
        .map_err(TestError::Invalid)?;
    let templates = rendering.templates.clone();
    let links = inert_urls(rendering.settings);
    let archive_base = n.archived.then(|| rendering.settings.base_url());
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
                let out = render_inert(
                    &templates,
                    &links,
                    (&n.id, archive_base.as_deref()),
                    &compiled,
                    person,
                )?;
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

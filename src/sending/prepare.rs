//! Starting a send (fixing its recipients) and turning claimed deliveries into messages: each
//! recipient is re-read just before their message goes out, so whoever unsubscribed, bounced, was
//! suppressed or erased since the send started is skipped and recorded as such.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chrono::NaiveDateTime;
use lettre::message::Mailbox;

use super::recorder::Verdict;
use super::{Engine, Ready};
use crate::db::deliveries::{self, ClaimedDelivery};
use crate::db::ids::NewsletterId;
use crate::db::newsletters::{self, Newsletter};
use crate::db::{self, segments, subscribers, suppressions, Backend, Db, DbError};
use crate::domain::{Language, SegmentFilter, SuppressionReason};
use crate::email::newsletter::{CompiledNewsletter, Content, MergeData, NewsletterContent};
use crate::email::{BodyEncoder, OutgoingMail, PreparedMail};
use crate::tokens;

/// The filter a newsletter targets: its saved segment's, or its own.
pub fn target_filter(
    conn: &mut db::AnyConnection,
    newsletter: &Newsletter,
) -> anyhow::Result<SegmentFilter> {
    let raw = match (&newsletter.segment_id, &newsletter.filter) {
        (Some(segment_id), _) => {
            segments::find_segment(conn, segment_id)?
                .context("the newsletter's segment no longer exists")?
                .filter
        }
        (None, Some(filter)) => filter.clone(),
        (None, None) => anyhow::bail!("the newsletter has no target"),
    };
    let value: serde_json::Value = serde_json::from_str(&raw)?;
    SegmentFilter::parse(&value).map_err(|e| anyhow::anyhow!("stored filter is invalid: {e:?}"))
}

/// Moves a scheduled newsletter to sending and fixes its recipients, in one transaction.
/// `None` when another process started it first.
pub async fn start(
    db: &Db,
    newsletter: Newsletter,
    now: NaiveDateTime,
) -> anyhow::Result<Option<usize>> {
    let backend = db.backend();
    let started = db
        .transaction(move |conn| -> anyhow::Result<Option<usize>> {
            if !newsletters::start_sending(conn, &newsletter.id, now)? {
                return Ok(None);
            }
            let filter = target_filter(conn, &newsletter)?;
            let count = deliveries::insert_recipients(
                conn,
                &newsletter.id,
                segments::condition(&filter, backend),
                now,
            )?;
            let started = [newsletter.id.to_string()];
            crate::webhooks::emit_newsletters(
                conn,
                crate::webhooks::EventType::NewsletterStarted,
                &started,
                now,
                None,
            )?;
            Ok(Some(count))
        })
        .await?;
    // PostgreSQL plans by its statistics, which autovacuum refreshes only a minute or more
    // after the table grew: until then it takes the newsletter's deliveries for a few rows and
    // reads all of them to claim each round. A large send refreshes them at once.
    if backend == Backend::Postgres && started.is_some_and(|n| n >= ANALYZE_FROM) {
        if let Err(e) = db
            .run(|conn| deliveries::refresh_statistics(conn).map_err(db::DbError::from))
            .await
        {
            tracing::warn!(error = %e, "could not refresh the deliveries' statistics");
        }
    }
    Ok(started)
}

/// Recipients from which starting a send refreshes PostgreSQL's statistics of the deliveries.
const ANALYZE_FROM: usize = 1_000;

/// The content of a stored newsletter.
pub fn content_of(newsletter: &Newsletter) -> anyhow::Result<NewsletterContent> {
    Ok(NewsletterContent {
        default: Content {
            subject: newsletter.subject.clone(),
            html: newsletter.html.clone(),
            text: newsletter.text.clone(),
            preheader: newsletter.preheader.clone(),
        },
        variants: serde_json::from_str(&newsletter.variants).context("stored variants")?,
    })
}

/// The content as its messages carry it: with click counting on, each countable link of the
/// HTML leads through Enlace's redirect (the same link for every recipient).
pub fn mail_content(
    newsletter: &Newsletter,
    links: &crate::clicks::LinkSigner,
) -> anyhow::Result<NewsletterContent> {
    let content = content_of(newsletter)?;
    Ok(if newsletter.count_clicks {
        crate::clicks::rewrite(&content, newsletter.id.as_str(), links)
    } else {
        content
    })
}

/// A newsletter compiled for sending.
pub struct PreparedNewsletter {
    pub compiled: CompiledNewsletter,
    pub from: Option<Mailbox>,
    pub reply_to: Option<Mailbox>,
    /// In the public archive: each message links to its archive page ("view in your browser").
    pub archived: bool,
}

/// Compiled newsletters by id, rebuilt when the row changed.
#[derive(Default)]
pub struct NewsletterCache(Mutex<HashMap<String, (NaiveDateTime, Arc<PreparedNewsletter>)>>);

impl NewsletterCache {
    fn get_or_compile(
        &self,
        newsletter: &Newsletter,
        declared: &[String],
        org: &str,
        postal_address: Option<&str>,
        links: &crate::clicks::LinkSigner,
    ) -> anyhow::Result<Arc<PreparedNewsletter>> {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, prepared)) = cache.get(newsletter.id.as_str()) {
            if *at == newsletter.updated_at {
                return Ok(prepared.clone());
            }
        }
        let compiled = CompiledNewsletter::compile(
            &mail_content(newsletter, links)?,
            declared,
            org,
            postal_address,
        )
        .map_err(|errors| {
            let found: Vec<String> = errors
                .iter()
                .map(|(field, problems)| format!("{field}: {}", problems.join("; ")))
                .collect();
            anyhow::anyhow!(
                "its content does not pass the checks: {}",
                found.join(" | ")
            )
        })?;
        let mailbox = |raw: &Option<String>| -> anyhow::Result<Option<Mailbox>> {
            raw.as_deref()
                .map(str::parse)
                .transpose()
                .context("stored mailbox")
        };
        let prepared = Arc::new(PreparedNewsletter {
            compiled,
            from: mailbox(&newsletter.from_address)?,
            reply_to: mailbox(&newsletter.reply_to)?,
            archived: newsletter.archived,
        });
        if cache.len() > 64 {
            cache.clear();
        }
        cache.insert(
            newsletter.id.to_string(),
            (newsletter.updated_at, prepared.clone()),
        );
        Ok(prepared)
    }
}

/// Reads the claimed recipients and decides, for each, to render and send or to skip.
pub(super) async fn prepare(
    engine: &Arc<Engine>,
    newsletter_id: &str,
    claim: &str,
    lease: super::lease::ClaimLease,
    batch: Vec<ClaimedDelivery>,
) -> anyhow::Result<Vec<Ready>> {
    let id = newsletter_id.to_owned();
    let ids: Vec<String> = batch.iter().map(|d| d.subscriber_id.clone()).collect();
    let (newsletter, declared, found, blocked) = engine
        .db
        .run(move |conn| -> Result<_, DbError> {
            let newsletter = match NewsletterId::parse(&id) {
                Some(id) => newsletters::find_newsletter(conn, &id)?,
                None => None,
            };
            let declared: Vec<String> = db::interests::list_field_declarations(conn)?
                .into_iter()
                .map(|f| f.key)
                .collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let found = subscribers::find_subscribers(conn, &refs)?;
            // Each address's suppression hash, computed once: for this check and for the
            // suppression a hard bounce records.
            let hashes: Vec<String> = found.iter().map(|s| tokens::email_hash(&s.email)).collect();
            let blocked: HashSet<String> = suppressions::find_suppressions(conn, &hashes)?
                .into_iter()
                .filter(|(_, reason)| *reason != SuppressionReason::Erased)
                .map(|(hash, _)| hash)
                .collect();
            let found: Vec<_> = found.into_iter().zip(hashes).collect();
            Ok((newsletter, declared, found, blocked))
        })
        .await?;
    let engine2 = engine.clone();
    let compiled =
        tokio::task::spawn_blocking(move || -> Result<Option<Arc<PreparedNewsletter>>, String> {
            let engine = engine2;
            newsletter
                .as_ref()
                .map(|n| {
                    engine
                        .cache
                        .get_or_compile(
                            n,
                            &declared,
                            engine.templates.org(),
                            engine.templates.postal_address(),
                            &engine.links,
                        )
                        .map_err(|e| format!("{e:#}"))
                })
                .transpose()
        })
        .await?;
    let prepared = match compiled {
        Ok(prepared) => prepared,
        Err(why) => {
            // Its templates no longer compile (a field it uses was removed, or it was saved
            // before the template rules refused what it uses): the send is paused for staff,
            // with the reason, and nobody gets a broken message.
            tracing::error!(newsletter_id, error = %why, "newsletter paused: its templates do not compile");
            let (id, claim) = (newsletter_id.to_owned(), claim.to_owned());
            let ids: Vec<String> = batch.into_iter().map(|d| d.subscriber_id).collect();
            engine
                .db
                .transaction(move |c| -> Result<(), DbError> {
                    newsletters::pause_with_reason(c, &id, &why, db::now())?;
                    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                    deliveries::put_back(c, &id, &claim, &refs, db::now(), false, None)?;
                    Ok(())
                })
                .await?;
            return Ok(Vec::new());
        }
    };
    // Rendering and encoding are the CPU-heavy part of a message: done here, on the blocking
    // threads, a share of the round each, so the runtime's workers only move SMTP traffic and
    // answer the server's replies without waiting behind them.
    let sender = prepared
        .as_ref()
        .and_then(|p| p.from.as_ref())
        .unwrap_or(&engine.mailer.from)
        .email
        .to_string();
    let mut by_id: HashMap<String, (subscribers::Subscriber, String)> = found
        .into_iter()
        .map(|(s, hash)| (s.id.to_string(), (s, hash)))
        .collect();
    let blocked = Arc::new(blocked);
    let share = batch.len().div_ceil(render_threads()).max(1);
    let mut deliveries = batch.into_iter().peekable();
    let mut shares = Vec::new();
    while deliveries.peek().is_some() {
        let part: Vec<_> = deliveries
            .by_ref()
            .take(share)
            .map(|d| {
                let found = by_id.remove(&d.subscriber_id);
                (d, found)
            })
            .collect();
        let (engine, prepared, blocked) = (engine.clone(), prepared.clone(), blocked.clone());
        let (newsletter_id, claim, lease, sender) = (
            newsletter_id.to_owned(),
            claim.to_owned(),
            lease.clone(),
            sender.clone(),
        );
        shares.push(on_render_threads(move || {
            // Recipients share most of each body: the encoder reuses what it encoded before.
            let mut bodies = BodyEncoder::new();
            part.into_iter()
                .map(|(delivery, found)| {
                    let (subscriber, email_hash) = found.unzip();
                    Ready {
                        mail: engine.decide(
                            &newsletter_id,
                            prepared.as_deref(),
                            subscriber.as_ref(),
                            email_hash.as_ref().is_some_and(|h| blocked.contains(h)),
                            &mut bodies,
                        ),
                        email_hash,
                        sender: sender.clone(),
                        newsletter_id: newsletter_id.clone(),
                        claim: claim.clone(),
                        subscriber_id: delivery.subscriber_id,
                        attempts: delivery.attempts,
                        lease: lease.clone(),
                    }
                })
                .collect::<Vec<Ready>>()
        }));
    }
    let mut ready = Vec::new();
    for share in shares {
        ready.extend(share.await?);
    }
    Ok(ready)
}

/// Runs CPU-heavy work (rendering and encoding a share of a round) on the render threads.
fn on_render_threads<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    match render_pool() {
        Some(pool) => pool.spawn(async move { work() }),
        None => tokio::task::spawn_blocking(work),
    }
}

/// Threads a round's messages are rendered on at once: one per core, at most four.
fn render_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// How much less the render threads weigh with the kernel's scheduler than Enlace's other
/// threads (a nice value; each step is about 10 % of CPU share against a busy neighbour).
const RENDER_NICENESS: i32 = 10;

/// The render threads: a runtime of their own whose threads yield the processor to the threads
/// that carry SMTP traffic (and to the SMTP server, when it shares the machine). Rendering
/// runs in bursts a round at a time, and at equal priority a burst on every core held each
/// SMTP reply back until it ended; at a lower priority it fills the time they leave. `None`
/// if the runtime cannot be built (the blocking pool is used then).
fn render_pool() -> Option<&'static tokio::runtime::Runtime> {
    static POOL: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(render_threads())
            .thread_name("enlace-render")
            .on_thread_start(lower_priority)
            .build()
            .map_err(|e| tracing::warn!(error = %e, "could not start the render threads"))
            .ok()
    })
    .as_ref()
}

/// Lowers the calling thread's scheduling priority by `RENDER_NICENESS` (Linux only, where the
/// nice value is per thread; elsewhere it would apply to the whole process).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: nice(2) takes an integer and touches no memory of ours; on Linux it changes
        // the calling thread's nice value. Raising it never needs a privilege, so it does not
        // fail short of the ceiling (19), where it stays.
        unsafe { libc::nice(RENDER_NICENESS) };
    }
}

impl Engine {
    /// The message for one recipient, rendered, built, encoded and signed; or why none goes.
    fn decide(
        &self,
        newsletter_id: &str,
        prepared: Option<&PreparedNewsletter>,
        subscriber: Option<&subscribers::Subscriber>,
        suppressed: bool,
        bodies: &mut BodyEncoder,
    ) -> Result<PreparedMail, Verdict> {
        let (prepared, subscriber) = match (prepared, subscriber) {
            (None, _) => return Err(Verdict::Skipped("newsletter deleted")),
            (_, None) => return Err(Verdict::Skipped("subscriber erased")),
            (Some(p), Some(s)) => (p, s),
        };
        if let Some(why) = super::recheck::ineligible_because(subscriber.status.as_str()) {
            return Err(Verdict::Skipped(why));
        }
        if suppressed {
            return Err(Verdict::Skipped("suppressed"));
        }
        self.render(newsletter_id, prepared, subscriber)
            .and_then(|mail| {
                self.mailer
                    .prepare(mail, bodies)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })
            .map_err(|e| {
                // The content failed for this person (counted towards pausing the send), or
                // building the message around it did.
                let template = e.downcast_ref::<minijinja::Error>().is_some();
                tracing::error!(newsletter_id, subscriber_id = %subscriber.id, template, error = format!("{e:#}"), "rendering a newsletter message failed");
                Verdict::Failed(if template {
                    format!("{}{e:#}", super::guard::RENDER_FAILURE)
                } else {
                    format!("building the message: {e:#}")
                })
            })
    }

    pub(super) fn render(
        &self,
        newsletter_id: &str,
        prepared: &PreparedNewsletter,
        subscriber: &subscribers::Subscriber,
    ) -> anyhow::Result<OutgoingMail> {
        let language = Language::parse(&subscriber.language).unwrap_or_default();
        let manage = self.tokens.sign(subscriber.id.parse()?);
        // `?from=` names the newsletter (the same for every recipient), so an unsubscribe or a
        // preference change made through these links is counted in its results.
        let unsubscribe_url = format!(
            "{}/unsubscribe/{manage}?from={newsletter_id}",
            self.base_url
        );
        let preferences_url = format!(
            "{}/preferences/{manage}?from={newsletter_id}",
            self.base_url
        );
        let attributes: serde_json::Value =
            serde_json::from_str(&subscriber.attributes).unwrap_or_default();
        let archive_url = prepared
            .archived
            .then(|| crate::email::newsletter::page_url(&self.base_url, language, newsletter_id));
        let rendered = prepared.compiled.render_with_link(
            &MergeData {
                name: subscriber.name.as_deref(),
                email: &subscriber.email,
                language,
                attributes: &attributes,
                unsubscribe_url: &unsubscribe_url,
                preferences_url: &preferences_url,
            },
            &self.templates,
            archive_url.as_deref(),
        )?;
        let from_domain = prepared
            .from
            .as_ref()
            .unwrap_or(&self.mailer.from)
            .email
            .domain()
            .to_owned();
        Ok(OutgoingMail {
            to_email: subscriber.email.clone(),
            to_name: subscriber.name.clone(),
            language,
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            unsubscribe_url,
            from: prepared.from.clone(),
            reply_to: prepared.reply_to.clone(),
            list_id: Some(self.list_id.clone()),
            // The same for every attempt at this delivery, so a copy sent twice is recognisable.
            message_id: Some(format!("<{newsletter_id}.{}@{from_domain}>", subscriber.id)),
        })
    }
}

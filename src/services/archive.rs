//! The public archive: the newsletters staff chose to publish (`archived`), from the moment their
//! messages start going out, each as a copy rendered for nobody (`CompiledNewsletter::
//! render_public`): listed per language, newest first, with a feed; and staff publishing or
//! withdrawing one, recorded in the audit log. A withdrawn newsletter is gone at once: every
//! request reads the database, and the copies kept in memory are only ever found through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use chrono::NaiveDateTime;

use crate::auth::Principal;
use crate::clicks::LinkSigner;
use crate::db::archive::{self as store, Listed};
use crate::db::ids::NewsletterId;
use crate::db::newsletters::{self as newsletters, Newsletter};
use crate::db::{self, read_snapshot, Db, DbError};
use crate::domain::Language;
use crate::email::newsletter::{self as content, CompiledNewsletter, PublicLinks};
use crate::email::Templates;

/// Newsletters on one page of the list.
pub const PAGE_SIZE: i64 = 20;
/// The highest page number asked for that is answered (a page past the end is empty).
pub const MAX_PAGE: i64 = 1_000;
/// Entries in a feed: the newest ones.
pub const FEED_SIZE: i64 = 20;
/// Public copies kept in memory at most, and their total size: past either, the cache starts over.
const CACHE_ENTRIES: usize = 128;
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Characters of a feed entry's summary when the newsletter has no preheader.
const SUMMARY_CHARS: usize = 280;

/// What rendering a public copy needs: the partials, where the public URL is, and the key that
/// signs counted links (so the copy has exactly the links of the messages).
#[derive(Clone, Copy)]
pub struct Publishing<'a> {
    pub templates: &'a Arc<Templates>,
    pub links: &'a LinkSigner,
    pub base_url: &'a str,
}

/// One language's public copy of a newsletter.
#[derive(Debug)]
pub struct PublicCopy {
    pub subject: String,
    /// The whole HTML document, with the archive's footer in the page's language.
    pub html: String,
    /// A line or two for feed readers: the version's preheader, or the start of its text.
    pub summary: String,
    /// The language the version is written in: another than the page's when there is no
    /// version in the page's language.
    pub written_in: Language,
    /// Whether the other language has a version of its own.
    pub other_has_version: bool,
}

/// A public newsletter with its copies in both languages (in the order of `Language::ALL`).
#[derive(Debug)]
pub struct Published {
    pub id: NewsletterId,
    /// When its messages started going out: the date the archive shows.
    pub sent_at: NaiveDateTime,
    copies: [PublicCopy; 2],
}

impl Published {
    pub fn copy(&self, language: Language) -> &PublicCopy {
        &self.copies[language as usize]
    }

    fn bytes(&self) -> usize {
        self.copies
            .iter()
            .map(|c| c.html.len() + c.subject.len() + c.summary.len())
            .sum()
    }
}

/// Public copies by newsletter id, each with the `updated_at` it was rendered from; compiled one
/// at a time, so a page hit hard while its copy is being made waits for it instead of making it
/// again on every core.
#[derive(Default)]
pub struct ArchiveCache {
    copies: Mutex<HashMap<String, (NaiveDateTime, Arc<Published>)>>,
    compiling: tokio::sync::Mutex<()>,
}

impl ArchiveCache {
    fn get(&self, id: &NewsletterId, updated_at: NaiveDateTime) -> Option<Arc<Published>> {
        let copies = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        copies
            .get(id.as_str())
            .filter(|(at, _)| *at == updated_at)
            .map(|(_, published)| published.clone())
    }

    fn put(&self, updated_at: NaiveDateTime, published: Arc<Published>) {
        let mut copies = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        let held: usize = copies.values().map(|(_, p)| p.bytes()).sum();
        if copies.len() >= CACHE_ENTRIES || held + published.bytes() > CACHE_BYTES {
            copies.clear();
        }
        copies.insert(published.id.to_string(), (updated_at, published));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Not archived, not sent, or no such newsletter: one answer for all three.
    #[error("no such newsletter in the archive")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for ArchiveError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// A page of the list (1 is the newest), and whether an older page follows.
pub struct ListPage {
    pub items: Vec<Arc<Published>>,
    pub more: bool,
}

/// One page of public newsletters, newest first. A newsletter whose copy cannot be rendered any
/// more (a field it used was removed since) is left out, and logged.
pub async fn list(
    db: &Db,
    cache: &ArchiveCache,
    publishing: Publishing<'_>,
    page: i64,
    size: i64,
) -> Result<ListPage, ArchiveError> {
    let offset = (page.clamp(1, MAX_PAGE) - 1) * size;
    let mut listed = db
        .run(move |conn| store::list_public(conn, offset, size + 1).map_err(DbError::from))
        .await?;
    let more = listed.len() as i64 > size;
    listed.truncate(size as usize);
    let mut items = Vec::with_capacity(listed.len());
    for entry in listed {
        let id = entry.id.clone();
        match published(db, cache, publishing, entry).await {
            Ok(Some(found)) => items.push(found),
            // Withdrawn between the two reads.
            Ok(None) => {}
            Err(ArchiveError::Internal(e)) => {
                tracing::error!(newsletter_id = %id.as_str(), error = format!("{e:#}"), "an archived newsletter could not be rendered");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(ListPage { items, more })
}

/// A public newsletter with its copies; `NotFound` for anything that is not public.
pub async fn find(
    db: &Db,
    cache: &ArchiveCache,
    publishing: Publishing<'_>,
    id: NewsletterId,
) -> Result<Arc<Published>, ArchiveError> {
    // Only what tells whether the kept copy is still its own: the content is read on a miss.
    let found = db
        .run(move |conn| store::find_public_listed(conn, &id).map_err(DbError::from))
        .await?
        .ok_or(ArchiveError::NotFound)?;
    published(db, cache, publishing, found)
        .await?
        .ok_or(ArchiveError::NotFound)
}

/// The copies of a listed newsletter: kept ones when it has not changed, else rendered anew from
/// the stored row (read again, so a newsletter withdrawn meanwhile is `None`).
async fn published(
    db: &Db,
    cache: &ArchiveCache,
    publishing: Publishing<'_>,
    listed: Listed,
) -> Result<Option<Arc<Published>>, ArchiveError> {
    if let Some(kept) = cache.get(&listed.id, listed.updated_at) {
        return Ok(Some(kept));
    }
    let _one_at_a_time = cache.compiling.lock().await;
    if let Some(kept) = cache.get(&listed.id, listed.updated_at) {
        return Ok(Some(kept));
    }
    let id = listed.id.clone();
    let read = db
        .run(move |conn| {
            read_snapshot(conn, |conn| -> Result<_, DbError> {
                let Some(newsletter) = store::find_public(conn, &id)? else {
                    return Ok(None);
                };
                let declared: Vec<String> = db::interests::list_field_declarations(conn)?
                    .into_iter()
                    .map(|f| f.key)
                    .collect();
                Ok(Some((newsletter, declared)))
            })
        })
        .await?;
    let Some((newsletter, declared)) = read else {
        return Ok(None);
    };
    let updated_at = newsletter.updated_at;
    let (templates, links, base_url) = (
        publishing.templates.clone(),
        publishing.links.clone(),
        publishing.base_url.to_owned(),
    );
    let rendered = tokio::task::spawn_blocking(move || {
        render(&newsletter, &declared, &templates, &links, &base_url)
    })
    .await
    .context("rendering an archived newsletter")??;
    let rendered = Arc::new(rendered);
    cache.put(updated_at, rendered.clone());
    Ok(Some(rendered))
}

/// Compiles the content the messages were made from (with their counted links) and renders the
/// public copy for each language.
fn render(
    newsletter: &Newsletter,
    declared: &[String],
    templates: &Templates,
    links: &LinkSigner,
    base_url: &str,
) -> anyhow::Result<Published> {
    let mail = crate::sending::prepare::mail_content(newsletter, links)?;
    // Every field the content names counts as declared: the copy gives each an empty value
    // anyway, so a field deleted since the send does not take the newsletter off the archive.
    let mut declared = declared.to_vec();
    declared.extend(fields_named(&mail));
    let compiled = CompiledNewsletter::compile(
        &mail,
        &declared,
        templates.org(),
        templates.postal_address(),
    )
    .map_err(|errors| anyhow::anyhow!("its content does not pass the checks: {errors:?}"))?;
    let id = newsletter.id.as_str();
    let copies = Language::ALL.map(|language| -> anyhow::Result<PublicCopy> {
        let page_url = content::page_url(base_url, language, id);
        let list_url = content::list_url(base_url, language);
        let links = PublicLinks {
            page_url: &page_url,
            list_url: &list_url,
        };
        let copy = compiled.render_public(language, &links, templates)?;
        let summary = match compiled.preheader(language) {
            Some(preheader) => preheader.to_owned(),
            None => summary_of(&copy.text),
        };
        let other = Language::ALL.into_iter().find(|l| *l != language);
        Ok(PublicCopy {
            subject: copy.subject,
            html: copy.html,
            summary,
            written_in: compiled.version_language(language),
            other_has_version: other.is_some_and(|o| compiled.version_language(o) == o),
        })
    });
    let [en, es] = copies;
    Ok(Published {
        id: newsletter.id.clone(),
        sent_at: newsletter.started_at.unwrap_or(newsletter.updated_at),
        copies: [en?, es?],
    })
}

/// The custom fields a newsletter's templates name (`attributes.city`, `attributes['city']`).
fn fields_named(content: &content::NewsletterContent) -> Vec<String> {
    let pattern =
        regex_lite::Regex::new(r#"attributes(?:\.([A-Za-z0-9_]+)|\[\s*['"]([^'"]+)['"]\s*\])"#)
            .expect("a valid pattern");
    let versions = std::iter::once(&content.default).chain(content.variants.values());
    let mut found: Vec<String> = versions
        .flat_map(|v| [Some(&v.subject), Some(&v.html), v.text.as_ref()])
        .flatten()
        .flat_map(|source| {
            pattern
                .captures_iter(source)
                .filter_map(|c| c.get(1).or(c.get(2)).map(|m| m.as_str().to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The start of a text on one line, cut at a word within `SUMMARY_CHARS`.
fn summary_of(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= SUMMARY_CHARS {
        return flat;
    }
    let cut: String = flat.chars().take(SUMMARY_CHARS).collect();
    let at_word = cut.rfind(' ').map_or(cut.as_str(), |at| &cut[..at]);
    format!("{at_word}…")
}

/// Publishes a newsletter in the archive (`archived`) or withdraws it, in any state; it is
/// public while its send has started. Setting what is already set changes nothing and records
/// nothing.
pub async fn set_archived(
    db: &Db,
    actor: &Principal,
    ip: Option<&str>,
    id: NewsletterId,
    archived: bool,
) -> Result<(), ArchiveError> {
    let (actor, ip) = (actor.clone(), ip.map(str::to_owned));
    db.transaction(move |conn| -> Result<(), ArchiveError> {
        let n = newsletters::find_newsletter(conn, &id)?.ok_or(ArchiveError::NotFound)?;
        if n.archived == archived {
            return Ok(());
        }
        // Later than the version it replaces even if the clock stepped back: what was compiled
        // from that version (for sending, for the archive) is then never taken for this one.
        let now = db::now().max(n.updated_at + chrono::Duration::microseconds(1));
        if !store::set_archived(conn, &id, archived, now)? {
            return Err(ArchiveError::NotFound);
        }
        let action = if archived {
            "newsletter.archive"
        } else {
            "newsletter.withdraw"
        };
        actor.audit(conn, ip.as_deref(), action, "newsletter", Some(&id))?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_a_content_names_are_found_in_every_version() {
        use crate::email::newsletter::{Content, NewsletterContent};
        let version = |subject: &str, html: &str| Content {
            subject: subject.into(),
            html: html.into(),
            text: Some("{{ attributes['home city'] }}".into()),
            preheader: None,
        };
        let content = NewsletterContent {
            default: version(
                "{{ attributes.city }}",
                "{% if attributes.zone %}x{% endif %}",
            ),
            variants: [(
                Language::Es,
                version("{{ attributes[\"size\"] }}", "{{ name }}"),
            )]
            .into(),
        };
        assert_eq!(
            fields_named(&content),
            ["city", "home city", "size", "zone"]
        );
    }

    #[test]
    fn a_summary_is_one_line_cut_at_a_word() {
        assert_eq!(summary_of("Hello\n\n  there"), "Hello there");
        let long = "word ".repeat(100);
        let summary = summary_of(&long);
        assert!(summary.ends_with("word…"), "{summary}");
        assert!(summary.chars().count() <= SUMMARY_CHARS + 1);
    }
}

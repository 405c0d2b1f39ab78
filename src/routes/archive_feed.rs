//! The public archive's Atom feed (RFC 4287): the newest published newsletters of one language,
//! each entry a link to its page with a summary that names nobody.

use std::sync::Arc;

use atom_syndication as atom;
use chrono::{NaiveDateTime, TimeZone};

use crate::domain::Language;
use crate::email::newsletter::{list_url, page_url};
use crate::email::Templates;
use crate::services::archive::Published;

fn utc(at: NaiveDateTime) -> atom::FixedDateTime {
    chrono::Utc.from_utc_datetime(&at).fixed_offset()
}

fn text(value: &str, lang: Option<Language>) -> atom::Text {
    atom::Text {
        lang: lang.map(|l| l.as_str().to_owned()),
        ..atom::Text::plain(value)
    }
}

fn link(rel: &str, href: String, mime_type: &str, hreflang: Language) -> atom::Link {
    atom::Link {
        rel: rel.to_owned(),
        href,
        mime_type: Some(mime_type.to_owned()),
        hreflang: Some(hreflang.as_str().to_owned()),
        ..Default::default()
    }
}

/// The feed of `items` (newest first) in `language`, below the public URL `base`.
pub fn feed(
    templates: &Templates,
    base: &str,
    language: Language,
    items: &[Arc<Published>],
) -> atom::Feed {
    let list = list_url(base, language);
    let feed_url = format!("{list}/feed.atom");
    let entries = items
        .iter()
        .map(|n| {
            let copy = n.copy(language);
            // Written in another language than the feed's: said so on its title and summary.
            let other = (copy.written_in != language).then_some(copy.written_in);
            let id = uuid::Uuid::parse_str(n.id.as_str()).unwrap_or_default();
            atom::Entry {
                // One per newsletter and language, the same at every request.
                id: format!(
                    "urn:uuid:{}",
                    uuid::Uuid::new_v5(&id, language.as_str().as_bytes())
                ),
                title: text(&copy.subject, other),
                updated: utc(n.sent_at),
                published: Some(utc(n.sent_at)),
                links: vec![link(
                    "alternate",
                    page_url(base, language, n.id.as_str()),
                    "text/html",
                    copy.written_in,
                )],
                summary: Some(text(&copy.summary, other)),
                ..Default::default()
            }
        })
        .collect();
    atom::Feed {
        title: atom::Text::plain(templates.text(language, "pages.archive.feed_title")),
        subtitle: Some(atom::Text::plain(
            templates.text(language, "pages.archive.feed_subtitle"),
        )),
        id: feed_url.clone(),
        updated: items
            .first()
            .map_or_else(|| utc(crate::db::now()), |n| utc(n.sent_at)),
        authors: vec![atom::Person {
            name: templates.org().to_owned(),
            ..Default::default()
        }],
        links: vec![
            link("self", feed_url, "application/atom+xml", language),
            link("alternate", list, "text/html", language),
        ],
        lang: Some(language.as_str().to_owned()),
        entries,
        ..Default::default()
    }
}

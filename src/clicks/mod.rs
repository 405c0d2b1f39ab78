//! Click counting, off unless staff switch it on for a newsletter: its links are sent as links to
//! Enlace's redirect, `/l/{newsletter}/{place}.{tag}`, the same for every recipient, so a click
//! says which newsletter and which link and never who. The counts are gathered in memory and
//! added to `newsletter_clicks` in batches ([`ClickCounter`]); link scanners are told apart
//! ([`scanners`]) and counted separately.
//!
//! A link's place is its order among the newsletter's distinct countable links (see [`links`]),
//! read from the newsletter's own content, so nothing is written when a newsletter is sent. The
//! tag is two MACs with the service key: one over the newsletter and the place, checked before
//! anything is read, and one over the target address too, so a link only ever leads where the
//! newsletter it was sent in pointed (no open redirect, and a draft changed after a test copy
//! went out does not send that copy's links elsewhere).

mod counter;
pub mod scanners;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use counter::{ClickCounter, Kind};

use crate::email::newsletter::{text_from_html, Content, NewsletterContent};

const PLACE_PURPOSE: &[u8] = b"enlace/click-place/v1";
const TARGET_PURPOSE: &[u8] = b"enlace/click-target/v1";
const HALF: usize = 8;

/// At most this many distinct links of a newsletter are counted; the rest are sent as written.
pub const MAX_LINKS: usize = 200;

/// The longest link address that is counted.
const MAX_URL_LEN: usize = 2_000;

/// Signs and checks redirect links with the service key (and the previous keys of a rotation,
/// so links in messages already sent keep working).
#[derive(Clone)]
pub struct LinkSigner {
    keys: Vec<Vec<u8>>,
    base_url: String,
}

impl LinkSigner {
    pub fn new(key: &[u8], previous: &[Vec<u8>], base_url: &str) -> Self {
        let mut keys = vec![key.to_vec()];
        keys.extend(previous.iter().cloned());
        Self {
            keys,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    fn mac(key: &[u8], purpose: &[u8], newsletter_id: &str, place: u32) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(purpose);
        mac.update(newsletter_id.as_bytes());
        mac.update(&place.to_be_bytes());
        mac
    }

    /// The redirect link for the link at `place` of a newsletter, leading to `target`.
    pub fn url(&self, newsletter_id: &str, place: u32, target: &str) -> String {
        let key = &self.keys[0];
        let first = Self::mac(key, PLACE_PURPOSE, newsletter_id, place)
            .finalize()
            .into_bytes();
        let mut second = Self::mac(key, TARGET_PURPOSE, newsletter_id, place);
        second.update(target.as_bytes());
        let second = second.finalize().into_bytes();
        let mut tag = [0u8; 2 * HALF];
        tag[..HALF].copy_from_slice(&first[..HALF]);
        tag[HALF..].copy_from_slice(&second[..HALF]);
        format!(
            "{}/l/{newsletter_id}/{place}.{}",
            self.base_url,
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The place and tag in a link's last path segment (`{place}.{tag}`), when it was signed
    /// for this newsletter by one of the keys. Nothing is read to decide this.
    pub fn check_place(&self, newsletter_id: &str, segment: &str) -> Option<(u32, Tag)> {
        let (place, tag) = segment.split_once('.')?;
        if place.len() > 4 || tag.len() != 22 {
            return None;
        }
        let place: u32 = place.parse().ok()?;
        let raw = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let tag: [u8; 2 * HALF] = raw.try_into().ok()?;
        let genuine = self.keys.iter().fold(false, |found, key| {
            let ok = Self::mac(key, PLACE_PURPOSE, newsletter_id, place)
                .verify_truncated_left(&tag[..HALF])
                .is_ok();
            found | ok
        });
        genuine.then_some((place, Tag(tag)))
    }

    /// Whether the link was signed for `target` (the address now at its place).
    pub fn check_target(&self, newsletter_id: &str, place: u32, target: &str, tag: &Tag) -> bool {
        self.keys.iter().fold(false, |found, key| {
            let mut mac = Self::mac(key, TARGET_PURPOSE, newsletter_id, place);
            mac.update(target.as_bytes());
            found | mac.verify_truncated_left(&tag.0[HALF..]).is_ok()
        })
    }
}

/// A checked link's tag, kept to check its target once that is read.
pub struct Tag([u8; 2 * HALF]);

/// Whether a link's address is counted: an absolute http(s) address with no merge field in it
/// (a link made for each person is never rewritten: the redirect would have to name them).
fn countable(href: &str) -> bool {
    let lower = href.get(..8).unwrap_or(href).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && href.len() <= MAX_URL_LEN
        && !href.contains("{{")
        && !href.contains("{%")
        && !href.contains("{#")
        && !href.chars().any(|c| c.is_whitespace() || c.is_control())
        && url::Url::parse(href).is_ok()
}

/// An `href` as written in the HTML, as the address a browser follows: `&amp;` stands for `&`.
/// Other character references are rare in addresses; a link holding one is not counted.
fn decoded(raw: &str) -> Option<String> {
    let decoded = raw.replace("&amp;", "&");
    (!decoded.contains('&') || !decoded.split('&').skip(1).any(|s| s.contains(';')))
        .then_some(decoded)
}

/// Each `<a href>` and `<area href>` of an HTML template, in order, as written and decoded.
fn hrefs(html: &str) -> Vec<(String, Option<String>)> {
    let found = std::cell::RefCell::new(Vec::new());
    let result = lol_html::rewrite_str(
        html,
        lol_html::RewriteStrSettings {
            element_content_handlers: vec![lol_html::element!("a[href], area[href]", |el| {
                if let Some(raw) = el.get_attribute("href") {
                    let trimmed = raw.trim().to_owned();
                    let decoded = decoded(&trimmed);
                    found.borrow_mut().push((trimmed, decoded));
                }
                Ok(())
            })],
            ..lol_html::RewriteStrSettings::new()
        },
    );
    if result.is_err() {
        return Vec::new();
    }
    found.into_inner()
}

/// The distinct countable link addresses of a newsletter, in order of first appearance (the
/// default version's HTML, then each language version's): a link's place is its index here.
pub fn links(content: &NewsletterContent) -> Vec<String> {
    let mut seen = Vec::new();
    for version in std::iter::once(&content.default).chain(content.variants.values()) {
        for (_, decoded) in hrefs(&version.html) {
            if let Some(url) = decoded.filter(|u| countable(u)) {
                if !seen.contains(&url) && seen.len() < MAX_LINKS {
                    seen.push(url);
                }
            }
        }
    }
    seen
}

/// The content with each countable link of its HTML sent through the redirect. The plain-text
/// part keeps every address as written (derived from the HTML before the rewriting when staff
/// gave none), so a reader of the text sees where each link goes.
pub fn rewrite(
    content: &NewsletterContent,
    newsletter_id: &str,
    signer: &LinkSigner,
) -> NewsletterContent {
    let places = links(content);
    let redirect = |href: &str| -> Option<String> {
        let url = decoded(href.trim())?;
        let place = places.iter().position(|p| *p == url)?;
        Some(signer.url(newsletter_id, place as u32, &url))
    };
    let version = |c: &Content| -> Content {
        let html = lol_html::rewrite_str(
            &c.html,
            lol_html::RewriteStrSettings {
                element_content_handlers: vec![lol_html::element!("a[href], area[href]", |el| {
                    if let Some(to) = el.get_attribute("href").and_then(|h| redirect(&h)) {
                        el.set_attribute("href", &to)?;
                    }
                    Ok(())
                })],
                ..lol_html::RewriteStrSettings::new()
            },
        )
        .unwrap_or_else(|_| c.html.clone());
        Content {
            subject: c.subject.clone(),
            text: Some(c.text.clone().unwrap_or_else(|| text_from_html(&c.html))),
            html,
            preheader: c.preheader.clone(),
        }
    };
    NewsletterContent {
        default: version(&content.default),
        variants: content
            .variants
            .iter()
            .map(|(language, c)| (*language, version(c)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::Language;

    fn content(html: &str, es: Option<&str>) -> NewsletterContent {
        let version = |html: &str| Content {
            subject: "S".into(),
            html: html.into(),
            text: None,
            preheader: None,
        };
        NewsletterContent {
            default: version(html),
            variants: es
                .map(|h| BTreeMap::from([(Language::Es, version(h))]))
                .unwrap_or_default(),
        }
    }

    fn signer() -> LinkSigner {
        LinkSigner::new(b"k", &[], "https://lists.example.org/")
    }

    #[test]
    fn countable_links_are_rewritten_and_personal_ones_left_alone() {
        let html = r#"<p><a href="https://example.org/a?x=1&amp;y=2">A</a>
<a href="{{ unsubscribe_url }}">U</a> <a href="https://example.org/{{ attributes.city }}">C</a>
<a href="mailto:hola@example.org">M</a> <a href=" https://example.org/b ">B</a>
{% if name %}<a href="https://example.org/a?x=1&amp;y=2">A again</a>{% endif %}</p>"#;
        let c = content(html, Some(r#"<a href="https://example.org/es">ES</a>"#));
        assert_eq!(
            links(&c),
            [
                "https://example.org/a?x=1&y=2",
                "https://example.org/b",
                "https://example.org/es"
            ]
        );
        let out = rewrite(&c, "n1", &signer());
        let first = signer().url("n1", 0, "https://example.org/a?x=1&y=2");
        assert!(
            first.starts_with("https://lists.example.org/l/n1/0."),
            "{first}"
        );
        assert_eq!(
            out.default.html.matches(&first).count(),
            2,
            "{}",
            out.default.html
        );
        assert!(out.default.html.contains(r#"href="{{ unsubscribe_url }}""#));
        assert!(out
            .default
            .html
            .contains(r#"href="https://example.org/{{ attributes.city }}""#));
        assert!(out
            .default
            .html
            .contains(r#"href="mailto:hola@example.org""#));
        assert!(out.default.html.contains("{% if name %}"));
        assert!(out.variants[&Language::Es].html.contains(&signer().url(
            "n1",
            2,
            "https://example.org/es"
        )));
        // The text part keeps the real addresses.
        let text = out.default.text.unwrap();
        assert!(text.contains("https://example.org/b"), "{text}");
        assert!(!text.contains("/l/n1/"), "{text}");
    }

    #[test]
    fn a_tag_is_checked_for_its_newsletter_place_and_target() {
        let s = signer();
        let url = s.url("n1", 3, "https://example.org/x");
        let segment = url.rsplit('/').next().unwrap();
        let (place, tag) = s.check_place("n1", segment).unwrap();
        assert_eq!(place, 3);
        assert!(s.check_target("n1", 3, "https://example.org/x", &tag));
        assert!(!s.check_target("n1", 3, "https://evil.example/x", &tag));
        assert!(s.check_place("n2", segment).is_none());
        assert!(s
            .check_place("n1", &segment.replacen('3', "4", 1))
            .is_none());
        assert!(s.check_place("n1", "3.short").is_none());
        assert!(s.check_place("n1", "").is_none());
        // A rotated key still accepts what the previous one signed.
        let rotated = LinkSigner::new(b"new", &[b"k".to_vec()], "https://lists.example.org");
        let (_, tag) = rotated.check_place("n1", segment).unwrap();
        assert!(rotated.check_target("n1", 3, "https://example.org/x", &tag));
        let other = LinkSigner::new(b"other", &[], "https://lists.example.org");
        assert!(other.check_place("n1", segment).is_none());
    }
}

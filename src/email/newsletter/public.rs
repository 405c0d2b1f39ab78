//! The public copy of a newsletter, for the archive: rendered for nobody. No name, address or
//! attribute of anyone goes in (the merge fields take neutral values, so `{{ name or 'friend' }}`
//! reads "friend"), and no personal link: the footer says that each reader's own copy holds their
//! links instead of carrying anyone's unsubscribe or preferences token.

use minijinja::context;

use super::{body_start, insert_before_body_end, CompiledNewsletter, MergeData, Rendered};
use super::{Templates, RENDER_TIME_BUDGET};
use crate::domain::Language;

/// Where the public copy of one newsletter in one language links to.
pub struct PublicLinks<'a> {
    /// The copy's own archive page: what `{{ unsubscribe_url }}` and `{{ preferences_url }}`
    /// lead to in it (at the note about each reader's own links), since they name nobody here.
    pub page_url: &'a str,
    /// The archive's list in the page's language.
    pub list_url: &'a str,
}

/// The archive's list in `language`, below the public URL `base_url`.
pub fn list_url(base_url: &str, language: Language) -> String {
    format!("{base_url}/archive/{}", language.as_str())
}

/// A newsletter's archive page in `language`: the "view in your browser" link of its messages to
/// readers of that language (the same for all of them: no token, nothing about the reader).
pub fn page_url(base_url: &str, language: Language, newsletter_id: &str) -> String {
    format!("{base_url}/archive/{}/{newsletter_id}", language.as_str())
}

impl CompiledNewsletter {
    /// Whether readers of `language` get a version written for them (a variant).
    pub fn has_variant(&self, language: Language) -> bool {
        self.set(language) != "default"
    }

    /// The language of the version readers of `language` get: theirs when it has a variant;
    /// else the main content's, which is Spanish when only an English variant exists and
    /// English otherwise (the console writes the main content as the English one).
    pub fn version_language(&self, language: Language) -> Language {
        if self.has_variant(language) {
            language
        } else if self.has_variant(Language::En) && !self.has_variant(Language::Es) {
            Language::Es
        } else {
            Language::En
        }
    }

    /// The copy of the version readers of `language` get, as anyone may see it: subject, the
    /// HTML with the archive's footer (in `language`) and links that open outside the frame it
    /// is shown in, and the text without any footer.
    pub fn render_public(
        &self,
        language: Language,
        links: &PublicLinks<'_>,
        templates: &Templates,
    ) -> Result<Rendered, minijinja::Error> {
        let page_links = format!("{}#links", links.page_url);
        let nobody = serde_json::json!({});
        let data = MergeData {
            name: None,
            email: "",
            language,
            attributes: &nobody,
            unsubscribe_url: &page_links,
            preferences_url: &page_links,
        };
        let (subject, html, text) = self
            .render_parts(&data, RENDER_TIME_BUDGET)
            .map_err(|(_, e)| e)?;
        let footer = templates.render(
            "mail/archive_footer.html",
            language,
            context! { list_url => links.list_url },
        )?;
        Ok(Rendered {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            html: insert_before_body_end(&open_links_on_top(&html), &footer),
            text: text.trim().to_owned(),
        })
    }
}

/// Makes the copy's links open in the whole window, not in the frame the archive page shows it
/// in: `<base target="_top">` in its head (or where the document starts).
fn open_links_on_top(html: &str) -> String {
    const BASE: &str = "<base target=\"_top\">";
    let lower = html.to_ascii_lowercase();
    let after_tag = |name: &str| -> Option<usize> {
        let mut from = 0;
        while let Some(found) = lower[from..].find(name) {
            let after = from + found + name.len();
            match lower.as_bytes().get(after) {
                Some(b'>' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') => {
                    return lower[after..].find('>').map(|end| after + end + 1);
                }
                Some(_) => from = after,
                None => return None,
            }
        }
        None
    };
    let at = after_tag("<head").or_else(|| body_start(html)).or_else(|| {
        lower
            .trim_start()
            .starts_with("<!doctype")
            .then(|| after_tag("<!doctype"))?
    });
    match at {
        Some(at) => format!("{}{BASE}{}", &html[..at], &html[at..]),
        None => format!("{BASE}{html}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::newsletter::{Content, NewsletterContent};

    fn compiled(html: &str, es: Option<&str>) -> CompiledNewsletter {
        let mut variants = std::collections::BTreeMap::new();
        if let Some(es) = es {
            variants.insert(
                Language::Es,
                Content {
                    subject: "Hola {{ name }}".into(),
                    html: es.into(),
                    text: None,
                    preheader: None,
                },
            );
        }
        let content = NewsletterContent {
            default: Content {
                subject: "Hi {{ name or 'friend' }} in {{ attributes.city }}".into(),
                html: html.into(),
                text: None,
                preheader: Some("Soon".into()),
            },
            variants,
        };
        CompiledNewsletter::compile(&content, &["city".into()], "Org", Some("1 Main St")).unwrap()
    }

    #[test]
    fn the_public_copy_names_nobody_and_links_to_no_personal_page() {
        let templates = Templates::new("Org", Some("1 Main St")).unwrap();
        let c = compiled(
            "<html><head><title>x</title></head><body><p>Hi {{ name or 'friend' }} ({{ email }}) \
             of {{ attributes.city }}</p><a href=\"{{ unsubscribe_url }}\">leave</a></body></html>",
            None,
        );
        let links = PublicLinks {
            page_url: "https://x.org/archive/en/1",
            list_url: "https://x.org/archive/en",
        };
        let out = c.render_public(Language::En, &links, &templates).unwrap();
        assert_eq!(out.subject, "Hi friend in");
        assert!(out.html.contains("<p>Hi friend () of </p>"), "{}", out.html);
        assert!(
            out.html
                .contains("href=\"https:&#x2f;&#x2f;x.org&#x2f;archive&#x2f;en&#x2f;1#links\""),
            "{}",
            out.html
        );
        assert!(
            out.html
                .starts_with("<html><head><base target=\"_top\"><title>"),
            "{}",
            out.html
        );
        assert!(
            !out.html.contains("/unsubscribe/") && !out.html.contains("&#x2f;unsubscribe&#x2f;")
        );
        // The preheader is for inboxes: not in the copy.
        assert!(!out.html.contains("Soon"), "{}", out.html);
        assert!(
            out.html.contains("1 Main St") && out.html.contains("id=\"links\""),
            "{}",
            out.html
        );
        assert!(out.text.starts_with("Hi friend () of"), "{}", out.text);
    }

    #[test]
    fn each_language_gets_its_version_and_knows_its_language() {
        let only_default = compiled("<p>Hello</p>", None);
        assert_eq!(only_default.version_language(Language::Es), Language::En);
        assert!(!only_default.has_variant(Language::Es));
        let both = compiled("<p>Hello</p>", Some("<p>Hola</p>"));
        assert_eq!(both.version_language(Language::Es), Language::Es);
        assert_eq!(both.version_language(Language::En), Language::En);
    }

    #[test]
    fn links_open_on_top_whatever_the_document_looks_like() {
        for (html, expected) in [
            ("<HEAD lang=x><p>", "<HEAD lang=x><base target=\"_top\"><p>"),
            (
                "<!DOCTYPE html><p>x</p>",
                "<!DOCTYPE html><base target=\"_top\"><p>x</p>",
            ),
            (
                "<body><p>x</p></body>",
                "<body><base target=\"_top\"><p>x</p></body>",
            ),
            (
                "<header>x</header>",
                "<base target=\"_top\"><header>x</header>",
            ),
            ("<p>x</p>", "<base target=\"_top\"><p>x</p>"),
        ] {
            assert_eq!(open_links_on_top(html), expected);
        }
    }
}

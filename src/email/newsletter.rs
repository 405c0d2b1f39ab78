//! Newsletter content: what staff write (subject, HTML, optional text, per-language variants)
//! compiled once into templates, checked when saved, and rendered per recipient with merge fields
//! and the footer every newsletter carries.

use std::collections::{BTreeMap, HashSet};

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use super::Templates;
use crate::domain::Language;
use crate::error::FieldErrors;

mod public;
mod rules;

pub use public::{list_url, page_url, PublicLinks};

/// Longest subject accepted, in characters.
pub const MAX_SUBJECT_CHARS: usize = 300;
/// Longest preheader accepted, in characters.
pub const MAX_PREHEADER_CHARS: usize = 200;
/// Largest HTML or text body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 512 * 1024;
/// Template steps allowed per message. The language has no loops (see `rules`), so a template
/// takes about as many steps as it has expressions; this is a second bound, not the first.
const FUEL: u64 = 200_000;
/// Largest rendered subject, HTML or text of one message. A template that prints long merge
/// values many times can pass on the sample data tried when it is saved and exceed this for
/// someone whose values are long: that one message fails, instead of the memory filling.
pub const MAX_RENDERED_BYTES: usize = 2 * 1024 * 1024;
/// Time one message may take to render (all its parts). The rules keep a render to milliseconds;
/// this is the bound if that ever stops being true. Checked as the output is written.
pub const RENDER_TIME_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// One version of the content.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Content {
    pub subject: String,
    pub html: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The preview text mail apps show after the subject in the inbox list: plain text, not a
    /// template, put at the start of the HTML part where readers of the message do not see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preheader: Option<String>,
}

/// The default content, and the versions chosen by a subscriber's language when present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewsletterContent {
    pub default: Content,
    pub variants: BTreeMap<Language, Content>,
}

/// What a template may use besides the declared attributes (`attributes.<key>`).
const MERGE_FIELDS: &[&str] = &[
    "name",
    "email",
    "language",
    "attributes",
    "unsubscribe_url",
    "preferences_url",
    "org",
    "postal_address",
];

/// The person a message is rendered for.
pub struct MergeData<'a> {
    pub name: Option<&'a str>,
    pub email: &'a str,
    pub language: Language,
    /// The subscriber's attributes (a JSON object).
    pub attributes: &'a serde_json::Value,
    pub unsubscribe_url: &'a str,
    pub preferences_url: &'a str,
}

/// A rendered message body, footer included.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The templates of one newsletter, compiled once and shared by every send of it.
pub struct CompiledNewsletter {
    env: Environment<'static>,
    /// Which template set serves each language: a variant's, or the default one.
    sets: [&'static str; 2],
    /// The preheader of the version each language gets, in the order of `sets`.
    preheaders: [Option<String>; 2],
}

/// The version a language gets: its variant when there is one, else the default one (whole: a
/// variant without a preheader has none, even when the default version has one).
fn version_for(content: &NewsletterContent, language: Language) -> &Content {
    content.variants.get(&language).unwrap_or(&content.default)
}

fn set_for(content: &NewsletterContent, language: Language) -> &'static str {
    if content.variants.contains_key(&language) {
        language.as_str()
    } else {
        "default"
    }
}

/// Plain text derived from the HTML (merge tags survive as text, so it is still a template).
pub fn text_from_html(html: &str) -> String {
    html2text::config::plain()
        .string_from_read(html.as_bytes(), 78)
        .unwrap_or_default()
}

impl CompiledNewsletter {
    /// Compiles every version; a syntax error, a construct outside the merge-field language (see
    /// `rules`), an unknown merge field (or an undeclared attribute) or a template that fails on
    /// sample data is reported by field, before any send.
    pub fn compile(
        content: &NewsletterContent,
        declared: &[String],
        org: &str,
        postal_address: Option<&str>,
    ) -> Result<Self, FieldErrors> {
        let mut env = Environment::new();
        // A subscriber without some attribute gets an empty value, not a failed message.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        env.add_global("org", org.to_owned());
        env.add_global(
            "postal_address",
            Value::from(postal_address.map(str::to_owned)),
        );
        let mut errors = FieldErrors::new();
        let limits = rules::Limits {
            // Printed as `{'key': 'value', …}`: each declared value with its key and punctuation.
            attributes_bytes: declared
                .iter()
                .map(|key| key.len() as u64 + 8 + rules::MERGE_VALUE_BYTES)
                .sum::<u64>()
                .max(rules::MERGE_VALUE_BYTES),
            org_bytes: org.len() as u64,
            postal_address_bytes: postal_address.map_or(0, |p| p.len() as u64),
        };
        let declared: HashSet<&str> = declared.iter().map(String::as_str).collect();
        let versions = std::iter::once(("default", &content.default)).chain(
            content
                .variants
                .iter()
                .map(|(language, c)| (language.as_str(), c)),
        );
        for (set, version) in versions {
            let prefix = if set == "default" {
                String::new()
            } else {
                format!("variants.{set}.")
            };
            let text = version
                .text
                .clone()
                .unwrap_or_else(|| text_from_html(&version.html));
            for (part, name, source) in [
                (
                    "subject",
                    format!("{set}/subject.txt"),
                    version.subject.clone(),
                ),
                ("html", format!("{set}/body.html"), version.html.clone()),
                ("text", format!("{set}/body.txt"), text),
            ] {
                let field = format!("{prefix}{part}");
                let refused = rules::check(&source, &limits);
                if let Err(e) = env.add_template_owned(name.clone(), source) {
                    errors.add(field, describe(&e));
                    continue;
                }
                for message in refused {
                    errors.add(field.clone(), message);
                }
                let template = env.get_template(&name).expect("template just added");
                for variable in template.undeclared_variables(true) {
                    let known = match variable.split_once('.') {
                        Some(("attributes", key)) => declared.contains(key),
                        Some((top, _)) => MERGE_FIELDS.contains(&top) && top != "attributes",
                        None => MERGE_FIELDS.contains(&variable.as_str()),
                    };
                    if !known {
                        errors.add(field.clone(), format!(
                            "unknown merge field `{variable}` (use name, email, language, attributes.<declared field>, unsubscribe_url, preferences_url, org or postal_address)"
                        ));
                    }
                }
            }
        }
        let compiled = Self {
            env,
            sets: [
                set_for(content, Language::En),
                set_for(content, Language::Es),
            ],
            preheaders: [Language::En, Language::Es].map(|language| {
                let preheader = version_for(content, language).preheader.as_deref();
                preheader.map(|p| p.trim().to_owned())
            }),
        };
        if errors.is_empty() {
            // Runtime errors (a filter applied to the wrong type, fuel exhausted) show on sample data.
            let sample = serde_json::json!({});
            for language in Language::ALL {
                let data = MergeData {
                    name: Some("Ana"),
                    email: "ana@example.org",
                    language,
                    attributes: &sample,
                    unsubscribe_url: "https://example.org/unsubscribe/x",
                    preferences_url: "https://example.org/preferences/x",
                };
                if let Err((part, e)) = compiled.render_parts(&data, RENDER_TIME_BUDGET) {
                    let set = compiled.set(language);
                    let field = if set == "default" {
                        part.to_owned()
                    } else {
                        format!("variants.{set}.{part}")
                    };
                    errors.add(field, describe(&e));
                }
            }
        }
        if errors.is_empty() {
            Ok(compiled)
        } else {
            Err(errors)
        }
    }

    fn set(&self, language: Language) -> &'static str {
        self.sets[Self::index(language)]
    }

    fn index(language: Language) -> usize {
        match language {
            Language::En => 0,
            Language::Es => 1,
        }
    }

    /// The preheader of the version `language` gets, if it has one.
    pub fn preheader(&self, language: Language) -> Option<&str> {
        self.preheaders[Self::index(language)].as_deref()
    }

    /// Renders the subject, HTML and text for one person within `budget` (all three together).
    fn render_parts(
        &self,
        data: &MergeData<'_>,
        budget: std::time::Duration,
    ) -> Result<(String, String, String), (&'static str, minijinja::Error)> {
        let set = self.set(data.language);
        let ctx = minijinja::context! {
            // No name is an empty one: `{{ name or "friend" }}` reads well, and nothing prints "none".
            name => data.name.unwrap_or_default(),
            email => data.email,
            language => data.language.as_str(),
            attributes => Value::from_serialize(data.attributes),
            unsubscribe_url => data.unsubscribe_url,
            preferences_url => data.preferences_url,
        };
        let deadline = std::time::Instant::now() + budget;
        let render = |part: &'static str, name: String| {
            let mut out = Bounded {
                out: Vec::new(),
                deadline,
                stopped: None,
            };
            let rendered = self
                .env
                .get_template(&name)
                .and_then(|t| t.render_captured_to(&ctx, &mut out).map(drop));
            if let Err(e) = rendered {
                let e = match (e.kind(), out.stopped) {
                    (ErrorKind::WriteFailure, Some(Overrun::Size)) => Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "the message would be larger than {} MiB",
                            MAX_RENDERED_BYTES / (1024 * 1024)
                        ),
                    ),
                    (ErrorKind::WriteFailure, Some(Overrun::Time)) => Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "the message took longer than {} s to render",
                            budget.as_secs_f32()
                        ),
                    ),
                    _ => e,
                };
                return Err((part, e));
            }
            Ok(String::from_utf8(out.out)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
        };
        let subject = render("subject", format!("{set}/subject.txt"))?;
        let html = render("html", format!("{set}/body.html"))?;
        let text = render("text", format!("{set}/body.txt"))?;
        Ok((subject, html, text))
    }

    /// The message for one recipient, with the footer in their language.
    pub fn render(
        &self,
        data: &MergeData<'_>,
        templates: &Templates,
    ) -> Result<Rendered, minijinja::Error> {
        self.render_with_link(data, templates, None)
    }

    /// The message for one recipient, with the footer in their language and, for a newsletter
    /// in the public archive, a "view in your browser" link to its archived copy at the top of
    /// both parts (`view_online`: the same address for every reader of the language).
    pub fn render_with_link(
        &self,
        data: &MergeData<'_>,
        templates: &Templates,
        view_online: Option<&str>,
    ) -> Result<Rendered, minijinja::Error> {
        let (subject, html, text) = self
            .render_parts(data, RENDER_TIME_BUDGET)
            .map_err(|(_, e)| e)?;
        let (html_footer, text_footer) = templates.newsletter_footers(
            data.language,
            data.unsubscribe_url,
            data.preferences_url,
        )?;
        let (html, text) = match view_online {
            Some(url) => {
                let (html_link, text_link) = templates.view_online(data.language, url)?;
                (
                    insert_at_body_start(&html, &html_link),
                    format!("{}\n\n{text}", text_link.trim_end()),
                )
            }
            None => (html, text),
        };
        Ok(Rendered {
            // A subject is one line, whatever the template produced.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            html: insert_before_body_end(
                &insert_preheader(&html, self.preheader(data.language)),
                &html_footer,
            ),
            text: format!("{}\n\n{text_footer}\n", text.trim_end()),
        })
    }
}

/// Why a render was stopped.
#[derive(Clone, Copy)]
enum Overrun {
    Size,
    Time,
}

/// Rendered output, refused past `MAX_RENDERED_BYTES` or once the message's time is up.
struct Bounded {
    out: Vec<u8>,
    deadline: std::time::Instant,
    stopped: Option<Overrun>,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > MAX_RENDERED_BYTES {
            self.stopped = Some(Overrun::Size);
            return Err(std::io::Error::other("rendered message too large"));
        }
        if std::time::Instant::now() >= self.deadline {
            self.stopped = Some(Overrun::Time);
            return Err(std::io::Error::other("rendering took too long"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Puts the preheader, hidden, right after the opening `<body…>` tag when the HTML has one,
/// else at the very start: mail apps take the first text of a message as its preview line.
fn insert_preheader(html: &str, preheader: Option<&str>) -> String {
    let Some(preheader) = preheader else {
        return html.to_owned();
    };
    let block = format!(
        "<div style=\"display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all;\">{}</div>",
        minijinja::HtmlEscape(preheader)
    );
    insert_at_body_start(html, &block)
}

/// Puts `block` right after the opening `<body…>` tag when the HTML has one, else at the start.
fn insert_at_body_start(html: &str, block: &str) -> String {
    match body_start(html) {
        Some(at) => format!("{}{block}{}", &html[..at], &html[at..]),
        None => format!("{block}{html}"),
    }
}

/// Where the content of the body starts: just past the `>` of the first `<body` tag (`<body>`
/// or `<body` followed by attributes), if the HTML has one.
fn body_start(html: &str) -> Option<usize> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("<body") {
        let tag = from + found;
        let after = tag + "<body".len();
        match lower.as_bytes().get(after) {
            Some(b'>' | b'/') | Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') => {
                return lower[after..].find('>').map(|end| after + end + 1);
            }
            // `<bodyx…>` is another tag.
            Some(_) => from = after,
            None => return None,
        }
    }
    None
}

/// Puts the footer just before `</body>` when the HTML has one, else at the end.
fn insert_before_body_end(html: &str, footer: &str) -> String {
    let lower = html.to_ascii_lowercase();
    match lower.rfind("</body") {
        Some(at) => format!("{}{footer}\n{}", &html[..at], &html[at..]),
        None => format!("{html}\n{footer}"),
    }
}

/// A template error as staff can act on it: the problem and the line.
fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!(
            "{} (line {line})",
            e.detail().unwrap_or(&e.kind().to_string())
        ),
        None => e
            .detail()
            .map(str::to_owned)
            .unwrap_or_else(|| e.kind().to_string()),
    }
}

/// Checks the size and shape of one version's fields.
pub fn check_content(errors: &mut FieldErrors, prefix: &str, content: &Content) {
    let mut push = |field: &str, message: &str| errors.add(format!("{prefix}{field}"), message);
    let subject = content.subject.trim();
    if subject.is_empty() {
        push("subject", "is required");
    } else if subject.chars().count() > MAX_SUBJECT_CHARS || subject.chars().any(|c| c.is_control())
    {
        push("subject", "must be one line of at most 300 characters");
    }
    if content.html.trim().is_empty() {
        push("html", "is required");
    } else if content.html.len() > MAX_BODY_BYTES {
        push("html", "must be at most 512 KiB");
    } else if content.html.contains('\0') {
        // Not text any mail or database takes (PostgreSQL refuses NUL in text).
        push("html", "must not contain NUL characters");
    }
    if let Some(preheader) = &content.preheader {
        if preheader.trim().is_empty() {
            push(
                "preheader",
                "must not be empty (leave it out, or null, for none)",
            );
        } else if preheader.chars().count() > MAX_PREHEADER_CHARS
            || preheader.chars().any(|c| c.is_control())
        {
            push("preheader", "must be one line of at most 200 characters");
        }
    }
    if let Some(text) = &content.text {
        if text.trim().is_empty() {
            push(
                "text",
                "must not be empty (leave it out to derive it from the HTML)",
            );
        } else if text.len() > MAX_BODY_BYTES {
            push("text", "must be at most 512 KiB");
        } else if text.contains('\0') {
            push("text", "must not contain NUL characters");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(subject: &str, html: &str) -> NewsletterContent {
        NewsletterContent {
            default: Content {
                subject: subject.into(),
                html: html.into(),
                text: None,
                preheader: None,
            },
            variants: BTreeMap::new(),
        }
    }

    fn data<'a>(attrs: &'a serde_json::Value, language: Language) -> MergeData<'a> {
        MergeData {
            name: Some("Ana <b>"),
            email: "ana@example.org",
            language,
            attributes: attrs,
            unsubscribe_url: "https://x/u",
            preferences_url: "https://x/p",
        }
    }

    #[test]
    fn merge_fields_are_escaped_in_html_and_plain_in_text() {
        let templates = Templates::new("Org", Some("1 Main St")).unwrap();
        let c = content(
            "Hi {{ name }}",
            "<html><body><p>Hello {{ name }} from {{ attributes.city }}</p></body></html>",
        );
        let compiled =
            CompiledNewsletter::compile(&c, &["city".into()], "Org", Some("1 Main St")).unwrap();
        let attrs = serde_json::json!({"city": "Phoenix & Tucson"});
        let out = compiled
            .render(&data(&attrs, Language::Es), &templates)
            .unwrap();
        assert_eq!(out.subject, "Hi Ana <b>");
        assert!(
            out.html
                .contains("Hello Ana &lt;b&gt; from Phoenix &amp; Tucson"),
            "{}",
            out.html
        );
        assert!(
            out.text.contains("Hello Ana <b> from Phoenix & Tucson"),
            "{}",
            out.text
        );
        // minijinja escapes `/` in HTML too (`&#x2f;`), which browsers read back as `/`.
        let footer_at = out
            .html
            .find("x&#x2f;u")
            .expect("unsubscribe link in the HTML");
        assert!(
            footer_at < out.html.find("</body>").unwrap(),
            "footer inside the body"
        );
        assert!(out.text.contains("https://x/u") && out.text.contains("1 Main St"));
    }

    #[test]
    fn broken_templates_and_unknown_fields_are_reported_by_field() {
        let c = content("Hi {{ name", "<p>{{ nmae }} {{ attributes.zip }}</p>");
        let errors = CompiledNewsletter::compile(&c, &["city".into()], "Org", None)
            .err()
            .unwrap();
        assert!(errors.contains_key("subject"), "{errors:?}");
        let html = errors["html"].join(" ");
        assert!(
            html.contains("nmae") && html.contains("attributes.zip"),
            "{html}"
        );
        // Loops are not part of the language: refused by name, on each part they appear in.
        let c = content(
            "x",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        );
        let errors = CompiledNewsletter::compile(&c, &[], "Org", None)
            .err()
            .unwrap();
        assert!(errors["html"][0].contains("`for` loops"), "{errors:?}");
        assert!(errors["text"][0].contains("`for` loops"), "{errors:?}");
    }

    #[test]
    fn a_message_too_large_for_one_person_fails_alone() {
        // Empty on the sample data tried at save; 2.1 MB for someone with a 500-character value.
        let c = content("x", &"{{ attributes.bio }}".repeat(4400));
        let compiled = CompiledNewsletter::compile(&c, &["bio".into()], "Org", None).unwrap();
        let templates = Templates::new("Org", None).unwrap();
        let long = serde_json::json!({"bio": "b".repeat(500)});
        let e = compiled
            .render(&data(&long, Language::En), &templates)
            .err()
            .unwrap();
        assert!(e.to_string().contains("larger than 2 MiB"), "{e}");
        let short = serde_json::json!({"bio": "b"});
        assert!(compiled
            .render(&data(&short, Language::En), &templates)
            .is_ok());
    }

    #[test]
    fn a_render_past_its_time_stops_at_its_next_write() {
        let c = content("x", "<p>{{ name }}</p>");
        let compiled = CompiledNewsletter::compile(&c, &[], "Org", None).unwrap();
        let attrs = serde_json::json!({});
        let person = data(&attrs, Language::En);
        let (part, e) = compiled
            .render_parts(&person, std::time::Duration::ZERO)
            .err()
            .unwrap();
        assert_eq!(part, "subject");
        assert!(e.to_string().contains("took longer than 0 s"), "{e}");
        assert!(compiled.render_parts(&person, RENDER_TIME_BUDGET).is_ok());
    }

    #[test]
    fn variants_are_chosen_by_language() {
        let templates = Templates::new("Org", None).unwrap();
        let mut c = content("Hello", "<p>Hello</p>");
        c.variants.insert(
            Language::Es,
            Content {
                subject: "Hola".into(),
                html: "<p>Hola</p>".into(),
                text: Some("Hola, texto".into()),
                preheader: None,
            },
        );
        let compiled = CompiledNewsletter::compile(&c, &[], "Org", None).unwrap();
        let attrs = serde_json::json!({});
        let es = compiled
            .render(&data(&attrs, Language::Es), &templates)
            .unwrap();
        let en = compiled
            .render(&data(&attrs, Language::En), &templates)
            .unwrap();
        assert_eq!(
            (es.subject.as_str(), en.subject.as_str()),
            ("Hola", "Hello")
        );
        assert!(es.text.starts_with("Hola, texto"));
        assert!(
            en.text.starts_with("Hello"),
            "text derived from the HTML: {}",
            en.text
        );
    }

    const HIDDEN: &str = "<div style=\"display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all;\">";

    #[test]
    fn the_preheader_opens_the_body_hidden_and_escaped() {
        for (html, expected) in [
            (
                "<html><body class=\"x\">\n<p>Hi</p></body></html>",
                format!("<html><body class=\"x\">{HIDDEN}Soon &amp; &lt;b&gt;more&lt;&#x2f;b&gt;</div>\n<p>Hi</p>"),
            ),
            (
                "<HTML><BODY>Hi</BODY></HTML>",
                format!("<HTML><BODY>{HIDDEN}Soon &amp; &lt;b&gt;more&lt;&#x2f;b&gt;</div>Hi"),
            ),
            (
                "<p>No body tag</p>",
                format!("{HIDDEN}Soon &amp; &lt;b&gt;more&lt;&#x2f;b&gt;</div><p>No body tag</p>"),
            ),
            (
                "<bodyguard>x</bodyguard>",
                format!("{HIDDEN}Soon &amp; &lt;b&gt;more&lt;&#x2f;b&gt;</div><bodyguard>"),
            ),
        ] {
            let got = insert_preheader(html, Some("Soon & <b>more</b>"));
            assert!(got.starts_with(&expected), "{got}");
        }
        assert_eq!(insert_preheader("<p>x</p>", None), "<p>x</p>");
    }

    #[test]
    fn each_language_gets_the_preheader_of_its_version() {
        let templates = Templates::new("Org", None).unwrap();
        let attrs = serde_json::json!({});
        let mut c = content("Hello", "<body><p>Hello {{ name }}</p></body>");
        c.default.preheader = Some("What is new {{ name }}".into());
        let compiled = CompiledNewsletter::compile(&c, &[], "Org", None).unwrap();
        for language in Language::ALL {
            let out = compiled
                .render(&data(&attrs, language), &templates)
                .unwrap();
            // Not a template: merge tags stay as written.
            assert!(
                out.html.starts_with(&format!(
                    "<body>{HIDDEN}What is new {{{{ name }}}}</div><p>"
                )),
                "{}",
                out.html
            );
            assert!(!out.text.contains("What is new"), "{}", out.text);
        }
        // A Spanish version without a preheader has none: it is not the English one's.
        c.variants.insert(
            Language::Es,
            Content {
                subject: "Hola".into(),
                html: "<body><p>Hola</p></body>".into(),
                text: None,
                preheader: None,
            },
        );
        let compiled = CompiledNewsletter::compile(&c, &[], "Org", None).unwrap();
        let es = compiled
            .render(&data(&attrs, Language::Es), &templates)
            .unwrap();
        assert!(es.html.starts_with("<body><p>Hola</p>"), "{}", es.html);
        c.variants.get_mut(&Language::Es).unwrap().preheader = Some("Novedades".into());
        let compiled = CompiledNewsletter::compile(&c, &[], "Org", None).unwrap();
        let es = compiled
            .render(&data(&attrs, Language::Es), &templates)
            .unwrap();
        assert!(
            es.html
                .starts_with(&format!("<body>{HIDDEN}Novedades</div>")),
            "{}",
            es.html
        );
    }

    #[test]
    fn a_preheader_is_one_short_line() {
        let check = |preheader: &str| {
            let mut c = content("Hello", "<p>Hi</p>").default;
            c.preheader = Some(preheader.into());
            let mut errors = FieldErrors::new();
            check_content(&mut errors, "variants.es.", &c);
            errors
        };
        assert!(check(&"é".repeat(200)).is_empty());
        for bad in [
            "a".repeat(201),
            "one\ntwo".into(),
            "tab\there".into(),
            " ".into(),
        ] {
            let errors = check(&bad);
            assert!(!errors.is_empty(), "{bad:?}");
            assert!(
                serde_json::to_string(&errors)
                    .unwrap()
                    .contains("variants.es.preheader"),
                "{bad:?}"
            );
        }
    }
}

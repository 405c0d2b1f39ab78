//! Pages and messages in English and Spanish: minijinja templates (auto-escaped HTML) plus one
//! catalog of wording per language, all compiled into the binary.

use std::collections::HashMap;
use std::sync::OnceLock;

use anyhow::Context;
use minijinja::value::Kwargs;
use minijinja::{context, Environment, UndefinedBehavior, Value};

use crate::domain::Language;

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

/// Every template the service renders; a test renders each one in both languages.
pub const TEMPLATES: &[(&str, &str)] = embedded![
    "pages/base.html",
    "pages/thanks.html",
    "pages/form_errors.html",
    "pages/confirm.html",
    "pages/confirmed.html",
    "pages/already_confirmed.html",
    "pages/link_invalid.html",
    "pages/link_expired.html",
    "pages/renewed.html",
    "pages/unsubscribe.html",
    "pages/unsubscribed.html",
    "pages/preferences.html",
    "pages/error.html",
    "pages/archive_list.html",
    "pages/archive_page.html",
    "pages/archive_gone.html",
    "mail/base.html",
    "mail/footer.txt",
    "mail/footer_links.html",
    "mail/confirmation.html",
    "mail/confirmation.txt",
    "mail/welcome.html",
    "mail/welcome.txt",
    "mail/already_subscribed.html",
    "mail/already_subscribed.txt",
    "mail/newsletter_footer.html",
    "mail/newsletter_footer.txt",
    "mail/view_online.html",
    "mail/view_online.txt",
    "mail/archive_footer.html",
    "mail/staff_invitation.html",
    "mail/staff_invitation.txt",
];

/// The staff console's screens (rendered through HTTP in the console's tests, in both languages).
pub const CONSOLE_TEMPLATES: &[(&str, &str)] = embedded![
    "console/base.html",
    "console/macros.html",
    "console/sign_in.html",
    "console/error.html",
    "console/dashboard.html",
    "console/account.html",
    // People
    "console/people/list.html",
    "console/people/person.html",
    "console/people/edit.html",
    "console/people/profile_fields.html",
    "console/people/new.html",
    "console/people/erase.html",
    // Interests and custom fields
    "console/catalog/interests.html",
    "console/catalog/interest.html",
    "console/catalog/interest_fields.html",
    "console/catalog/fields.html",
    "console/catalog/field.html",
    "console/catalog/field_fields.html",
    // Imports
    "console/imports/list.html",
    "console/imports/map.html",
    "console/imports/show.html",
    // Newsletters
    "console/newsletters/list.html",
    "console/newsletters/show.html",
    "console/newsletters/edit.html",
    "console/newsletters/send.html",
    "console/newsletters/test_refused.html",
    "console/newsletters/preview.html",
    "console/newsletters/results.html",
    // Segments
    "console/segments/list.html",
    "console/segments/edit.html",
    // Exports
    "console/exports/form.html",
    // Staff, API keys, webhooks, audit log
    "console/admin/staff.html",
    "console/admin/staff_confirm.html",
    "console/admin/api_keys.html",
    "console/admin/api_key_created.html",
    "console/admin/audit_log.html",
    "console/admin/webhooks.html",
    "console/admin/webhook.html",
    "console/admin/webhook_secret.html",
    "console/admin/invitation.html",
    "console/admin/confirm_action.html",
];

/// The console's wording, kept apart from the public pages': the frame's strings are
/// `t.console.…`, each area's `t.console.AREA.…` (`locales/console/AREA.LANG.toml`).
macro_rules! console_catalogs {
    ($($area:literal),* $(,)?) => {
        &[$(
            ($area, Language::En, include_str!(concat!("../../locales/console/", $area, ".en.toml"))),
            ($area, Language::Es, include_str!(concat!("../../locales/console/", $area, ".es.toml"))),
        )*]
    };
}

/// (area, language, source); the area `frame` is the console's top level.
pub const CONSOLE_CATALOGS: &[(&str, Language, &str)] = console_catalogs![
    "frame",   // People
    "people",  // Interests and custom fields
    "catalog", // Imports
    "imports", // Exports
    "exports", // Staff, API keys, webhooks, audit log
    "admin",
    // Newsletters
    "newsletters",
    // Segments
    "segments",
    // A newsletter's results
    "results",
];

pub const CATALOGS: &[(Language, &str)] = &[
    (Language::En, include_str!("../../locales/en.toml")),
    (Language::Es, include_str!("../../locales/es.toml")),
];

pub struct Templates {
    env: Environment<'static>,
    catalogs: HashMap<Language, Value>,
    raw_catalogs: HashMap<Language, toml::Table>,
    /// Each language's console messages with variable parts (see `console_message`).
    message_patterns: HashMap<Language, Vec<MessagePattern>>,
    org: String,
    postal_address: Option<String>,
    /// Each language's newsletter footers, rendered once with markers where the links go.
    footer_skeletons: HashMap<Language, OnceLock<Option<FooterSkeleton>>>,
}

/// Stand in for a message's own links while its language's footers are rendered once.
const UNSUBSCRIBE_MARK: &str = "enlace-unsubscribe-link-3f9c2a71d5e84b06";
const PREFERENCES_MARK: &str = "enlace-preferences-link-8b41e07c92d35fa6";

/// A language's newsletter footers (HTML, text) with markers for the links.
#[derive(Debug, PartialEq)]
struct FooterSkeleton {
    html: String,
    text: String,
}

impl FooterSkeleton {
    /// The footers with one message's links in place of the markers, escaped in the HTML as
    /// the template engine escapes them.
    fn fill(&self, unsubscribe_url: &str, preferences_url: &str) -> (String, String) {
        let escaped = |url: &str| minijinja::HtmlEscape(url).to_string();
        (
            self.html
                .replace(UNSUBSCRIBE_MARK, &escaped(unsubscribe_url))
                .replace(PREFERENCES_MARK, &escaped(preferences_url)),
            self.text
                .replace(UNSUBSCRIBE_MARK, unsubscribe_url)
                .replace(PREFERENCES_MARK, preferences_url),
        )
    }
}

impl Templates {
    pub fn new(org: &str, postal_address: Option<&str>) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // minijinja escapes `.html` templates by default and leaves `.txt` alone.
        env.add_filter("fill", fill);
        env.add_function("wrap", wrap);
        env.add_filter("when", when);
        // Where the pages' forms post: the public URL's path (`with_base_path`).
        env.add_global("base_path", "");
        for (name, source) in TEMPLATES.iter().chain(CONSOLE_TEMPLATES) {
            env.add_template(name, source)
                .with_context(|| format!("template {name}"))?;
        }
        let mut catalogs = HashMap::new();
        let mut raw_catalogs = HashMap::new();
        let mut message_patterns = HashMap::new();
        for (language, source) in CATALOGS {
            let mut table: toml::Table = source
                .parse()
                .with_context(|| format!("catalog {}", language.as_str()))?;
            let mut console = toml::Table::new();
            for (area, _, source) in CONSOLE_CATALOGS.iter().filter(|(_, l, _)| l == language) {
                let part: toml::Table = source
                    .parse()
                    .with_context(|| format!("console catalog {area} {}", language.as_str()))?;
                if *area == "frame" {
                    console.extend(part);
                } else {
                    console.insert((*area).to_owned(), toml::Value::Table(part));
                }
            }
            message_patterns.insert(*language, MessagePattern::all(&console)?);
            table.insert("console".to_owned(), toml::Value::Table(console));
            catalogs.insert(*language, Value::from_serialize(&table));
            raw_catalogs.insert(*language, table);
        }
        Ok(Self {
            env,
            catalogs,
            raw_catalogs,
            message_patterns,
            org: org.to_owned(),
            postal_address: postal_address.map(str::to_owned),
            footer_skeletons: CATALOGS
                .iter()
                .map(|(language, _)| (*language, OnceLock::new()))
                .collect(),
        })
    }

    /// Pages served under a sub-path (`/lista`): their forms post below it.
    pub fn with_base_path(mut self, base_path: &str) -> Self {
        self.env.add_global("base_path", base_path.to_owned());
        self
    }

    /// The footers (HTML, text) of one newsletter message in `language`, with its links. Only
    /// the links differ between a language's messages, so the templates run once per language
    /// and each message gets a copy with its links filled in.
    pub fn newsletter_footers(
        &self,
        language: Language,
        unsubscribe_url: &str,
        preferences_url: &str,
    ) -> Result<(String, String), minijinja::Error> {
        let skeleton = self
            .footer_skeletons
            .get(&language)
            .and_then(|cell| cell.get_or_init(|| self.footer_skeleton(language)).as_ref());
        match skeleton {
            Some(skeleton) => Ok(skeleton.fill(unsubscribe_url, preferences_url)),
            None => self.render_newsletter_footers(language, unsubscribe_url, preferences_url),
        }
    }

    fn render_newsletter_footers(
        &self,
        language: Language,
        unsubscribe_url: &str,
        preferences_url: &str,
    ) -> Result<(String, String), minijinja::Error> {
        let ctx = context! { unsubscribe_url, preferences_url };
        Ok((
            self.render("mail/newsletter_footer.html", language, ctx.clone())?,
            self.render("mail/newsletter_footer.txt", language, ctx)?,
        ))
    }

    /// The footers rendered with markers for the links; kept only if filling in links that
    /// need escaping gives exactly what rendering with them does, else every message renders.
    fn footer_skeleton(&self, language: Language) -> Option<FooterSkeleton> {
        let (html, text) = self
            .render_newsletter_footers(language, UNSUBSCRIBE_MARK, PREFERENCES_MARK)
            .ok()?;
        let skeleton = FooterSkeleton { html, text };
        let (unsubscribe, preferences) = (
            "https://lists.example.org/a&b/unsubscribe/T0k-en_\"<'>",
            "https://lists.example.org/preferences/T0k-en_?x=1&y=2",
        );
        let rendered = self
            .render_newsletter_footers(language, unsubscribe, preferences)
            .ok()?;
        (rendered == skeleton.fill(unsubscribe, preferences)).then_some(skeleton)
    }

    /// The "view in your browser" link (HTML, text) at the top of a message of a newsletter in
    /// the public archive: `archive_url` is its archive page in the reader's language, the same
    /// for every reader of that language.
    pub fn view_online(
        &self,
        language: Language,
        archive_url: &str,
    ) -> Result<(String, String), minijinja::Error> {
        let ctx = context! { archive_url };
        Ok((
            self.render("mail/view_online.html", language, ctx.clone())?,
            self.render("mail/view_online.txt", language, ctx)?,
        ))
    }

    /// Renders `name` for a reader of `language`, with the shared variables added to `ctx`.
    pub fn render(
        &self,
        name: &str,
        language: Language,
        ctx: Value,
    ) -> Result<String, minijinja::Error> {
        let full = context! {
            t => self.catalogs[&language].clone(),
            lang => language.as_str(),
            org => &self.org,
            postal_address => &self.postal_address,
            ..ctx
        };
        self.env.get_template(name)?.render(full)
    }

    /// A catalog string by dotted path (`mail.welcome.subject`), with `{org}` filled in.
    pub fn text(&self, language: Language, path: &str) -> String {
        let mut node: Option<&toml::Value> = None;
        let mut table = &self.raw_catalogs[&language];
        for (i, part) in path.split('.').enumerate() {
            node = table.get(part);
            if i + 1 < path.split('.').count() {
                match node.and_then(toml::Value::as_table) {
                    Some(t) => table = t,
                    None => return path.to_owned(),
                }
            }
        }
        node.and_then(toml::Value::as_str)
            .map(|s| s.replace("{org}", &self.org))
            .unwrap_or_else(|| path.to_owned())
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    pub fn postal_address(&self) -> Option<&str> {
        self.postal_address.as_deref()
    }

    /// A message from the service layer (worded in English) in `language`: from the console
    /// catalog's `[messages]`, or an area's (`locales/console/AREA.LANG.toml`). A message with
    /// variable parts is found by its pattern (`"must be at most {max} characters"`), the parts
    /// carried into the translation by name; a message none has is shown as it is.
    pub fn console_message(&self, language: Language, message: &str) -> String {
        let Some(console) = self.raw_catalogs[&language]
            .get("console")
            .and_then(toml::Value::as_table)
        else {
            return message.to_owned();
        };
        let exact = message_tables(console)
            .find_map(|messages| messages.get(message).and_then(toml::Value::as_str));
        if let Some(exact) = exact {
            return exact.to_owned();
        }
        self.message_patterns[&language]
            .iter()
            .find_map(|pattern| {
                pattern.translate(message, |part| self.console_message(language, part))
            })
            .unwrap_or_else(|| message.to_owned())
    }

    pub fn catalog(&self, language: Language) -> &toml::Table {
        &self.raw_catalogs[&language]
    }
}

/// The console catalog's `[messages]` tables: its own, then each area's.
fn message_tables(console: &toml::Table) -> impl Iterator<Item = &toml::Value> {
    std::iter::once(console)
        .chain(console.values().filter_map(toml::Value::as_table))
        .filter_map(|table| table.get("messages"))
}

/// A translated message with variable parts: `"\"{value}\" is not a valid interest"` matches
/// that message whatever the value, which the translation repeats where it names `{value}`.
struct MessagePattern {
    english: regex_lite::Regex,
    translation: String,
}

impl MessagePattern {
    /// Every message with a `{name}` in it, from the console catalog's `[messages]` tables.
    fn all(console: &toml::Table) -> anyhow::Result<Vec<Self>> {
        let placeholder = regex_lite::Regex::new(r"\{([a-z_]+)\}").expect("a valid pattern");
        let mut patterns = Vec::new();
        for messages in message_tables(console).filter_map(toml::Value::as_table) {
            for (english, translation) in messages {
                if !placeholder.is_match(english) {
                    continue;
                }
                let translation = translation
                    .as_str()
                    .with_context(|| format!("console message {english:?} is not text"))?;
                let mut source = String::from("^");
                let mut last = 0;
                for found in placeholder.captures_iter(english) {
                    let (whole, name) = (found.get(0).expect("a match"), &found[1]);
                    source.push_str(&regex_lite::escape(&english[last..whole.start()]));
                    source.push_str(&format!("(?<{name}>.*?)"));
                    last = whole.end();
                }
                source.push_str(&regex_lite::escape(&english[last..]));
                source.push('$');
                let parts: Vec<&str> = placeholder
                    .captures_iter(english)
                    .map(|c| c.get(1).map_or("", |m| m.as_str()))
                    .collect();
                if let Some(stray) = placeholder
                    .captures_iter(translation)
                    .map(|c| c.get(1).map_or("", |m| m.as_str()))
                    .find(|name| !parts.contains(name))
                {
                    anyhow::bail!("console message {english:?}: its translation names {{{stray}}}, which the message has not");
                }
                let english = regex_lite::Regex::new(&source)
                    .with_context(|| format!("console message pattern {english:?}"))?;
                patterns.push(Self {
                    english,
                    translation: translation.to_owned(),
                });
            }
        }
        // Longer patterns are more specific: tried first.
        patterns.sort_by_key(|p| std::cmp::Reverse(p.english.as_str().len()));
        Ok(patterns)
    }

    /// The translation of `message` when it has this pattern's form; a part named `reason` is
    /// a message itself, translated by `inner`.
    fn translate(&self, message: &str, inner: impl Fn(&str) -> String) -> Option<String> {
        let found = self.english.captures(message)?;
        let mut out = self.translation.clone();
        for name in self.english.capture_names().flatten() {
            let value = found.name(name).map_or("", |m| m.as_str());
            let value = if name == "reason" {
                inner(value)
            } else {
                value.to_owned()
            };
            out = out.replace(&format!("{{{name}}}"), &value);
        }
        Some(out)
    }
}

/// `{{ "Hello {name}"|fill(name=n) }}`: fills `{key}` placeholders; the result is still escaped.
fn fill(value: String, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let mut out = value;
    for key in kwargs.args() {
        let v: Value = kwargs.get(key)?;
        let text = if v.is_none() || v.is_undefined() {
            String::new()
        } else {
            v.to_string()
        };
        out = out.replace(&format!("{{{key}}}"), &text);
    }
    Ok(out)
}

/// `{{ entry.created_at|when }}`: a time kept in UTC (`2026-12-07T05:03:00` as serialised),
/// shown in the reader's time zone (the template's `zone`) as `7 Dec 2026, 05:03`, with the
/// month named in the page's language (`t.console.months`). Anything else is shown as it is.
fn when(state: &minijinja::State, value: Value) -> Result<String, minijinja::Error> {
    use chrono::{Datelike, TimeZone, Timelike};
    let raw = value.to_string();
    let parsed = chrono::NaiveDateTime::parse_from_str(&raw, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(&raw, "%Y-%m-%d %H:%M:%S%.f"))
        // RFC 3339 with its offset (an import's times end in `Z`): the same instant in UTC.
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&raw).map(|t| t.naive_utc()));
    let Ok(utc) = parsed else {
        return Ok(raw);
    };
    let zone = state
        .lookup("zone")
        .and_then(|z| z.as_str().and_then(|z| z.parse::<chrono_tz::Tz>().ok()))
        .unwrap_or(chrono_tz::Tz::UTC);
    let local = zone.from_utc_datetime(&utc);
    let month = state
        .lookup("t")
        .and_then(|t| t.get_attr("console").ok())
        .and_then(|console| console.get_attr("months").ok())
        .and_then(|months| months.get_item_by_index(local.month0() as usize).ok())
        .filter(|m| !m.is_undefined() && !m.is_none())
        .map(|m| m.to_string())
        .unwrap_or_else(|| local.month().to_string());
    Ok(format!(
        "{} {} {}, {:02}:{:02}",
        local.day(),
        month,
        local.year(),
        local.hour(),
        local.minute()
    ))
}

/// `{{ wrap(text, width=72, first="- ", rest="  ") }}`: one paragraph of a plain-text mail,
/// re-flowed to `width` columns; `first` prefixes the first line and `rest` the others.
fn wrap(text: String, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let width: Option<usize> = kwargs.get("width")?;
    let first: Option<String> = kwargs.get("first")?;
    let rest: Option<String> = kwargs.get("rest")?;
    kwargs.assert_all_used()?;
    let options = textwrap::Options::new(width.unwrap_or(72))
        .initial_indent(first.as_deref().unwrap_or_default())
        .subsequent_indent(rest.as_deref().unwrap_or_default())
        .break_words(false);
    Ok(textwrap::fill(&text, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (key, value) in table {
            let path = format!("{prefix}{key}");
            match value {
                toml::Value::Table(inner) => keys(inner, &format!("{path}."), out),
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn newsletter_footers_filled_in_are_exactly_the_rendered_ones() {
        let templates = Templates::new("Org & \"Co\"", Some("1 Main St\nPhoenix <AZ>")).unwrap();
        for (language, _) in CATALOGS {
            let (unsubscribe, preferences) = (
                "https://news.example.org/x?a=1&b=<2>/unsubscribe/abc-DEF_123",
                "https://news.example.org/x?a=1&b=<2>/preferences/abc-DEF_123",
            );
            let filled = templates
                .newsletter_footers(*language, unsubscribe, preferences)
                .unwrap();
            assert!(
                templates.footer_skeletons[language]
                    .get()
                    .unwrap()
                    .is_some(),
                "{language:?}: the footers are rendered once, not per message"
            );
            let rendered = templates
                .render_newsletter_footers(*language, unsubscribe, preferences)
                .unwrap();
            assert_eq!(filled, rendered);
            assert!(filled.0.contains("x?a=1&amp;b=&lt;2&gt;"));
            assert!(filled.1.contains(unsubscribe) && filled.1.contains(preferences));
        }
    }

    #[test]
    fn console_messages_with_variable_parts_are_translated_with_their_parts() {
        let templates = Templates::new("Org", None).unwrap();
        let es = |m: &str| templates.console_message(Language::Es, m);
        assert_eq!(
            es("\"volunteers\" is not a valid interest"),
            "«volunteers» no es un interés"
        );
        // A part that is itself a message is translated too.
        assert_eq!(
            es("\"Bad Slug\" use 1-64 lower-case letters, digits, - or _"),
            "«Bad Slug»: usa de 1 a 64 letras minúsculas, dígitos, - o _"
        );
        assert_eq!(
            es("line 7 has 1 field where the header has 3: check for a quote left open or a stray delimiter"),
            "la línea 7 tiene 1 celdas y la fila de encabezados 3: busca unas comillas sin cerrar o un separador de más"
        );
        assert_eq!(
            es("must be at most 64 characters of text"),
            "debe tener como máximo 64 caracteres de texto"
        );
        // An exact entry wins over a pattern; an unknown message is shown as it is.
        assert_eq!(
            es("must be at most 500 characters of text"),
            "debe tener como máximo 500 caracteres de texto"
        );
        assert_eq!(
            es("repeats the address on line 2: only the first line with an address is imported"),
            "repite el correo de la línea 2: solo se importa la primera línea con cada correo"
        );
        assert_eq!(es("something new"), "something new");
        assert_eq!(
            templates.console_message(Language::En, "\"x y\" must look like <column>:<field>"),
            "\"x y\" must look like column:field"
        );
    }

    #[test]
    fn every_template_file_is_embedded() {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    let name = path.strip_prefix(root).unwrap().to_string_lossy();
                    out.push(name.replace('\\', "/"));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        let embedded: Vec<&str> = TEMPLATES
            .iter()
            .chain(CONSOLE_TEMPLATES)
            .map(|(n, _)| *n)
            .collect();
        let missing: Vec<&String> = files
            .iter()
            .filter(|f| !embedded.contains(&f.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "templates on disk the service never loads: {missing:?}"
        );
    }

    #[test]
    fn both_catalogs_have_the_same_keys() {
        let templates = Templates::new("Org", None).unwrap();
        let (mut en, mut es) = (Vec::new(), Vec::new());
        keys(templates.catalog(Language::En), "", &mut en);
        keys(templates.catalog(Language::Es), "", &mut es);
        en.sort();
        es.sort();
        assert_eq!(en, es);
    }

    #[test]
    fn every_template_renders_in_both_languages() {
        let item = context! { slug => "news", name => "News <b>", description => "Weekly", checked => true };
        let error = context! { field => "email", messages => vec!["is required"] };
        let ctx = context! {
            token => "tok", from => "?from=x", name => "Ana <script>", language => "es", status => "unsubscribed",
            saved => true, errors => vec![error], interests => vec![item], preferences_url => "https://x/p",
            unsubscribe_url => "https://x/u", confirm_url => "https://x/c", expires_days => 7,
            title => "T", message => "M", invitation_url => "https://x/i", role => "editor",
            archive_url => "https://x/archive/es/1", list_url => "https://x/archive/es",
            page_url => "https://x/archive/es/1", feed_url => "https://x/archive/es/feed.atom",
            other_url => "https://x/archive/en", other_lang => "en",
            content_url => "https://x/archive/es/1/content",
            alternates => vec![context! { hreflang => "en", href => "https://x/archive/en/1" }],
            canonical_url => "https://x/archive/es/1", subject => "Hola <b>",
            content_lang => "en", fallback => true, page => 2, newer_url => "https://x/archive/es",
            older_url => "https://x/archive/es?page=3",
            items => vec![context! { url => "https://x/archive/es/1", subject => "S <i>", lang => "en", day => 7, month0 => 11, year => 2026, date => "2026-12-07" }],
            sent => context! { day => 7, month0 => 11, year => 2026, date => "2026-12-07" },
        };
        for address in [None, Some("1 Main St, Phoenix AZ")] {
            let templates = Templates::new("Org", address).unwrap();
            for language in Language::ALL {
                for (name, _) in TEMPLATES.iter().filter(|(n, _)| {
                    !n.ends_with("base.html")
                        && !n.ends_with("footer.txt")
                        && !n.ends_with("footer_links.html")
                }) {
                    let out = templates
                        .render(name, language, ctx.clone())
                        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
                    if name.ends_with(".html") {
                        assert!(!out.contains("<script>"), "{name} escapes merge values");
                    }
                }
            }
        }
        for kind in ["confirmation", "welcome", "already_subscribed"] {
            for language in Language::ALL {
                let subject = Templates::new("Org", None)
                    .unwrap()
                    .text(language, &format!("mail.{kind}.subject"));
                assert!(!subject.starts_with("mail."), "{kind} has a subject");
            }
        }
    }
}

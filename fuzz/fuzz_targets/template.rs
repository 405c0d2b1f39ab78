//! Bytes → a newsletter (HTML, subject, text) and merge values: compiling and rendering never
//! panic and end (fuel); values are escaped in the HTML part; a subject stays on one line.
//!
//! The input is split at U+0001 into HTML, subject, text, name and city. Templates that write
//! `<` themselves, or mark output safe, are skipped: then any `<q7` in the HTML came from a value.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use enlace::domain::Language;
use enlace::email::newsletter::{CompiledNewsletter, Content, MergeData, NewsletterContent};
use enlace::email::Templates;
use libfuzzer_sys::fuzz_target;

const MARKER: &str = "<q7 onmouseover=alert(1)>";
static TEMPLATES: OnceLock<Templates> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let mut parts = input.split('\u{1}');
    let html = parts.next().unwrap_or_default().to_owned();
    let subject = parts.next().unwrap_or("Hi {{ name }}").to_owned();
    let text = parts.next().map(str::to_owned);
    let name = format!("{}{MARKER}\r\nBcc: x@example.org", parts.next().unwrap_or_default());
    let city = format!("{MARKER}{}", parts.next().unwrap_or_default());
    let writes_markup = |t: &str| {
        ["<", "\\u", "\\x", "safe", "autoescape", "q7"]
            .iter()
            .any(|s| t.contains(s))
    };
    if writes_markup(&html) {
        return;
    }
    let content = NewsletterContent {
        default: Content {
            subject,
            html,
            text,
            preheader: None,
        },
        variants: BTreeMap::new(),
    };
    let declared = ["city".to_owned(), "tier".to_owned()];
    let Ok(compiled) = CompiledNewsletter::compile(&content, &declared, "Org", Some("1 Main St"))
    else {
        return;
    };
    let templates = TEMPLATES.get_or_init(|| Templates::new("Org", Some("1 Main St")).unwrap());
    let attributes = serde_json::json!({"city": city, "tier": [MARKER, 1]});
    for language in Language::ALL {
        let data = MergeData {
            name: Some(&name),
            email: "ana+<q7>@example.org",
            language,
            attributes: &attributes,
            unsubscribe_url: "https://example.org/unsubscribe/x",
            preferences_url: "https://example.org/preferences/x",
        };
        if let Ok(out) = compiled.render(&data, templates) {
            assert!(!out.html.contains("<q7"), "unescaped: {}", out.html);
            assert!(!out.subject.contains(['\r', '\n']), "{:?}", out.subject);
        }
    }
});

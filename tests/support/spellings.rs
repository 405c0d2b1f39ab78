//! Other spellings of one mailbox, as people, mail clients and providers write them: letter case,
//! full-width, mathematical and enclosed letters and other full stops in the domain, the domain's
//! Unicode or A-label form, decomposed accents in the local part, a final root dot, white space
//! around. Every spelling made here must be the same person to Enlace.

use proptest::prelude::*;

/// Canonical addresses (as Enlace stores them) and the Unicode spelling of their domain.
pub const MAILBOXES: &[(&str, &str)] = &[
    ("ana.lopez@example.org", "example.org"),
    ("josé+news@correo.example.mx", "correo.example.mx"),
    ("ana@xn--mnchen-3ya.de", "münchen.de"),
    ("maría@xn--espaa-rta.example", "españa.example"),
    ("o'brien@mail.example.ie", "mail.example.ie"),
];

fn letter_forms(c: char) -> Vec<char> {
    let mut forms = vec![c, c.to_ascii_uppercase()];
    if c.is_ascii_lowercase() {
        let offset = c as u32 - 'a' as u32;
        for base in [0xFF41, 0xFF21, 0x1D41A, 0x1D400, 0x24D0, 0x24B6] {
            forms.extend(char::from_u32(base + offset));
        }
    }
    forms
}

/// The domain written with any mix of the forms above; `unicode` is its Unicode spelling.
fn domain_spelling(ascii: &str, unicode: &str) -> BoxedStrategy<String> {
    let written = if ascii == unicode {
        Just(ascii.to_owned()).boxed()
    } else {
        prop_oneof![Just(ascii.to_owned()), Just(unicode.to_owned())].boxed()
    };
    written
        .prop_flat_map(|domain| {
            let chars: Vec<BoxedStrategy<String>> = domain
                .chars()
                .map(|c| match c {
                    '.' => proptest::sample::select(vec![".", "。", "．", "｡"])
                        .prop_map(str::to_owned)
                        .boxed(),
                    c if c.is_ascii_lowercase() => proptest::sample::select(letter_forms(c))
                        .prop_map(String::from)
                        .boxed(),
                    c => {
                        prop_oneof![Just(c.to_string()), Just(c.to_uppercase().to_string())].boxed()
                    }
                })
                .collect();
            chars
        })
        .prop_map(|parts| parts.concat())
        .boxed()
}

fn local_spelling(local: &str) -> BoxedStrategy<String> {
    let decomposed: String = local
        .chars()
        .flat_map(|c| match c {
            'é' => vec!['e', '\u{301}'],
            'í' => vec!['i', '\u{301}'],
            'ñ' => vec!['n', '\u{303}'],
            c => vec![c],
        })
        .collect();
    prop_oneof![Just(local.to_owned()), Just(decomposed)]
        .prop_flat_map(|local| {
            let chars: Vec<BoxedStrategy<String>> = local
                .chars()
                .map(|c| {
                    prop_oneof![Just(c.to_string()), Just(c.to_uppercase().to_string())].boxed()
                })
                .collect();
            chars
        })
        .prop_map(|parts| parts.concat())
        .boxed()
}

/// One of `MAILBOXES` (its canonical form) with another spelling of it.
#[allow(dead_code)] // Used by the property tests, not by every test crate that includes this.
pub fn mailbox_and_spelling() -> impl Strategy<Value = (String, String)> {
    proptest::sample::select(MAILBOXES).prop_flat_map(|(canonical, unicode_domain)| {
        spelling_of(canonical, unicode_domain).prop_map(move |s| (canonical.to_owned(), s))
    })
}

/// Another spelling of `canonical`, whose domain is written `unicode_domain` in Unicode.
pub fn spelling_of(canonical: &str, unicode_domain: &str) -> impl Strategy<Value = String> {
    let (local, domain) = canonical.rsplit_once('@').unwrap();
    (
        local_spelling(local),
        domain_spelling(domain, unicode_domain),
        any::<bool>(),
        proptest::sample::select(vec!["", " ", "\t"]),
    )
        .prop_map(|(local, domain, root_dot, space)| {
            let dot = if root_dot { "." } else { "" };
            format!("{space}{local}@{domain}{dot}{space}")
        })
}

/// `n` different spellings of `canonical`, the same on every run.
#[allow(dead_code)]
pub fn sample_spellings(canonical: &str, unicode_domain: &str, n: usize) -> Vec<String> {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let strategy = spelling_of(canonical, unicode_domain);
    let mut runner = TestRunner::deterministic();
    let mut found = Vec::new();
    for _ in 0..n * 20 {
        let spelling = strategy.new_tree(&mut runner).unwrap().current();
        if !found.contains(&spelling) && spelling != canonical {
            found.push(spelling);
        }
        if found.len() == n {
            break;
        }
    }
    found
}

//! E-mail addresses: the one canonical form every entrance, the database and the mailer agree on,
//! so that one mailbox is one person however its address was typed.

use std::fmt;

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::props::DefaultIgnorableCodePoint;
use icu_properties::CodePointSetData;

/// Longest address accepted, in bytes of its canonical form (RFC 5321 §4.5.3.1.3 path limit).
const MAX_ADDRESS_BYTES: usize = 254;
/// Longest local part, in bytes (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_BYTES: usize = 64;

/// An address that can be put on an SMTP envelope, in canonical form:
/// - the domain mapped by UTS #46 (IDNA 2008, non-transitional) to its A-label form, which also
///   lower-cases it and folds full-width, mathematical and enclosed letter forms and ideographic
///   full stops into what mail systems deliver to; a final root dot is dropped;
/// - the local part NFC-normalised and lower-cased (compared without case, as mail providers do
///   in practice);
/// - zero-width and every other default-ignorable character refused, never silently dropped;
/// - only dot-atom local parts (no quoted strings, no leading, trailing or doubled dots), and only
///   domain names with a dot, never an IP literal or a dotless host such as `localhost`.
///
/// Storage, uniqueness, suppression hashes, erasure tombstones, bounce and complaint matching,
/// imports, exports and the mailer all use this form; `Email::parse` is the only way to make one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is required");
        }
        // Bounded before any normalisation, so hostile input costs little.
        if raw.len() > 4 * MAX_ADDRESS_BYTES {
            return Err("is longer than 254 characters");
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("is not a valid e-mail address");
        }
        let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
        if raw.chars().any(|c| ignorable.contains(c)) {
            return Err("contains invisible characters (such as a zero-width space)");
        }
        let (local, domain) = raw
            .rsplit_once('@')
            .ok_or("is not a valid e-mail address")?;
        let local = canonical_local_part(local)?;
        let domain = mail_domain(domain)?;
        let email = format!("{local}@{domain}");
        if email.len() > MAX_ADDRESS_BYTES {
            return Err("is longer than 254 characters");
        }
        // The mailer's own check: whatever is accepted here can be put on an envelope.
        if lettre::Address::new(&local, &domain).is_err() {
            return Err("is not a valid e-mail address");
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }

    /// Whether delivering to this address needs a relay that offers SMTPUTF8 (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        !self.0.is_ascii()
    }
}

// Addresses never reach logs by accident through Debug.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(…)")
    }
}

/// Characters a dot-atom may hold besides letters and digits (RFC 5322 `atext`); any non-ASCII
/// character that is not a control, space or default-ignorable is allowed too (RFC 6532).
const ATEXT_SYMBOLS: &str = "!#$%&'*+-/=?^_`{|}~";

fn canonical_local_part(local: &str) -> Result<String, &'static str> {
    if local.is_empty() {
        return Err("is not a valid e-mail address");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("has a dot at the start or end of the part before @, or two dots in a row");
    }
    let valid = local.chars().all(|c| {
        c.is_ascii_alphanumeric() || c == '.' || ATEXT_SYMBOLS.contains(c) || !c.is_ascii()
    });
    if !valid {
        return Err("is not a valid e-mail address");
    }
    let nfc = ComposingNormalizerBorrowed::new_nfc();
    // Lower-casing can leave a string that is no longer in NFC, so normalise on both sides.
    let lower = nfc.normalize(local).to_lowercase();
    let local = nfc.normalize(&lower).into_owned();
    if local.len() > MAX_LOCAL_BYTES {
        return Err("has more than 64 characters before the @");
    }
    Ok(local)
}

/// A domain in canonical form: its A-label (ASCII) spelling under UTS #46, lower-case, without
/// a final root dot. Segment filters on a domain use it too, so `münchen.de` matches what is
/// stored.
pub fn canonical_domain(raw: &str) -> Result<String, &'static str> {
    use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
    // Strict: letters, digits and hyphens only (STD3), no hyphen at a label's ends, DNS lengths.
    let ascii = Uts46::new()
        .to_ascii(
            raw.trim().as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::VerifyAllowRootDot,
        )
        .map_err(|_| "has a domain that is not valid")?;
    let ascii = ascii.strip_suffix('.').unwrap_or(&ascii);
    if ascii.is_empty() || ascii.split('.').any(str::is_empty) {
        return Err("has a domain that is not valid");
    }
    Ok(ascii.to_owned())
}

/// The domain of an address that can be delivered to: canonical, with at least one dot and a
/// top-level label that is not all digits (so neither `localhost` nor an IP address).
fn mail_domain(raw: &str) -> Result<String, &'static str> {
    if raw.starts_with('[') || raw.parse::<std::net::IpAddr>().is_ok() {
        return Err("must be at a domain name, not an IP address");
    }
    let domain = canonical_domain(raw)?;
    let Some((_, top)) = domain.rsplit_once('.') else {
        return Err("must have a domain with a dot in it, such as example.org");
    };
    if top.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be at a domain name, not an IP address");
    }
    Ok(domain)
}

/// Replaces anything that looks like an address (a word with an `@`, or `%40` as URLs write it)
/// with `[address]`, keeping the punctuation around it. SMTP replies and bounce diagnostics
/// often quote the recipient; what Enlace keeps of them keeps no address.
pub fn redact_addresses(text: &str) -> String {
    let is_part = |c: char| !c.is_whitespace() && !"<>()[]{};:,\"'`".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') || word.to_ascii_lowercase().contains("%40") {
            out.push_str("[address]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if is_part(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(raw: &str) -> String {
        Email::parse(raw)
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
            .as_str()
            .to_owned()
    }

    #[test]
    fn emails_are_normalised_once() {
        let email = Email::parse("  Ana.Lopez+news@Example.ORG ").unwrap();
        assert_eq!(email.as_str(), "ana.lopez+news@example.org");
        assert_eq!(email.domain(), "example.org");
        assert!(Email::parse("not-an-email").is_err());
        assert!(Email::parse("a@b.org\r\nBcc: x@y.org").is_err());
        assert!(Email::parse(&format!("{}@example.org", "a".repeat(250))).is_err());
        assert!(!format!("{email:?}").contains("ana"));
    }

    #[test]
    fn spellings_of_one_mailbox_have_one_canonical_form() {
        let same = [
            "x@example.org",
            "X@EXAMPLE.ORG",
            "x@ＥＸＡＭＰＬＥ.org", // full-width letters
            "x@example。org",       // ideographic full stop
            "x@example．org",       // full-width full stop
            "x@example.org.",       // the root dot
            "x@𝐞𝐱𝐚𝐦𝐩𝐥𝐞.org",        // mathematical bold
            "x@ⓔⓧⓐⓜⓟⓛⓔ.org",        // enclosed letters
        ];
        for spelling in same {
            assert_eq!(canonical(spelling), "x@example.org", "{spelling:?}");
        }
        assert_eq!(canonical("ana@münchen.de"), "ana@xn--mnchen-3ya.de");
        assert_eq!(canonical("ana@XN--MNCHEN-3YA.de"), "ana@xn--mnchen-3ya.de");
        assert_eq!(canonical("ana@MÜNCHEN.DE"), "ana@xn--mnchen-3ya.de");
        // Local parts: composed and decomposed accents are one spelling; case does not count.
        assert_eq!(
            canonical("jose\u{301}@example.org"),
            canonical("JOSÉ@example.org")
        );
        assert_eq!(canonical("josé@example.org"), "jos\u{e9}@example.org");
    }

    #[test]
    fn invisible_characters_are_refused_not_dropped() {
        for raw in [
            "x@exa\u{200b}mple.org",
            "x\u{200d}@example.org",
            "x@example.org\u{feff}",
            "x@exam\u{ad}ple.org",
            "x\u{2060}y@example.org",
            "x@example\u{180e}.org",
        ] {
            assert_eq!(
                Email::parse(raw).unwrap_err(),
                "contains invisible characters (such as a zero-width space)",
                "{raw:?}"
            );
        }
    }

    #[test]
    fn only_what_can_be_delivered_is_accepted() {
        for raw in [
            "twodots..here@domain.com",
            ".lead@domain.com",
            "trail.@domain.com",
            "root@localhost",
            "x@[127.0.0.1]",
            "x@[IPv6:::1]",
            "x@127.0.0.1",
            "x@example",
            "x@-example.org",
            "x@example-.org",
            "x@exa_mple.org",
            "x@example..org",
            "\"quoted local\"@example.org",
            "x y@example.org",
            "x@",
            "@example.org",
            "x(comment)@example.org",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} was accepted");
        }
        for raw in [
            "o'brien@example.ie",
            "a+tag@example.org",
            "ñandú@correo.example.mx",
            "x@sub.domain.example.co.uk",
            "x@xn--mnchen-3ya.de",
            "x@123.example.org",
        ] {
            let email = Email::parse(raw).unwrap();
            assert!(
                email.as_str().parse::<lettre::Address>().is_ok(),
                "{raw:?} cannot go on an envelope"
            );
        }
        assert!(canonical("ñandú@correo.example.mx").contains('ñ'));
        assert!(Email::parse("ñandú@correo.example.mx")
            .unwrap()
            .needs_smtputf8());
        assert!(!Email::parse("x@münchen.de").unwrap().needs_smtputf8());
    }

    #[test]
    fn length_limits_count_the_canonical_form() {
        assert!(Email::parse(&format!("{}@example.org", "a".repeat(64))).is_ok());
        assert!(Email::parse(&format!("{}@example.org", "a".repeat(65))).is_err());
        let label = "a".repeat(63);
        let long_domain = format!("{label}.{label}.{label}.{label}.org");
        assert!(Email::parse(&format!("x@{long_domain}")).is_err());
    }

    #[test]
    fn addresses_are_redacted_from_replies_and_diagnostics() {
        assert_eq!(
            redact_addresses("550 5.1.1 <ana@example.org>: Recipient address rejected"),
            "550 5.1.1 <[address]>: Recipient address rejected"
        );
        assert_eq!(
            redact_addresses("see https://x.example/u?e=ana%40example.org now"),
            "see https:[address] now"
        );
        assert_eq!(redact_addresses("no address here"), "no address here");
    }

    #[test]
    fn domains_for_filters() {
        assert_eq!(canonical_domain("MÜNCHEN.de").unwrap(), "xn--mnchen-3ya.de");
        assert_eq!(canonical_domain("example。org").unwrap(), "example.org");
        assert!(canonical_domain("exa mple.org").is_err());
        assert!(mail_domain("localhost").is_err());
        assert!(mail_domain("10.0.0.1").is_err());
    }
}

//! Subscriber values: name, language, status, interest slugs.

/// A display name: at most 100 characters, no control characters (so no header injection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 100;

    /// Blank input means "no name".
    pub fn parse(raw: &str) -> Result<Option<Self>, &'static str> {
        let name = raw.trim();
        if name.is_empty() && raw.chars().count() <= Self::MAX_CHARS {
            return Ok(None);
        }
        // Counted as sent, as the document's maxLength counts it.
        if raw.chars().count() > Self::MAX_CHARS {
            return Err("is longer than 100 characters");
        }
        if name.chars().any(char::is_control) {
            return Err("contains control characters");
        }
        Ok(Some(Self(name.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The languages every page and message exists in.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Es,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Es];

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "en" => Ok(Self::En),
            "es" => Ok(Self::Es),
            _ => Err("must be \"en\" or \"es\""),
        }
    }

    /// Matches a language tag such as `es-MX` by its primary subtag.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next()?;
        Self::parse(primary).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }
}

crate::text_enum! {
    /// Where a person stands on the list (`subscribers.status`).
    pub enum SubscriberStatus {
        Pending = "pending",
        Confirmed = "confirmed",
        Unsubscribed = "unsubscribed",
        Bounced = "bounced",
        Complained = "complained",
    }
}

crate::text_enum! {
    /// Why an address must never be mailed (kept as a hash that survives erasure).
    pub enum SuppressionReason {
        HardBounce = "hard_bounce",
        Complaint = "complaint",
        Manual = "manual",
        /// Erased on request: the person may come back only through their own new confirmation.
        Erased = "erased",
    }
}

/// An interest's key: lower-case letters, digits, dashes and underscores, 1–64 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterestSlug(String);

impl InterestSlug {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let slug = raw.trim();
        let valid = !slug.is_empty()
            && slug.len() <= 64
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(slug.to_owned()))
        } else {
            Err("is not a valid interest")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_control_characters_and_length() {
        assert_eq!(Name::parse("  ").unwrap(), None);
        assert_eq!(
            Name::parse(" María José ").unwrap().unwrap().as_str(),
            "María José"
        );
        assert!(Name::parse("Eve\r\nBcc: x@y.org").is_err());
        assert!(Name::parse(&"ñ".repeat(101)).is_err());
        assert!(Name::parse(&"ñ".repeat(100)).is_ok());
    }

    #[test]
    fn language_tags() {
        assert_eq!(Language::from_tag("es-MX"), Some(Language::Es));
        assert_eq!(Language::from_tag("EN"), Some(Language::En));
        assert_eq!(Language::from_tag("fr"), None);
        assert!(Language::parse("de").is_err());
    }
}

crate::text_enum! {
    /// A staff member's role: a viewer reads, an editor also changes contacts and content, an
    /// admin also manages staff, keys and webhooks.
    pub enum Role {
        Admin = "admin",
        Editor = "editor",
        Viewer = "viewer",
    }
}

impl Role {
    /// Higher for a role that may do more: viewer 0, editor 1, admin 2.
    pub fn rank(self) -> u8 {
        match self {
            Self::Viewer => 0,
            Self::Editor => 1,
            Self::Admin => 2,
        }
    }
}

//! Row ids as types of their own: a UUIDv7 in its hyphenated text form, kept in TEXT columns on
//! both databases, so a subscriber's id cannot be passed where a newsletter's is expected.
//!
//! `id_type!` declares a `String` newtype that diesel reads and writes directly as TEXT,
//! serialises as the bare string in JSON, and parses from text only when it is a UUID (given in
//! any form `uuid` accepts, kept in the lower-case hyphenated form the rows hold).

/// `id_type! { /// docs
///     pub struct Name; }`
#[macro_export]
macro_rules! id_type {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident;
    ) => {
        $(#[$meta])*
        #[derive(
            Clone,
            Debug,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            diesel::expression::AsExpression,
            diesel::deserialize::FromSqlRow,
        )]
        #[serde(transparent)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $vis struct $name(String);

        impl $name {
            /// A fresh id: a UUIDv7, so ids sort by creation time.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// The id of `raw` when it is a well-formed UUID.
            pub fn parse(raw: &str) -> Option<Self> {
                uuid::Uuid::parse_str(raw).ok().map(Self::from)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> Self {
                Self(id.hyphenated().to_string())
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(raw).map(Self::from)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        // Reads as the text it is wherever a `&str` is wanted (logs, the newsletter engine's
        // own string ids); the other way round takes `parse`.
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        $crate::text_column!($name, |id| id.0.as_str(), |raw| Ok(Self(raw)));
    };
}

id_type! {
    /// A person on the list (`subscribers.id`).
    pub struct SubscriberId;
}

id_type! {
    /// A newsletter (`newsletters.id`).
    pub struct NewsletterId;
}

id_type! {
    /// A saved segment (`segments.id`).
    pub struct SegmentId;
}

id_type! {
    /// A staff member (`staff_users.id`).
    pub struct StaffId;
}

id_type! {
    /// An API key (`api_keys.id`).
    pub struct ApiKeyId;
}

id_type! {
    /// A webhook endpoint (`webhook_endpoints.id`).
    pub struct WebhookEndpointId;
}

id_type! {
    /// An import of a file of people (`imports.id`).
    pub struct ImportId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_uuids_and_parse_only_from_uuids() {
        let id = SubscriberId::new();
        assert_eq!(id.as_str().len(), 36);
        assert_ne!(id, SubscriberId::new());
        assert_eq!(SubscriberId::parse(id.as_str()), Some(id.clone()));
        let upper = id.as_str().to_uppercase();
        assert_eq!(upper.parse::<SubscriberId>().ok(), Some(id.clone()));
        assert_eq!(SubscriberId::parse("not-an-id"), None);
        assert_eq!(SubscriberId::parse(""), None);
        assert_eq!(serde_json::to_value(&id).unwrap(), id.as_str());
    }
}

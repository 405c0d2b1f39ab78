//! Stored states, statuses and kinds as Rust enums kept in TEXT columns on both databases.
//!
//! `text_enum!` declares an enum whose variants each have one stored spelling. The enum is
//! written and read by diesel directly (`jobs::state.eq(JobState::Queued)`, a `JobState` field in
//! a `Queryable` row), serialises to the same spelling in JSON, and parses it back. A spelling
//! that is not one of the variants fails the read loudly instead of being carried along as an
//! unknown string.

/// `text_enum! { /// docs
///     pub enum Name { Variant = "spelling", … } }`
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant ),+ ];

            /// The stored (and wire) spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text ),+
                }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw {
                    $( $text => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&raw).ok_or_else(|| {
                    serde::de::Error::unknown_variant(&raw, &[ $( $text ),+ ])
                })
            }
        }

        $crate::text_column!($name, |value| value.as_str(), |raw| {
            Self::parse(&raw)
                .ok_or_else(|| format!(concat!("unknown ", stringify!($name), " {:?}"), raw).into())
        });
    };
}

/// How `text_enum!` and `id_type!` types are kept in a TEXT column on every backend: written as
/// the `&str` that `$to` gives for `$value`, read from the stored `String` `$raw` by `$from`
/// (which refuses what is not a value of the type).
#[doc(hidden)]
#[macro_export]
macro_rules! text_column {
    ($name:ident, |$value:ident| $to:expr, |$raw:ident| $from:expr) => {
        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                let $value: &'b Self = self;
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, DB>>::to_sql($to, out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                use diesel::deserialize::FromSql;
                let $raw: String = FromSql::<diesel::sql_types::Text, DB>::from_sql(bytes)?;
                $from
            }
        }
    };
}

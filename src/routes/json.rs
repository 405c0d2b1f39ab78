//! JSON request bodies, read as strictly as openapi.yaml describes them.
//!
//! Serde on its own is lenient in two ways the document is not: an `Option` field takes `null`
//! as if the field were left out, and a struct can be read from an array (`[null, null]` as a
//! segment). Every JSON body goes through [`from_value`] instead, whose deserializer refuses
//! both: an object is read only from an object, and `null` only where a field is declared with
//! [`nullable`] (the document's `type: [..., 'null']`, where null means "clear it"). Bodies that
//! break these rules are a 422 problem, like any other field error, and nothing is changed.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, Error as _, IntoDeserializer,
    MapAccess, SeqAccess, Unexpected, VariantAccess, Visitor,
};
use serde::Deserialize;
use serde_json::{Error, Map, Value};

use crate::error::ApiError;

/// The JSON body extractor: `web::Json`'s limits, media type and syntax errors (from the app's
/// `JsonConfig`), then [`from_value`]'s strict reading.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let value = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let web::Json(value) = value.await?;
            Ok(Json(from_value(value)?))
        })
    }
}

/// Reads a parsed JSON body into `T`: a wrong shape is a 422 naming the body.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    read(value).map_err(|e| ApiError::field("body", e.to_string()))
}

/// [`from_value`] with serde's own error, for callers that file it under a field of their own.
pub fn read<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    T::deserialize(Strict::new(value))
}

/// For `#[serde(default, deserialize_with = "nullable")]` on an `Option<Option<T>>` field:
/// left out is `None`, `null` is `Some(None)` (clear it), a value is `Some(Some(value))`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct NullableVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for NullableVisitor<T> {
        type Value = Option<Option<T>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a value or null")
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            Option::<T>::deserialize(d).map(Some)
        }
    }
    d.deserialize_newtype_struct(NULLABLE, NullableVisitor(PhantomData))
}

/// For `#[serde(default, deserialize_with = "or_null")]` on an `Option<T>` field whose document
/// says `null` means the same as leaving it out.
pub fn or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    nullable(d).map(Option::flatten)
}

/// The newtype name by which [`nullable`] tells [`Strict`] that `null` is allowed just there.
const NULLABLE: &str = "$enlace::nullable";

/// A JSON value that deserializes like `serde_json::Value` does, but refuses `null` for an
/// `Option` (unless [`nullable`]) and an array where a struct or map is expected.
struct Strict {
    value: Value,
    null_allowed: bool,
}

impl Strict {
    fn new(value: Value) -> Self {
        Self {
            value,
            null_allowed: false,
        }
    }
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Other("null"),
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (_, Some(i), _) => Unexpected::Signed(i),
            (_, _, Some(f)) => Unexpected::Float(f),
            _ => Unexpected::Other("number"),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

fn visit_array<'de, V: Visitor<'de>>(items: Vec<Value>, visitor: V) -> Result<V::Value, Error> {
    let len = items.len();
    let mut seq = StrictSeq {
        items: items.into_iter(),
    };
    let out = visitor.visit_seq(&mut seq)?;
    if seq.items.len() == 0 {
        Ok(out)
    } else {
        Err(Error::invalid_length(len, &"fewer elements in the array"))
    }
}

fn visit_object<'de, V: Visitor<'de>>(
    map: Map<String, Value>,
    visitor: V,
) -> Result<V::Value, Error> {
    visitor.visit_map(StrictMap {
        entries: map.into_iter(),
        value: None,
    })
}

macro_rules! forward_to_value {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.value.$method(visitor)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Strict {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) => visit_array(items, visitor),
            Value::Object(map) => visit_object(map, visitor),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null if self.null_allowed => visitor.visit_none(),
            Value::Null => Err(Error::custom(
                "null is not allowed here: leave the field out instead",
            )),
            value => visitor.visit_some(Strict::new(value)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(Strict {
            value: self.value,
            null_allowed: name == NULLABLE,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Object(map) => visit_object(map, visitor),
            other => Err(Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) => visit_array(items, visitor),
            other => Err(Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::Object(map) if map.len() == 1 => {
                let (variant, value) = map.into_iter().next().expect("one entry");
                visitor.visit_enum(StrictEnum { variant, value })
            }
            other @ Value::String(_) => other.deserialize_enum(name, variants, visitor),
            other => Err(Error::invalid_type(unexpected(&other), &visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    forward_to_value! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_unit
        deserialize_identifier
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value.deserialize_unit_struct(name, visitor)
    }
}

struct StrictSeq {
    items: std::vec::IntoIter<Value>,
}

impl<'de> SeqAccess<'de> for StrictSeq {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.items
            .next()
            .map(|item| seed.deserialize(Strict::new(item)))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct StrictMap {
    entries: serde_json::map::IntoIter,
    value: Option<Value>,
}

impl<'de> MapAccess<'de> for StrictMap {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(Value::String(key)).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| Error::custom("a value is missing"))?;
        seed.deserialize(Strict::new(value))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct StrictEnum {
    variant: String,
    value: Value,
}

impl<'de> EnumAccess<'de> for StrictEnum {
    type Error = Error;
    type Variant = Strict;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Strict), Error> {
        let variant = seed.deserialize(self.variant.into_deserializer())?;
        Ok((variant, Strict::new(self.value)))
    }
}

impl<'de> VariantAccess<'de> for Strict {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            Value::Null => Ok(()),
            other => Err(Error::invalid_type(unexpected(&other), &"a unit variant")),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Patch {
        name: Option<String>,
        #[serde(default)]
        public: Option<bool>,
        #[serde(default, deserialize_with = "nullable")]
        note: Option<Option<String>>,
        #[serde(default)]
        extra: Option<Value>,
    }

    #[test]
    fn null_is_refused_unless_the_field_is_nullable() {
        let read = |v: Value| read::<Patch>(v);
        assert!(read(json!({ "public": null })).is_err());
        assert!(read(json!({ "name": null })).is_err());
        let patch = read(json!({ "note": null, "extra": { "a": null } })).unwrap();
        assert_eq!(patch.note, Some(None));
        assert_eq!(patch.extra, Some(json!({ "a": null })));
        assert_eq!(read(json!({})).unwrap().note, None);
        assert_eq!(
            read(json!({ "note": "x", "public": true })).unwrap(),
            Patch {
                name: None,
                public: Some(true),
                note: Some(Some("x".into())),
                extra: None
            }
        );
    }

    #[test]
    fn a_struct_is_read_only_from_an_object() {
        assert!(read::<Patch>(json!([null, null])).is_err());
        assert!(read::<Patch>(json!(["a", true])).is_err());
        assert!(read::<Patch>(json!(false)).is_err());
        assert!(read::<Vec<Patch>>(json!([{}])).is_ok());
    }
}

//! Segment filters: the JSON tree staff write to choose a newsletter's recipients, parsed with
//! limits against hostile input and checked against the declared fields and interests.
//! `db::segments` turns one into SQL.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, SubsecRound, Utc};
use serde_json::{json, Map, Number, Value};

use super::attributes::MAX_TEXT_CHARS;
use super::{FieldDeclaration, FieldType, InterestSlug, Language};

/// How deep `all`/`any`/`not` may nest (the root is level 1).
pub const MAX_DEPTH: usize = 10;
/// How many conditions (every object in the tree, leaves included) one filter may hold.
pub const MAX_NODES: usize = 200;
/// How many values an `in` list may hold.
pub const MAX_LIST: usize = 100;
const MAX_DOMAIN_CHARS: usize = 253;
/// The longest `source` anything records (an import's).
const MAX_SOURCE_CHARS: usize = 500;

/// Path (`filter.all[2].attribute.op`) → what is wrong there.
pub type FilterErrors = super::FieldErrors;

#[derive(Clone, Debug, PartialEq)]
pub enum SegmentFilter {
    All(Vec<SegmentFilter>),
    Any(Vec<SegmentFilter>),
    Not(Box<SegmentFilter>),
    Interest(String),
    Language(Language),
    Attribute(AttributeCondition),
    Created(TimeRange),
    Confirmed(TimeRange),
    /// Lower-cased; matches the whole domain of an address, not its subdomains.
    EmailDomain(String),
    /// The signup's `source`, exactly.
    Source(String),
}

/// `after` is inclusive and `before` exclusive (UTC, microseconds), so ranges tile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub after: Option<NaiveDateTime>,
    pub before: Option<NaiveDateTime>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AttributeCondition {
    pub key: String,
    pub op: AttributeOp,
    pub value: AttributeValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttributeOp {
    Eq,
    Ne,
    In,
    Contains,
    StartsWith,
    Gt,
    Gte,
    Lt,
    Lte,
    Before,
    After,
    Exists,
    NotExists,
}

const OPS: [(&str, AttributeOp); 13] = [
    ("eq", AttributeOp::Eq),
    ("ne", AttributeOp::Ne),
    ("in", AttributeOp::In),
    ("contains", AttributeOp::Contains),
    ("starts_with", AttributeOp::StartsWith),
    ("gt", AttributeOp::Gt),
    ("gte", AttributeOp::Gte),
    ("lt", AttributeOp::Lt),
    ("lte", AttributeOp::Lte),
    ("before", AttributeOp::Before),
    ("after", AttributeOp::After),
    ("exists", AttributeOp::Exists),
    ("not_exists", AttributeOp::NotExists),
];

impl AttributeOp {
    pub fn parse(raw: &str) -> Option<Self> {
        OPS.iter().find(|(name, _)| *name == raw).map(|(_, op)| *op)
    }

    pub fn as_str(self) -> &'static str {
        OPS.iter()
            .find(|(_, op)| *op == self)
            .map(|(name, _)| *name)
            .unwrap_or_default()
    }

    /// The operators that make sense for a field of this type.
    pub fn allowed_for(field_type: FieldType) -> &'static [AttributeOp] {
        use AttributeOp::*;
        match field_type {
            FieldType::Text | FieldType::OneOf => {
                &[Eq, Ne, In, Contains, StartsWith, Exists, NotExists]
            }
            FieldType::Number => &[Eq, Ne, Gt, Gte, Lt, Lte, Exists, NotExists],
            FieldType::Date => &[Eq, Before, After, Gt, Lt, Exists, NotExists],
            FieldType::Boolean => &[Eq, Exists, NotExists],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Text(String),
    Number(Number),
    Bool(bool),
}

impl Scalar {
    fn to_json(&self) -> Value {
        match self {
            Self::Text(t) => Value::String(t.clone()),
            Self::Number(n) => Value::Number(n.clone()),
            Self::Bool(b) => Value::Bool(*b),
        }
    }
}

/// The operand: none (`exists`, `not_exists`), a list (`in`), or one value (the rest).
#[derive(Clone, Debug, PartialEq)]
pub enum AttributeValue {
    None,
    One(Scalar),
    List(Vec<Scalar>),
}

fn short(raw: &str) -> String {
    let mut s: String = raw.chars().take(64).collect();
    if s.len() < raw.len() {
        s.push('…');
    }
    s
}

struct Parser {
    nodes: usize,
    errors: FilterErrors,
}

impl Parser {
    fn fail<T>(&mut self, path: &str, message: impl Into<String>) -> Option<T> {
        self.errors.add(path, message);
        None
    }

    fn node(&mut self, value: &Value, path: &str, depth: usize) -> Option<SegmentFilter> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            // Reported once, at the first node past the limit; the rest is not looked at.
            return if self.nodes == MAX_NODES + 1 {
                self.fail(
                    path,
                    format!("the filter has more than {MAX_NODES} conditions"),
                )
            } else {
                None
            };
        }
        if depth > MAX_DEPTH {
            return self.fail(path, format!("nests more than {MAX_DEPTH} levels deep"));
        }
        let Some((key, inner)) = value
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        else {
            return self.fail(
                path,
                "must be an object with exactly one condition, such as {\"interest\": \"news\"}",
            );
        };
        let at = format!("{path}.{key}");
        match key.as_str() {
            "all" | "any" => {
                let Some(list) = inner.as_array().filter(|l| !l.is_empty()) else {
                    return self.fail(&at, "must be a non-empty list of conditions");
                };
                let children: Vec<_> = list
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.node(c, &format!("{at}[{i}]"), depth + 1))
                    .collect();
                let children = children.into_iter().collect::<Option<Vec<_>>>()?;
                Some(if key == "all" {
                    SegmentFilter::All(children)
                } else {
                    SegmentFilter::Any(children)
                })
            }
            "not" => self
                .node(inner, &at, depth + 1)
                .map(|f| SegmentFilter::Not(Box::new(f))),
            "interest" => match inner.as_str().map(InterestSlug::parse) {
                Some(Ok(slug)) => Some(SegmentFilter::Interest(slug.as_str().to_owned())),
                _ => self.fail(&at, "must be an interest slug"),
            },
            "language" => match inner.as_str().map(Language::parse) {
                Some(Ok(language)) => Some(SegmentFilter::Language(language)),
                _ => self.fail(&at, "must be \"en\" or \"es\""),
            },
            "email_domain" => self.domain(inner, &at).map(SegmentFilter::EmailDomain),
            "source" => match inner.as_str() {
                Some(s) if !s.is_empty() && s.chars().count() <= MAX_SOURCE_CHARS => {
                    Some(SegmentFilter::Source(s.to_owned()))
                }
                _ => self.fail(
                    &at,
                    format!("must be text of 1 to {MAX_SOURCE_CHARS} characters"),
                ),
            },
            "created" => self.range(inner, &at).map(SegmentFilter::Created),
            "confirmed" => self.range(inner, &at).map(SegmentFilter::Confirmed),
            "attribute" => self.attribute(inner, &at).map(SegmentFilter::Attribute),
            other => self.fail(
                path,
                format!(
                    "unknown condition \"{}\"; use all, any, not, interest, language, attribute, \
                     created, confirmed, email_domain or source",
                    short(other)
                ),
            ),
        }
    }

    fn domain(&mut self, value: &Value, at: &str) -> Option<String> {
        // The form addresses are stored in (A-labels, lower case), so any spelling matches.
        let domain = value
            .as_str()
            .filter(|d| d.chars().count() <= MAX_DOMAIN_CHARS)
            .and_then(|d| super::canonical_domain(d).ok());
        match domain {
            Some(d) => Some(d),
            None => self.fail(at, "must be a domain such as example.org"),
        }
    }

    fn range(&mut self, value: &Value, at: &str) -> Option<TimeRange> {
        let Some(object) = value.as_object().filter(|o| !o.is_empty()) else {
            return self.fail(at, "must be an object with after, before or both");
        };
        let mut range = TimeRange::default();
        let mut ok = true;
        for (key, v) in object {
            let slot = match key.as_str() {
                "after" => &mut range.after,
                "before" => &mut range.before,
                other => {
                    ok = false;
                    self.fail::<()>(
                        &format!("{at}.{}", short(other)),
                        "is not allowed here; use after and before",
                    );
                    continue;
                }
            };
            match v.as_str().map(DateTime::parse_from_rfc3339) {
                Some(Ok(t)) => *slot = Some(t.with_timezone(&Utc).naive_utc().trunc_subsecs(6)),
                _ => {
                    ok = false;
                    self.fail::<()>(
                        &format!("{at}.{key}"),
                        "must be a time such as 2026-01-01T00:00:00Z",
                    );
                }
            }
        }
        if let (Some(after), Some(before)) = (range.after, range.before) {
            if after >= before {
                return self.fail(at, "after must be earlier than before");
            }
        }
        ok.then_some(range)
    }

    fn attribute(&mut self, value: &Value, at: &str) -> Option<AttributeCondition> {
        let Some(object) = value.as_object() else {
            return self.fail(at, "must be an object with key, op and value");
        };
        let mut ok = true;
        for key in object.keys() {
            if !["key", "op", "value"].contains(&key.as_str()) {
                ok = false;
                self.fail::<()>(
                    &format!("{at}.{}", short(key)),
                    "is not allowed here; use key, op and value",
                );
            }
        }
        let key = match object.get("key").and_then(Value::as_str) {
            Some(k) if valid_key(k) => Some(k.to_owned()),
            Some(_) => self.fail(&format!("{at}.key"), "is not a field key"),
            None => self.fail(&format!("{at}.key"), "is required"),
        };
        let op = match object
            .get("op")
            .map(|o| (o, o.as_str().and_then(AttributeOp::parse)))
        {
            Some((_, Some(op))) => Some(op),
            Some((raw, None)) => self.fail(
                &format!("{at}.op"),
                format!("unknown operator {}", short(&raw.to_string())),
            ),
            None => self.fail(&format!("{at}.op"), "is required"),
        };
        let value = op.and_then(|op| self.operand(op, object.get("value"), &format!("{at}.value")));
        if !ok {
            return None;
        }
        Some(AttributeCondition {
            key: key?,
            op: op?,
            value: value?,
        })
    }

    /// The operand's shape for the operator; its type is checked against the field later.
    fn operand(
        &mut self,
        op: AttributeOp,
        value: Option<&Value>,
        at: &str,
    ) -> Option<AttributeValue> {
        use AttributeOp::*;
        // `null` is not a value the document allows: it is refused like any other wrong one.
        match (op, value) {
            (Exists | NotExists, None) => Some(AttributeValue::None),
            (Exists | NotExists, Some(_)) => self.fail(at, "is not allowed with this operator"),
            (_, None) => self.fail(at, "is required"),
            (In, Some(Value::Array(list))) if !list.is_empty() && list.len() <= MAX_LIST => {
                let items: Vec<_> = list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.scalar(v, &format!("{at}[{i}]")))
                    .collect();
                items
                    .into_iter()
                    .collect::<Option<_>>()
                    .map(AttributeValue::List)
            }
            (In, Some(_)) => self.fail(at, format!("must be a list of 1 to {MAX_LIST} values")),
            (Contains | StartsWith | Before | After, Some(Value::String(s))) if !s.is_empty() => {
                self.scalar(&Value::String(s.clone()), at)
                    .map(AttributeValue::One)
            }
            (Contains | StartsWith | Before | After, Some(_)) => {
                self.fail(at, "must be non-empty text")
            }
            (Gt | Gte | Lt | Lte, Some(Value::Bool(_))) => {
                self.fail(at, "must be a number or a date")
            }
            (_, Some(v)) => self.scalar(v, at).map(AttributeValue::One),
        }
    }

    fn scalar(&mut self, value: &Value, at: &str) -> Option<Scalar> {
        match value {
            Value::String(s) if s.chars().count() <= MAX_TEXT_CHARS => {
                Some(Scalar::Text(s.clone()))
            }
            Value::String(_) => {
                self.fail(at, format!("must be at most {MAX_TEXT_CHARS} characters"))
            }
            Value::Number(n) => Some(Scalar::Number(n.clone())),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            _ => self.fail(at, "must be text, a number, true or false"),
        }
    }
}

/// Field keys as the fields module declares them (`[a-z][a-z0-9_]*`, at most 64).
fn valid_key(key: &str) -> bool {
    key.len() <= 64
        && key.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl SegmentFilter {
    /// Parses a filter given as the request field `filter`.
    pub fn parse(value: &Value) -> Result<Self, FilterErrors> {
        Self::parse_at(value, "filter")
    }

    /// Parses a filter; error paths start with `root`.
    pub fn parse_at(value: &Value, root: &str) -> Result<Self, FilterErrors> {
        let mut parser = Parser {
            nodes: 0,
            errors: FilterErrors::new(),
        };
        match parser.node(value, root, 1) {
            Some(filter) if parser.errors.is_empty() => Ok(filter),
            _ => Err(parser.errors),
        }
    }

    /// Checks what parsing cannot know: that interests and fields exist, and that each
    /// attribute's operator and value fit the field's type.
    pub fn check(
        &self,
        fields: &[FieldDeclaration],
        interests: &[String],
    ) -> Result<(), FilterErrors> {
        self.check_at("filter", fields, interests)
    }

    pub fn check_at(
        &self,
        root: &str,
        fields: &[FieldDeclaration],
        interests: &[String],
    ) -> Result<(), FilterErrors> {
        let mut errors = FilterErrors::new();
        self.check_node(root, fields, interests, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn check_node(
        &self,
        path: &str,
        fields: &[FieldDeclaration],
        interests: &[String],
        errors: &mut FilterErrors,
    ) {
        let mut fail = |at: String, message: String| errors.add(at, message);
        match self {
            Self::All(children) | Self::Any(children) => {
                let kind = if matches!(self, Self::All(_)) {
                    "all"
                } else {
                    "any"
                };
                for (i, child) in children.iter().enumerate() {
                    child.check_node(&format!("{path}.{kind}[{i}]"), fields, interests, errors);
                }
            }
            Self::Not(inner) => inner.check_node(&format!("{path}.not"), fields, interests, errors),
            Self::Interest(slug) => {
                if !interests.contains(slug) {
                    fail(format!("{path}.interest"), "is not an interest".into());
                }
            }
            Self::Attribute(condition) => {
                let at = format!("{path}.attribute");
                let Some(field) = fields.iter().find(|f| f.key == condition.key) else {
                    return fail(format!("{at}.key"), "is not a declared field".into());
                };
                if !AttributeOp::allowed_for(field.field_type).contains(&condition.op) {
                    return fail(
                        format!("{at}.op"),
                        format!(
                            "\"{}\" does not apply to a {} field",
                            condition.op.as_str(),
                            field.field_type.as_str()
                        ),
                    );
                }
                let values: Vec<(String, &Scalar)> = match &condition.value {
                    AttributeValue::None => vec![],
                    AttributeValue::One(v) => vec![(format!("{at}.value"), v)],
                    AttributeValue::List(list) => list
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{at}.value[{i}]"), v))
                        .collect(),
                };
                // contains/starts_with look for a piece of text, not a whole allowed value.
                let whole = !matches!(
                    condition.op,
                    AttributeOp::Contains | AttributeOp::StartsWith
                );
                for (at, value) in values {
                    if let Err(message) = fits(field, value, whole) {
                        fail(at, message);
                    }
                }
            }
            Self::Language(_)
            | Self::Created(_)
            | Self::Confirmed(_)
            | Self::EmailDomain(_)
            | Self::Source(_) => {}
        }
    }

    /// The interests the filter names, each once, in the order they first appear.
    pub fn interests(&self, found: &mut Vec<String>) {
        match self {
            Self::All(children) | Self::Any(children) => {
                children.iter().for_each(|c| c.interests(found))
            }
            Self::Not(inner) => inner.interests(found),
            Self::Interest(slug) if !found.contains(slug) => found.push(slug.clone()),
            _ => {}
        }
    }

    /// The canonical form to store: the same shape as the input, normalised.
    pub fn to_json(&self) -> Value {
        let time = |t: &NaiveDateTime| t.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let range = |r: &TimeRange| {
            let mut m = Map::new();
            if let Some(after) = &r.after {
                m.insert("after".into(), time(after).into());
            }
            if let Some(before) = &r.before {
                m.insert("before".into(), time(before).into());
            }
            Value::Object(m)
        };
        match self {
            Self::All(c) => json!({ "all": c.iter().map(Self::to_json).collect::<Vec<_>>() }),
            Self::Any(c) => json!({ "any": c.iter().map(Self::to_json).collect::<Vec<_>>() }),
            Self::Not(inner) => json!({ "not": inner.to_json() }),
            Self::Interest(slug) => json!({ "interest": slug }),
            Self::Language(language) => json!({ "language": language.as_str() }),
            Self::EmailDomain(domain) => json!({ "email_domain": domain }),
            Self::Source(source) => json!({ "source": source }),
            Self::Created(r) => json!({ "created": range(r) }),
            Self::Confirmed(r) => json!({ "confirmed": range(r) }),
            Self::Attribute(c) => {
                let mut m = Map::new();
                m.insert("key".into(), c.key.clone().into());
                m.insert("op".into(), c.op.as_str().into());
                match &c.value {
                    AttributeValue::None => {}
                    AttributeValue::One(v) => {
                        m.insert("value".into(), v.to_json());
                    }
                    AttributeValue::List(list) => {
                        m.insert("value".into(), list.iter().map(Scalar::to_json).collect());
                    }
                }
                json!({ "attribute": m })
            }
        }
    }
}

/// Whether `value` has the field's type (`whole`: and, for `one_of`, is an allowed value).
fn fits(field: &FieldDeclaration, value: &Scalar, whole: bool) -> Result<(), String> {
    match (field.field_type, value) {
        (FieldType::Text, Scalar::Text(_)) => Ok(()),
        (FieldType::OneOf, Scalar::Text(t)) if !whole || field.allowed_values.contains(t) => Ok(()),
        (FieldType::OneOf, _) => Err(format!(
            "must be one of: {}",
            field.allowed_values.join(", ")
        )),
        (FieldType::Number, Scalar::Number(n)) if n.as_f64().is_some_and(f64::is_finite) => Ok(()),
        (FieldType::Date, Scalar::Text(t))
            if NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .is_ok_and(|d| d.format("%Y-%m-%d").to_string() == *t) =>
        {
            Ok(())
        }
        (FieldType::Boolean, Scalar::Bool(_)) => Ok(()),
        (FieldType::Text, _) => Err("must be text".into()),
        (FieldType::Number, _) => Err("must be a number".into()),
        (FieldType::Date, _) => Err("must be a date such as 2026-05-01".into()),
        (FieldType::Boolean, _) => Err("must be true or false".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(value: Value) -> FilterErrors {
        SegmentFilter::parse(&value).expect_err("an invalid filter")
    }

    fn fields() -> Vec<FieldDeclaration> {
        let field = |key: &str, field_type, allowed: &[&str]| FieldDeclaration {
            key: key.into(),
            field_type,
            allowed_values: allowed.iter().map(|s| s.to_string()).collect(),
            public: false,
        };
        vec![
            field("city", FieldType::Text, &[]),
            field("age", FieldType::Number, &[]),
            field("born", FieldType::Date, &[]),
            field("member", FieldType::Boolean, &[]),
            field("tier", FieldType::OneOf, &["gold", "silver"]),
        ]
    }

    fn check(value: Value) -> Result<(), FilterErrors> {
        SegmentFilter::parse(&value)
            .expect("a valid filter")
            .check(&fields(), &["news".to_owned()])
    }

    #[test]
    fn parses_every_leaf_and_round_trips_canonically() {
        let input = json!({"all": [
            {"interest": "news"},
            {"language": "ES"},
            {"not": {"email_domain": "Example.ORG"}},
            {"any": [
                {"attribute": {"key": "city", "op": "in", "value": ["Phoenix", "Tucson"]}},
                {"attribute": {"key": "member", "op": "exists"}},
            ]},
            {"created": {"after": "2026-01-01T01:00:00+01:00"}},
            {"confirmed": {"before": "2026-02-01T00:00:00.5Z", "after": "2026-01-01T00:00:00Z"}},
        ]});
        let filter = SegmentFilter::parse(&input).unwrap();
        let canonical = filter.to_json();
        assert_eq!(
            canonical,
            json!({"all": [
                {"interest": "news"},
                {"language": "es"},
                {"not": {"email_domain": "example.org"}},
                {"any": [
                    {"attribute": {"key": "city", "op": "in", "value": ["Phoenix", "Tucson"]}},
                    {"attribute": {"key": "member", "op": "exists"}},
                ]},
                {"created": {"after": "2026-01-01T00:00:00Z"}},
                {"confirmed": {"after": "2026-01-01T00:00:00Z", "before": "2026-02-01T00:00:00.500Z"}},
            ]})
        );
        assert_eq!(SegmentFilter::parse(&canonical).unwrap(), filter);
        assert!(check(input).is_ok());
    }

    #[test]
    fn structural_errors_name_their_path() {
        let e = errors(json!({"all": [
            {"interest": "news"},
            {"language": "fr"},
            {"attribute": {"key": "city", "op": "like", "value": "x"}},
            {"colour": "red"},
            {"interest": "news", "language": "en"},
        ]}));
        assert_eq!(e["filter.all[1].language"], ["must be \"en\" or \"es\""]);
        assert_eq!(
            e["filter.all[2].attribute.op"],
            ["unknown operator \"like\""]
        );
        assert!(e["filter.all[3]"][0].starts_with("unknown condition \"colour\""));
        assert!(e.contains_key("filter.all[4]"));
        assert!(!e.contains_key("filter.all[0]"));
        assert!(errors(json!({"any": []})).contains_key("filter.any"));
        assert!(errors(json!([])).contains_key("filter"));
        assert!(errors(
            json!({"attribute": {"key": "city", "op": "eq", "value": "x", "extra": 1}})
        )
        .contains_key("filter.attribute.extra"));
        assert!(
            errors(json!({"attribute": {"key": "City", "op": "eq", "value": "x"}}))
                .contains_key("filter.attribute.key")
        );
        assert!(
            errors(json!({"attribute": {"key": "city", "op": "exists", "value": "x"}}))
                .contains_key("filter.attribute.value")
        );
        assert!(errors(json!({"attribute": {"key": "city", "op": "eq"}}))
            .contains_key("filter.attribute.value"));
        assert!(
            errors(json!({"attribute": {"key": "city", "op": "in", "value": []}}))
                .contains_key("filter.attribute.value")
        );
        assert!(
            errors(json!({"attribute": {"key": "city", "op": "eq", "value": {"a": 1}}}))
                .contains_key("filter.attribute.value")
        );
        assert!(errors(json!({"created": {}})).contains_key("filter.created"));
        assert!(
            errors(json!({"created": {"after": "yesterday"}})).contains_key("filter.created.after")
        );
        assert!(errors(
            json!({"created": {"after": "2026-02-01T00:00:00Z", "before": "2026-01-01T00:00:00Z"}})
        )
        .contains_key("filter.created"));
        assert!(errors(json!({"email_domain": "%.org"})).contains_key("filter.email_domain"));
        assert!(errors(json!({"email_domain": "a@b.org"})).contains_key("filter.email_domain"));
        assert!(errors(json!({"interest": "No Spaces"})).contains_key("filter.interest"));
    }

    #[test]
    fn hostile_input_is_bounded() {
        let mut deep = json!({"interest": "news"});
        for _ in 0..MAX_DEPTH - 1 {
            deep = json!({ "not": deep });
        }
        assert!(SegmentFilter::parse(&deep).is_ok());
        let too_deep = json!({ "not": deep });
        let e = errors(too_deep);
        assert_eq!(e.len(), 1);
        assert!(e.keys().next().unwrap().ends_with(".not.not"), "{e:?}");

        let leaves = vec![json!({"interest": "news"}); MAX_NODES - 1];
        assert!(SegmentFilter::parse(&json!({ "any": leaves })).is_ok());
        let leaves = vec![json!({"interest": "news"}); 10_000];
        let e = errors(json!({ "any": leaves }));
        assert_eq!(e.len(), 1, "one message, not ten thousand");
        assert!(e.iter().next().unwrap().1[0].contains("more than 200"));

        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert!(
            errors(json!({"attribute": {"key": "city", "op": "eq", "value": long}}))
                .contains_key("filter.attribute.value")
        );
        let list = vec![json!("x"); MAX_LIST + 1];
        assert!(
            errors(json!({"attribute": {"key": "city", "op": "in", "value": list}}))
                .contains_key("filter.attribute.value")
        );
        let op = "o".repeat(10_000);
        let e = errors(json!({"attribute": {"key": "city", "op": op}}));
        assert!(e["filter.attribute.op"][0].chars().count() < 100);
    }

    #[test]
    fn check_fits_operators_and_values_to_field_types() {
        let attr = |key: &str, op: &str, value: Value| {
            check(json!({"attribute": {"key": key, "op": op, "value": value}}))
        };
        let exists = |key: &str, op: &str| check(json!({"attribute": {"key": key, "op": op}}));
        for (key, op, value) in [
            ("city", "eq", json!("Phoenix")),
            ("city", "ne", json!("Phoenix")),
            ("city", "contains", json!("oen")),
            ("city", "starts_with", json!("Ph")),
            ("city", "in", json!(["a", "b"])),
            ("tier", "eq", json!("gold")),
            ("tier", "in", json!(["gold", "silver"])),
            ("tier", "contains", json!("ol")),
            ("age", "eq", json!(30)),
            ("age", "ne", json!(30)),
            ("age", "gt", json!(2.5)),
            ("age", "gte", json!(30)),
            ("age", "lt", json!(30)),
            ("age", "lte", json!(30)),
            ("born", "eq", json!("2000-01-31")),
            ("born", "before", json!("2000-01-31")),
            ("born", "after", json!("2000-01-31")),
            ("born", "gt", json!("2000-01-31")),
            ("born", "lt", json!("2000-01-31")),
            ("member", "eq", json!(true)),
        ] {
            assert_eq!(attr(key, op, value.clone()), Ok(()), "{key} {op} {value}");
        }
        for key in ["city", "age", "born", "member", "tier"] {
            assert_eq!(exists(key, "exists"), Ok(()));
            assert_eq!(exists(key, "not_exists"), Ok(()));
        }
        for (key, op, value, path) in [
            ("city", "gt", json!("a"), "op"),
            ("city", "eq", json!(3), "value"),
            ("city", "in", json!(["a", 3]), "value[1]"),
            ("tier", "eq", json!("bronze"), "value"),
            ("tier", "in", json!(["gold", "bronze"]), "value[1]"),
            ("age", "eq", json!("30"), "value"),
            ("age", "contains", json!("3"), "op"),
            ("age", "in", json!([1]), "op"),
            ("born", "eq", json!("2000-02-30"), "value"),
            ("born", "eq", json!("2000-1-5"), "value"),
            ("born", "after", json!("2000-01-01T00:00:00Z"), "value"),
            ("born", "gte", json!("2000-01-01"), "op"),
            ("born", "ne", json!("2000-01-01"), "op"),
            ("member", "eq", json!("true"), "value"),
            ("member", "ne", json!(true), "op"),
            ("nickname", "eq", json!("x"), "key"),
        ] {
            let e = attr(key, op, value.clone()).expect_err(&format!("{key} {op} {value}"));
            assert!(
                e.contains_key(&format!("filter.attribute.{path}")),
                "{key} {op} {value}: {e:?}"
            );
        }
        let e = check(json!({"any": [{"interest": "news"}, {"not": {"interest": "gardening"}}]}))
            .unwrap_err();
        assert_eq!(e["filter.any[1].not.interest"], ["is not an interest"]);
    }
}

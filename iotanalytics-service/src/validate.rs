//! Input rules of the service: resource names, message ids, payload shape and attribute names.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::Error;

/// Largest accepted message payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;
/// Most messages in one `BatchPutMessage`.
pub const MAX_MESSAGES_PER_BATCH: usize = 100;
/// Longest accepted message id.
pub const MAX_MESSAGE_ID_CHARS: usize = 128;

/// Checks a channel, datastore, pipeline or dataset name (`^[a-zA-Z0-9_]+$`, 1–128).
pub fn check_resource_name(field: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "1 validation error detected: Value '{name}' at '{field}' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: ^[a-zA-Z0-9_]+$ and have length between 1 and 128"
        )))
    }
}

/// True when `name` is a valid message attribute name:
/// `^[A-Za-z_]([A-Za-z0-9]*|[A-Za-z0-9][A-Za-z0-9_]*)$`, at most 255 characters.
pub fn is_valid_attribute_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 255 {
        return false;
    }
    if !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return false;
    }
    let rest = &b[1..];
    match rest.first() {
        None => true,
        Some(first) if first.is_ascii_alphanumeric() => rest[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_'),
        Some(_) => false,
    }
}

/// Kind of a JSON value, as far as the datastore schema is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttrType {
    /// Only `null` seen so far.
    Null,
    /// `true` / `false`.
    Bool,
    /// Integral number.
    Int,
    /// Number with a fraction or exponent.
    Float,
    /// String.
    Str,
    /// Object or array, kept as JSON text.
    Json,
}

impl AttrType {
    /// Kind of a raw JSON value, read from its first characters.
    pub fn of_raw(raw: &str) -> AttrType {
        match raw.as_bytes().first() {
            Some(b'"') => AttrType::Str,
            Some(b't' | b'f') => AttrType::Bool,
            Some(b'n') => AttrType::Null,
            Some(b'{' | b'[') => AttrType::Json,
            _ => {
                if raw.bytes().any(|c| matches!(c, b'.' | b'e' | b'E')) {
                    AttrType::Float
                } else {
                    AttrType::Int
                }
            }
        }
    }

    /// The narrowest kind that holds values of both kinds.
    pub fn merge(self, other: AttrType) -> AttrType {
        use AttrType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, b) => b,
            (a, Null) => a,
            (Int, Float) | (Float, Int) => Float,
            _ => Str,
        }
    }
}

/// Adds one attribute to a schema (names compare case-insensitively and are kept
/// lower-cased, in order of first appearance; kinds widen with [`AttrType::merge`]).
/// Returns whether the schema changed.
pub fn merge_attr(schema: &mut Vec<(String, AttrType)>, name: &str, ty: AttrType) -> bool {
    merge_attr_at(schema, usize::MAX, name, ty)
}

/// [`merge_attr`] for the attribute at `position` in its message: messages of one source
/// list their attributes in the same order, so the schema's slot at that position is tried
/// before the search.
pub fn merge_attr_at(
    schema: &mut Vec<(String, AttrType)>,
    position: usize,
    name: &str,
    ty: AttrType,
) -> bool {
    let slot = match schema.get(position) {
        Some((n, _)) if n.eq_ignore_ascii_case(name) => Some(position),
        _ => schema
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name)),
    };
    match slot.map(|i| &mut schema[i]) {
        Some(slot) => {
            let merged = slot.1.merge(ty);
            let changed = merged != slot.1;
            slot.1 = merged;
            changed
        }
        None => {
            schema.push((name.to_ascii_lowercase(), ty));
            true
        }
    }
}

/// Top-level attributes of a payload, in document order: each name (borrowed from the payload
/// unless it holds escapes) and the raw text of its value.
pub struct Attributes<'a>(pub Vec<(Cow<'a, str>, &'a str)>);

impl Attributes<'_> {
    /// Each attribute's name and the kind of its value, in order.
    pub fn types(&self) -> Vec<(&str, AttrType)> {
        self.0
            .iter()
            .map(|(name, raw)| (name.as_ref(), AttrType::of_raw(raw)))
            .collect()
    }
}

/// An attribute name, borrowed from the payload when it can be.
struct Name<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Name<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Name<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an attribute name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
            fn visit_string<E>(self, name: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(name)))
            }
        }
        deserializer.deserialize_str(V(std::marker::PhantomData))
    }
}

/// Every member of a JSON object, in order and repeats kept, read by serde_json.
struct Members<'a>(Vec<(Cow<'a, str>, &'a str)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Name(k), v)) = map.next_entry::<Name<'de>, &'de RawValue>()? {
                    out.push((k, v.get()));
                }
                Ok(Members(out))
            }
        }
        deserializer.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The members of a payload by serde_json, the parser that reads every JSON text and words
/// the error for any other.
pub(crate) fn parse_members(
    payload: &[u8],
) -> Result<Vec<(Cow<'_, str>, &str)>, serde_json::Error> {
    serde_json::from_slice::<Members<'_>>(payload).map(|m| m.0)
}

/// Parses a payload and checks that it is a JSON object whose attribute names are valid and
/// case-insensitively unique. The error text is what the client sees in its error entry.
///
/// Most payloads are flat objects of scalars; [`crate::flat_payload::members`] reads those in
/// one pass, and serde_json reads the rest.
pub fn parse_payload(payload: &[u8]) -> Result<Attributes<'_>, String> {
    let members = match crate::flat_payload::members(payload) {
        Some(flat) => flat
            .into_iter()
            .map(|(name, raw)| (Cow::Borrowed(name), raw))
            .collect(),
        None => parse_members(payload)
            .map_err(|e| format!("The payload is not a valid JSON object: {e}"))?,
    };
    let attrs = Attributes(members);
    for (i, (name, _)) in attrs.0.iter().enumerate() {
        if !is_valid_attribute_name(name) {
            return Err(format!(
                "Attribute name '{name}' is invalid: it must match \
                 ^[A-Za-z_]([A-Za-z0-9]*|[A-Za-z0-9][A-Za-z0-9_]*)$ and be at most 255 characters"
            ));
        }
        if attrs.0[..i]
            .iter()
            .any(|(other, _)| other.eq_ignore_ascii_case(name))
        {
            return Err(format!(
                "Attribute name '{name}' appears more than once (names are case-insensitive)"
            ));
        }
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_names_are_read_like_plain_ones() {
        let attrs = parse_payload(br#"{"te\u006dp":"1","rowid":2}"#).unwrap();
        let names: Vec<&str> = attrs.0.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, ["temp", "rowid"]);
        assert!(matches!(attrs.0[0].0, Cow::Owned(_)));
        assert!(matches!(attrs.0[1].0, Cow::Borrowed(_)));
        let Err(repeated) = parse_payload(br#"{"temp":1,"TE\u006dP":2}"#) else {
            panic!("a repeated name was accepted");
        };
        assert!(repeated.contains("more than once"), "{repeated}");
    }

    #[test]
    fn attribute_names_follow_the_documented_pattern() {
        for good in ["temp", "_x", "a", "ab_c", "A1_2", "rowid"] {
            assert!(is_valid_attribute_name(good), "{good} should be valid");
        }
        for bad in ["", "1a", "a_b", "a-b", "a b", "é", &"a".repeat(256)] {
            assert!(!is_valid_attribute_name(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn resource_names_allow_only_word_characters() {
        assert!(check_resource_name("channelName", "bpm_blog_channel").is_ok());
        assert!(check_resource_name("channelName", "bad-name").is_err());
        assert!(check_resource_name("channelName", "").is_err());
        assert!(check_resource_name("channelName", &"a".repeat(129)).is_err());
    }

    #[test]
    fn a_merge_at_a_position_finds_the_name_wherever_it_is() {
        let mut schema = vec![
            ("a".to_owned(), AttrType::Int),
            ("b".to_owned(), AttrType::Int),
        ];
        assert!(merge_attr_at(&mut schema, 0, "B", AttrType::Float));
        assert!(!merge_attr_at(&mut schema, 1, "b", AttrType::Int));
        assert!(!merge_attr_at(&mut schema, 7, "A", AttrType::Null));
        assert!(merge_attr_at(&mut schema, 0, "C", AttrType::Str));
        assert_eq!(
            schema,
            [
                ("a".to_owned(), AttrType::Int),
                ("b".to_owned(), AttrType::Float),
                ("c".to_owned(), AttrType::Str)
            ]
        );
    }

    #[test]
    fn attribute_kinds_widen_to_string_on_conflict() {
        assert_eq!(AttrType::of_raw("10"), AttrType::Int);
        assert_eq!(AttrType::of_raw("1.5"), AttrType::Float);
        assert_eq!(AttrType::Int.merge(AttrType::Float), AttrType::Float);
        assert_eq!(AttrType::Int.merge(AttrType::Str), AttrType::Str);
        assert_eq!(AttrType::Null.merge(AttrType::Bool), AttrType::Bool);
    }

    #[test]
    fn payloads_with_duplicate_names_in_any_case_are_rejected() {
        assert!(parse_payload(br#"{"temp": 1, "TEMP": 2}"#).is_err());
        assert!(parse_payload(br#"[1, 2]"#).is_err());
        assert_eq!(
            parse_payload(br#"{"temp": 1, "loc": "A"}"#)
                .unwrap()
                .0
                .len(),
            2
        );
    }
}

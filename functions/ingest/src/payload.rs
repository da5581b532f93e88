//! Turns a CSV header into IoT Analytics attribute names and each row into a JSON payload.

use serde::{Deserialize, Serialize};

/// Largest message payload BatchPutMessage accepts, in bytes (128 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// Longest attribute name IoT Analytics accepts.
pub const MAX_ATTRIBUTE_NAME_LEN: usize = 255;

/// How CSV values appear in the JSON payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ValueMode {
    /// Every value is a JSON string, as read from the CSV (the default).
    #[default]
    Strings,
    /// Values written as JSON numbers (integers, decimals, exponents) become numbers;
    /// everything else stays a string.
    Typed,
}

/// Whether `name` is a valid IoT Analytics attribute name:
/// `^[A-Za-z_]([A-Za-z0-9]*|[A-Za-z0-9][A-Za-z0-9_]*)$`, at most 255 characters.
pub fn is_valid_attribute_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    if bytes.len() > MAX_ATTRIBUTE_NAME_LEN || !(first.is_ascii_alphabetic() || first == b'_') {
        return false;
    }
    match rest.split_first() {
        None => true,
        Some((&second, tail)) => {
            second.is_ascii_alphanumeric()
                && tail.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
        }
    }
}

/// Checks header names and prepares the JSON key of each column.
///
/// Returns the reason for the first column that IoT Analytics would reject: empty, not a valid
/// attribute name (hyphens, spaces, a leading digit...), or equal to an earlier one ignoring
/// case.
pub fn validate_header(names: &[String]) -> Result<(), String> {
    let mut seen = std::collections::HashMap::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let column = index + 1;
        if name.is_empty() {
            return Err(format!("column {column} has an empty name"));
        }
        if !is_valid_attribute_name(name) {
            return Err(format!(
                "column {column} name {name:?} is not a valid attribute name (letters, digits and underscores, starting with a letter or underscore, at most {MAX_ATTRIBUTE_NAME_LEN} characters)"
            ));
        }
        if let Some(earlier) = seen.insert(name.to_ascii_lowercase(), column) {
            return Err(format!(
                "column {column} name {name:?} repeats column {earlier} ignoring case"
            ));
        }
    }
    Ok(())
}

/// Encodes rows under one header into JSON object payloads, reusing its buffers.
#[derive(Debug, Clone)]
pub struct PayloadEncoder {
    keys: Vec<Vec<u8>>,
    mode: ValueMode,
}

/// Why a row could not become a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowProblem {
    /// The row has a different number of fields than the header.
    FieldCount {
        /// Fields in the row.
        found: usize,
        /// Columns in the header.
        expected: usize,
    },
    /// A field is not valid UTF-8.
    InvalidUtf8 {
        /// 1-based column.
        column: usize,
    },
    /// The JSON payload would exceed [`MAX_PAYLOAD_BYTES`].
    TooLarge {
        /// Payload size in bytes.
        bytes: usize,
    },
    /// The row ended inside a quoted field that never closed.
    UnterminatedQuote,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FieldCount { found, expected } => {
                write!(f, "{found} fields where the header has {expected}")
            }
            Self::InvalidUtf8 { column } => write!(f, "column {column} is not valid UTF-8"),
            Self::TooLarge { bytes } => write!(
                f,
                "payload of {bytes} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte message limit"
            ),
            Self::UnterminatedQuote => write!(f, "a quoted field is never closed"),
        }
    }
}

impl PayloadEncoder {
    /// An encoder for a validated header (see [`validate_header`]).
    pub fn new(header: &[String], mode: ValueMode) -> Self {
        let keys = header
            .iter()
            .map(|name| {
                // Valid attribute names need no JSON escaping.
                let mut key = Vec::with_capacity(name.len() + 3);
                key.push(b'"');
                key.extend_from_slice(name.as_bytes());
                key.extend_from_slice(b"\":");
                key
            })
            .collect();
        Self { keys, mode }
    }

    /// Number of columns.
    pub fn columns(&self) -> usize {
        self.keys.len()
    }

    /// Writes the row's payload into `out` (cleared first).
    pub fn encode<'a>(
        &self,
        fields: impl ExactSizeIterator<Item = &'a [u8]>,
        out: &mut Vec<u8>,
    ) -> Result<(), RowProblem> {
        if fields.len() != self.keys.len() {
            return Err(RowProblem::FieldCount {
                found: fields.len(),
                expected: self.keys.len(),
            });
        }
        out.clear();
        out.push(b'{');
        for (index, (key, value)) in self.keys.iter().zip(fields).enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key);
            if std::str::from_utf8(value).is_err() {
                return Err(RowProblem::InvalidUtf8 { column: index + 1 });
            }
            if self.mode == ValueMode::Typed && is_json_number(value) {
                out.extend_from_slice(value);
            } else {
                write_json_string(value, out);
            }
        }
        out.push(b'}');
        if out.len() > MAX_PAYLOAD_BYTES {
            return Err(RowProblem::TooLarge { bytes: out.len() });
        }
        Ok(())
    }
}

/// Whether `value` is a number in JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
///
/// Values such as `007`, `+1`, `1.` or `NaN` stay strings, so typed mode never changes a value.
fn is_json_number(value: &[u8]) -> bool {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < value.len() && value[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if value.first() == Some(&b'-') {
        i += 1;
    }
    match value.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if value.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(value.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(value.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == value.len()
}

/// Appends `value` (valid UTF-8) as a JSON string literal.
fn write_json_string(value: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let mut plain_from = 0;
    for (i, &b) in value.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&value[plain_from..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        plain_from = i + 1;
    }
    out.extend_from_slice(&value[plain_from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn encode(names: &[&str], row: &[&str], mode: ValueMode) -> Result<String, RowProblem> {
        let encoder = PayloadEncoder::new(&header(names), mode);
        let mut out = Vec::new();
        encoder.encode(row.iter().map(|s| s.as_bytes()), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn attribute_names_follow_the_service_pattern() {
        for good in ["temp", "_", "_a", "_ab_", "ab_c", "A1", "x9_", "device_id"] {
            assert!(is_valid_attribute_name(good), "{good}");
        }
        let long = "a".repeat(256);
        // The pattern wants a letter or digit right after the first character: `a_b` is refused.
        for bad in ["", "1a", "a-b", "a b", "__x", "a_b", "é", long.as_str()] {
            assert!(!is_valid_attribute_name(bad), "{bad}");
        }
    }

    #[test]
    fn headers_with_rejected_names_are_explained() {
        let hyphen = validate_header(&header(&["ok", "device-id"])).unwrap_err();
        assert!(hyphen.contains("column 2") && hyphen.contains("device-id"));
        let empty = validate_header(&header(&["a", ""])).unwrap_err();
        assert!(empty.contains("empty"));
        let dup = validate_header(&header(&["Temp", "b", "temp"])).unwrap_err();
        assert!(dup.contains("repeats column 1"), "{dup}");
        assert!(validate_header(&header(&["deviceid", "temp"])).is_ok());
    }

    #[test]
    fn rows_become_json_objects_of_strings() {
        let json = encode(&["a", "b"], &["1", "say \"hi\"\n\\"], ValueMode::Strings).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value, serde_json::json!({"a": "1", "b": "say \"hi\"\n\\"}));
    }

    #[test]
    fn control_characters_are_escaped_as_unicode() {
        let json = encode(&["a"], &["\u{1}x\u{1f}"], ValueMode::Strings).unwrap();
        assert_eq!(json, r#"{"a":"\u0001x\u001f"}"#);
    }

    #[test]
    fn typed_mode_turns_only_json_numbers_into_numbers() {
        let json = encode(
            &["i", "f", "e", "lead", "plus", "dot", "word", "empty"],
            &["-12", "3.25", "1e5", "007", "+1", "1.", "NaN", ""],
            ValueMode::Typed,
        )
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"i": -12, "f": 3.25, "e": 1e5, "lead": "007", "plus": "+1",
                "dot": "1.", "word": "NaN", "empty": ""})
        );
    }

    #[test]
    fn ragged_rows_are_refused() {
        let problem = encode(&["a", "b"], &["1"], ValueMode::Strings).unwrap_err();
        assert_eq!(
            problem,
            RowProblem::FieldCount {
                found: 1,
                expected: 2
            }
        );
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_column() {
        let encoder = PayloadEncoder::new(&header(&["a", "b"]), ValueMode::Strings);
        let mut out = Vec::new();
        let problem = encoder
            .encode([&b"ok"[..], &b"\xff\xfe"[..]].into_iter(), &mut out)
            .unwrap_err();
        assert_eq!(problem, RowProblem::InvalidUtf8 { column: 2 });
    }

    #[test]
    fn payloads_over_the_limit_are_refused() {
        let big = "x".repeat(MAX_PAYLOAD_BYTES);
        let problem = encode(&["a"], &[&big], ValueMode::Strings).unwrap_err();
        assert!(matches!(problem, RowProblem::TooLarge { bytes } if bytes > MAX_PAYLOAD_BYTES));
        let fits = "x".repeat(MAX_PAYLOAD_BYTES - 8);
        assert!(encode(&["a"], &[&fits], ValueMode::Strings).is_ok());
    }
}

//! The Wait state's own fields: exactly one of Seconds, SecondsPath, Timestamp, TimestampPath.

use crate::definition::fields::{Res, err, parse_timestamp, query_of, reference_path};
use crate::definition::state::Kind;
use crate::error::Error;
use crate::jsonata::Query;
use crate::jsonpath::Path;
use serde_json::{Map, Value};

/// The fields a Wait state allows besides the common ones and Next/End and the paths.
pub(in crate::definition) const FIELDS: &[&str] =
    &["Seconds", "SecondsPath", "Timestamp", "TimestampPath"];

/// How long a Wait state waits.
#[derive(Debug)]
pub(crate) enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    Timestamp(chrono::DateTime<chrono::FixedOffset>),
    TimestampPath(Path),
    /// JSONata: Seconds given as an expression.
    SecondsQuery(Query),
    /// JSONata: Timestamp given as an expression.
    TimestampQuery(Query),
}

/// Parses a Wait state's own fields.
pub(in crate::definition) fn parse_wait(s: Option<&str>, obj: &Map<String, Value>) -> Res<Kind> {
    let present: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if present.len() != 1 {
        return err(
            s,
            "Seconds",
            "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
        );
    }
    let v = &obj[present[0]];
    if let Some(query) = query_of(s, present[0], v)? {
        return Ok(Kind::Wait(match present[0] {
            "Seconds" => WaitFor::SecondsQuery(query),
            "Timestamp" => WaitFor::TimestampQuery(query),
            other => return err(s, other, "takes a path, not a JSONata expression"),
        }));
    }
    Ok(Kind::Wait(match present[0] {
        "Seconds" => WaitFor::Seconds(
            v.as_u64()
                .ok_or_else(|| Error::definition(s, "Seconds", "must be a non-negative integer"))?,
        ),
        "SecondsPath" => WaitFor::SecondsPath(reference_path(s, "SecondsPath", v)?),
        "Timestamp" => {
            WaitFor::Timestamp(v.as_str().and_then(parse_timestamp).ok_or_else(|| {
                Error::definition(s, "Timestamp", "must be an RFC 3339 timestamp")
            })?)
        }
        _ => WaitFor::TimestampPath(reference_path(s, "TimestampPath", v)?),
    }))
}

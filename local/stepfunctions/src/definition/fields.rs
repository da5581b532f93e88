//! Field parsers every part of a definition shares: paths, reference paths, strings or paths
//! or intrinsics, numbers given literally or by a path, string lists, positive integers and
//! timestamps, each rejecting a bad value with the state and the field named.

use crate::error::Error;
use crate::intrinsics::{self, Call};
use crate::jsonata::{Query, expression_text};
use crate::jsonpath::Path;
use serde_json::{Map, Value};

/// The result of parsing part of a definition.
pub(super) type Res<T> = Result<T, Error>;

/// Rejects `field` of `state` (`None` for the machine itself).
pub(super) fn err<T>(state: Option<&str>, field: &str, message: impl Into<String>) -> Res<T> {
    Err(Error::definition(state, field, message))
}

/// A static string or a value computed from a path or intrinsic (Fail's Error/Cause).
#[derive(Debug)]
pub(crate) enum Expr {
    Static(String),
    Path(Path),
    Call(Call),
    /// A JSONata expression (in a JSONata state).
    Query(Query),
}

/// A number given literally or by a reference path (Map's MaxConcurrency and friends).
#[derive(Debug, Clone)]
pub(crate) enum NumberOr {
    Value(f64),
    Path(Path),
    /// A JSONata expression (in a JSONata state).
    Query(Query),
}

/// The expression of a `{% ... %}` string, compiled, or `None` for any other value.
pub(super) fn query_of(s: Option<&str>, field: &str, v: &Value) -> Res<Option<Query>> {
    match v.as_str().and_then(expression_text) {
        Some(inner) => Query::compile(inner)
            .map(Some)
            .map_err(|e| Error::definition(s, field, e)),
        None => Ok(None),
    }
}

/// `$`, the path a missing InputPath, OutputPath, ResultPath or ItemsPath stands for.
pub(super) fn root_path() -> Path {
    Path::parse("$").expect("'$' is a path")
}

/// InputPath or OutputPath: `$` when absent, `None` for null.
pub(super) fn path_field(
    s: Option<&str>,
    obj: &Map<String, Value>,
    field: &str,
) -> Res<Option<Path>> {
    match obj.get(field) {
        None => Ok(Some(root_path())),
        Some(Value::Null) => Ok(None),
        Some(Value::String(p)) => Ok(Some(
            Path::parse(p).map_err(|e| Error::definition(s, field, e))?,
        )),
        Some(_) => err(s, field, "must be a path or null"),
    }
}

/// ResultPath (of a state or a catcher): `$` when absent, `None` for null (the result is
/// discarded), else a reference path.
pub(super) fn result_path(s: Option<&str>, field: &str, v: Option<&Value>) -> Res<Option<Path>> {
    match v {
        None => Ok(Some(root_path())),
        Some(Value::Null) => Ok(None),
        Some(Value::String(p)) => Ok(Some(
            Path::parse_reference(p).map_err(|e| Error::definition(s, field, e))?,
        )),
        Some(_) => err(s, field, "must be a reference path or null"),
    }
}

/// A path that selects a single node (SecondsPath, TimeoutSecondsPath, ...).
pub(super) fn reference_path(s: Option<&str>, field: &str, v: &Value) -> Res<Path> {
    let text = v
        .as_str()
        .ok_or_else(|| Error::definition(s, field, "must be a reference path string"))?;
    let path = Path::parse(text).map_err(|e| Error::definition(s, field, e))?;
    if !path.is_definite() {
        return err(s, field, "must be a reference path (a single node)");
    }
    Ok(path)
}

/// A string given literally (`literal`) or by a path or intrinsic function (`path`), at most
/// one of the two (Fail's Error/ErrorPath and Cause/CausePath).
pub(super) fn expr_field(
    s: Option<&str>,
    obj: &Map<String, Value>,
    literal: &str,
    path: &str,
    jsonata: bool,
) -> Res<Option<Expr>> {
    match (obj.get(literal), obj.get(path)) {
        (Some(_), Some(_)) => err(s, path, format!("cannot be used together with {literal}")),
        (Some(v), None) if jsonata && query_of(s, literal, v)?.is_some() => {
            Ok(query_of(s, literal, v)?.map(Expr::Query))
        }
        (Some(Value::String(v)), None) => Ok(Some(Expr::Static(v.clone()))),
        (Some(_), None) => err(s, literal, "must be a string"),
        (None, Some(Value::String(v))) => {
            if intrinsics::looks_like_call(v) {
                Ok(Some(Expr::Call(
                    Call::parse(v).map_err(|e| Error::definition(s, path, e))?,
                )))
            } else {
                Ok(Some(Expr::Path(reference_path(
                    s,
                    path,
                    &Value::String(v.clone()),
                )?)))
            }
        }
        (None, Some(_)) => err(s, path, "must be a path or intrinsic function string"),
        (None, None) => Ok(None),
    }
}

/// A number given literally (`field`, from `min` to `max`) or by a reference path
/// (`<field>Path`), at most one of the two.
pub(super) fn number_or(
    s: Option<&str>,
    obj: &Map<String, Value>,
    field: &str,
    min: f64,
    max: f64,
) -> Res<Option<NumberOr>> {
    let path_field = format!("{field}Path");
    match (obj.get(field), obj.get(&path_field)) {
        (Some(_), Some(_)) => err(
            s,
            &path_field,
            format!("cannot be used together with {field}"),
        ),
        (Some(v), None) if query_of(s, field, v)?.is_some() => {
            Ok(query_of(s, field, v)?.map(NumberOr::Query))
        }
        (Some(v), None) => match v.as_f64() {
            Some(n) if n >= min && n <= max => Ok(Some(NumberOr::Value(n))),
            _ => err(s, field, format!("must be a number from {min} to {max}")),
        },
        (None, Some(v)) => Ok(Some(NumberOr::Path(reference_path(s, &path_field, v)?))),
        (None, None) => Ok(None),
    }
}

/// A non-empty array of strings (ErrorEquals).
pub(super) fn string_list(s: Option<&str>, field: &str, v: Option<&Value>) -> Res<Vec<String>> {
    let Some(items) = v.and_then(Value::as_array) else {
        return err(s, field, "is required and must be an array of strings");
    };
    if items.is_empty() {
        return err(s, field, "must not be empty");
    }
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::definition(s, field, "must contain strings only"))
        })
        .collect()
}

/// A positive integer (TimeoutSeconds, IntervalSeconds, MaxDelaySeconds).
pub(super) fn positive_integer(s: Option<&str>, field: &str, v: &Value) -> Res<u64> {
    v.as_u64()
        .filter(|n| *n >= 1)
        .ok_or_else(|| Error::definition(s, field, "must be a positive integer"))
}

/// Parses an RFC 3339 timestamp as the States Language requires (uppercase T, offset or Z).
pub(crate) fn parse_timestamp(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    // AWS wants the upper-case `T` between date and time (chrono also takes a space or `t`).
    if text.contains('t') || text.contains('z') || text.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(text).ok()
}

/// Rejects the first key of `obj` that is not in `allowed`, as the field `<prefix><key>`.
pub(super) fn known_fields(
    s: Option<&str>,
    obj: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
    message: &str,
) -> Res<()> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => err(s, &format!("{prefix}{key}"), message),
        None => Ok(()),
    }
}

//! Retry and Catch: the retriers and catchers of a Task, Parallel or Map state, with the
//! States Language defaults (IntervalSeconds 1, MaxAttempts 3, BackoffRate 2.0) and the rule
//! that States.ALL stands alone in the last entry.

use super::fields::{Res, err, known_fields, positive_integer, result_path, string_list};
use super::template::{Template, assign_template, query_template};
use crate::error::Error;
use crate::jsonpath::Path;
use serde_json::{Map, Value};

/// A Retry entry.
#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub full_jitter: bool,
}

/// A Catch entry.
#[derive(Debug)]
pub(crate) struct Catcher {
    pub error_equals: Vec<String>,
    pub result_path: Option<Path>,
    pub next: String,
    /// The variables the catcher sets.
    pub assign: Option<Template>,
    /// JSONata: the output the catcher passes on (the error output by default).
    pub output: Option<Template>,
}

/// States.ALL must be alone in its ErrorEquals, and in the last retrier or catcher.
fn check_error_equals(s: Option<&str>, field: &str, lists: &[Vec<String>]) -> Res<()> {
    for (i, list) in lists.iter().enumerate() {
        if list.iter().any(|e| e == "States.ALL") && (list.len() > 1 || i + 1 != lists.len()) {
            return err(s, field, "States.ALL must appear alone, in the last entry");
        }
    }
    Ok(())
}

/// Parses a Retry or Catch array (`array`): every entry an object with only the `allowed`
/// fields and an ErrorEquals list; `entry` parses the rest, given the entry, its ErrorEquals and
/// a function naming its fields (`Retry[0].MaxAttempts`). Then checks where States.ALL stands.
fn parse_entries<T>(
    s: Option<&str>,
    array: &str,
    entry_kind: &str,
    allowed: &[&str],
    v: &Value,
    entry: impl Fn(&Map<String, Value>, Vec<String>, &dyn Fn(&str) -> String) -> Res<T>,
) -> Res<Vec<T>> {
    let Some(items) = v.as_array() else {
        return err(s, array, "must be an array");
    };
    let mut out = Vec::new();
    let mut lists = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let f = |name: &str| format!("{array}[{i}].{name}");
        let Some(obj) = item.as_object() else {
            return err(s, &format!("{array}[{i}]"), "must be an object");
        };
        known_fields(
            s,
            obj,
            allowed,
            &f(""),
            &format!("is not supported in a {entry_kind}"),
        )?;
        let error_equals = string_list(s, &f("ErrorEquals"), obj.get("ErrorEquals"))?;
        lists.push(error_equals.clone());
        out.push(entry(obj, error_equals, &f)?);
    }
    check_error_equals(s, array, &lists)?;
    Ok(out)
}

/// Parses a Retry array.
pub(super) fn parse_retry(s: Option<&str>, v: &Value) -> Res<Vec<Retrier>> {
    let allowed = [
        "ErrorEquals",
        "IntervalSeconds",
        "MaxAttempts",
        "BackoffRate",
        "MaxDelaySeconds",
        "JitterStrategy",
        "Comment",
    ];
    parse_entries(
        s,
        "Retry",
        "Retrier",
        &allowed,
        v,
        |obj, error_equals, f| {
            let interval_seconds = match obj.get("IntervalSeconds") {
                None => 1.0,
                Some(v) => positive_integer(s, &f("IntervalSeconds"), v)? as f64,
            };
            let max_attempts = match obj.get("MaxAttempts") {
                None => 3,
                Some(v) => v.as_u64().filter(|n| *n <= 99_999_999).ok_or_else(|| {
                    Error::definition(s, f("MaxAttempts"), "must be a non-negative integer")
                })? as u32,
            };
            let backoff_rate = match obj.get("BackoffRate") {
                None => 2.0,
                Some(v) => v.as_f64().filter(|n| *n >= 1.0).ok_or_else(|| {
                    Error::definition(s, f("BackoffRate"), "must be a number >= 1.0")
                })?,
            };
            let max_delay_seconds = match obj.get("MaxDelaySeconds") {
                None => None,
                Some(v) => Some(positive_integer(s, &f("MaxDelaySeconds"), v)? as f64),
            };
            let full_jitter = match obj.get("JitterStrategy").map(|v| v.as_str()) {
                None | Some(Some("NONE")) => false,
                Some(Some("FULL")) => true,
                _ => return err(s, &f("JitterStrategy"), "must be FULL or NONE"),
            };
            Ok(Retrier {
                error_equals,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                full_jitter,
            })
        },
    )
}

/// Parses a Catch array.
pub(super) fn parse_catch(s: Option<&str>, v: &Value, jsonata: bool) -> Res<Vec<Catcher>> {
    let allowed: &[&str] = if jsonata {
        &["ErrorEquals", "Next", "Output", "Assign", "Comment"]
    } else {
        &["ErrorEquals", "Next", "ResultPath", "Assign", "Comment"]
    };
    parse_entries(s, "Catch", "Catcher", allowed, v, |obj, error_equals, f| {
        let next = obj
            .get("Next")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::definition(s, f("Next"), "is required"))?
            .to_string();
        Ok(Catcher {
            error_equals,
            result_path: result_path(s, &f("ResultPath"), obj.get("ResultPath"))?,
            next,
            assign: obj
                .get("Assign")
                .map(|v| assign_template(s, &f("Assign"), v, jsonata))
                .transpose()?,
            output: obj
                .get("Output")
                .map(|v| query_template(s, &f("Output"), v))
                .transpose()?,
        })
    })
}

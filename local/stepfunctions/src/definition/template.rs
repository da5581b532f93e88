//! Payload templates (Parameters, ResultSelector, ItemSelector, ItemReader.Parameters,
//! ItemBatcher.BatchInput): keys ending in `.$` take a path or an intrinsic function, the rest
//! is copied. In a JSONata state every `{% ... %}` string is an expression instead, and Assign
//! names the variables it sets.

use super::fields::{Res, err};
use crate::error::Error;
use crate::intrinsics::{self, Call};
use crate::jsonata::{Query, expression_text};
use crate::jsonpath::Path;
use crate::variables;
use serde_json::Value;

/// evaluated, everything else is copied.
#[derive(Debug)]
pub(crate) enum Template {
    Static(Value),
    Path(Path),
    Call(Call),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    /// A `{% ... %}` string of a JSONata state.
    Query(Query),
}

/// Parses a payload template; `field` is the dotted name used in errors.
pub(super) fn template(s: Option<&str>, field: &str, v: &Value, top: bool) -> Res<Template> {
    match v {
        Value::Object(map) => {
            let mut out = Vec::with_capacity(map.len());
            for (key, value) in map {
                let name = format!("{field}.{key}");
                if let Some(stripped) = key.strip_suffix(".$") {
                    let Some(text) = value.as_str() else {
                        return err(
                            s,
                            &name,
                            "a key ending in .$ needs a path or intrinsic function string",
                        );
                    };
                    let t = if intrinsics::looks_like_call(text) {
                        Template::Call(
                            Call::parse(text).map_err(|e| Error::definition(s, &name, e))?,
                        )
                    } else {
                        Template::Path(
                            Path::parse(text).map_err(|e| Error::definition(s, &name, e))?,
                        )
                    };
                    out.push((stripped.to_string(), t));
                } else {
                    out.push((key.clone(), template(s, &name, value, false)?));
                }
            }
            Ok(Template::Object(out))
        }
        Value::Array(items) => Ok(Template::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| template(s, &format!("{field}[{i}]"), item, false))
                .collect::<Res<_>>()?,
        )),
        other if top => err(s, field, format!("must be an object, not {other}")),
        other => Ok(Template::Static(other.clone())),
    }
}

/// Parses a field of a JSONata state: any JSON value, in which every string that is a whole
/// `{% ... %}` is compiled as a JSONata expression.
pub(crate) fn query_template(s: Option<&str>, field: &str, v: &Value) -> Res<Template> {
    Ok(match v {
        Value::String(text) => match expression_text(text) {
            Some(inner) => {
                Template::Query(Query::compile(inner).map_err(|e| Error::definition(s, field, e))?)
            }
            None => Template::Static(v.clone()),
        },
        Value::Object(map) => Template::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), query_template(s, &format!("{field}.{k}"), v)?)))
                .collect::<Res<_>>()?,
        ),
        Value::Array(items) => Template::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| query_template(s, &format!("{field}[{i}]"), v))
                .collect::<Res<_>>()?,
        ),
        other => Template::Static(other.clone()),
    })
}

/// Parses an Assign field: an object of variable names (with `.$` in a JSONPath state for a
/// path or intrinsic) or, in a JSONata state, one expression that gives that object.
pub(crate) fn assign_template(
    s: Option<&str>,
    field: &str,
    v: &Value,
    jsonata: bool,
) -> Res<Template> {
    if jsonata && let Value::String(_) = v {
        return query_template(s, field, v);
    }
    let Some(map) = v.as_object() else {
        return err(s, field, "must be an object of variable names and values");
    };
    for key in map.keys() {
        let name = if jsonata {
            key.as_str()
        } else {
            key.strip_suffix(".$").unwrap_or(key)
        };
        if !variables::valid_name(name) {
            return err(
                s,
                &format!("{field}.{key}"),
                "is not a valid variable name (a letter or '_', then letters, digits or '_'; not 'states')",
            );
        }
    }
    if jsonata {
        query_template(s, field, v)
    } else {
        template(s, field, v, true)
    }
}

impl Template {
    /// The static keys at the top of an object template (with `.$` stripped).
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Template::Object(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

//! Payload templates (Parameters, ResultSelector, ItemSelector, ItemReader.Parameters,
//! ItemBatcher.BatchInput): keys ending in `.$` take a path or an intrinsic function, the rest
//! is copied.

use super::fields::{Res, err};
use crate::error::Error;
use crate::intrinsics::{self, Call};
use crate::jsonpath::Path;
use serde_json::Value;

/// evaluated, everything else is copied.
#[derive(Debug)]
pub(crate) enum Template {
    Static(Value),
    Path(Path),
    Call(Call),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
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

impl Template {
    /// The static keys at the top of an object template (with `.$` stripped).
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Template::Object(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

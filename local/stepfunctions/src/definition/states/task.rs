//! The Task state's own fields: the Resource (the integrations this executor runs), the
//! Parameters each integration accepts, and TimeoutSeconds or TimeoutSecondsPath.

use crate::definition::fields::{Res, err, positive_integer, query_of, reference_path};
use crate::definition::state::Kind;
use serde_json::{Map, Value};

/// The fields a Task state allows besides the common ones.
pub(in crate::definition) const FIELDS: &[&str] =
    &["Resource", "TimeoutSeconds", "TimeoutSecondsPath"];

/// A Task's resource.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resource {
    /// `arn:aws:states:::lambda:invoke`.
    LambdaInvoke,
    /// A plain function ARN (the legacy Lambda integration).
    LambdaArn(String),
    /// `arn:aws:states:::states:startExecution` (fire and forget).
    StartExecution,
}

/// Parses a Task state's own fields.
pub(in crate::definition) fn parse_task(
    s: Option<&str>,
    obj: &Map<String, Value>,
    jsonata: bool,
) -> Res<Kind> {
    let Some(resource) = obj.get("Resource").and_then(Value::as_str) else {
        return err(s, "Resource", "is required and must be a string");
    };
    let (resource, allowed_params): (Resource, Option<&[&str]>) = match resource {
        "arn:aws:states:::lambda:invoke" => (
            Resource::LambdaInvoke,
            Some(&["FunctionName", "Payload", "InvocationType", "Qualifier"]),
        ),
        "arn:aws:states:::states:startExecution" => (
            Resource::StartExecution,
            Some(&["StateMachineArn", "Input", "Name"]),
        ),
        r if r.starts_with("arn:aws:lambda:") && r.contains(":function:") => {
            (Resource::LambdaArn(r.to_string()), None)
        }
        r => {
            return err(
                s,
                "Resource",
                format!(
                    "{r:?} is not supported locally (supported: arn:aws:states:::lambda:invoke, \
                     arn:aws:states:::states:startExecution, Lambda function ARNs)"
                ),
            );
        }
    };
    // A JSONata state gives the same fields in Arguments (without `.$` keys).
    let field = if jsonata { "Arguments" } else { "Parameters" };
    let parameters = obj.get(field);
    if let Some(allowed) = allowed_params {
        let Some(params) = parameters.and_then(Value::as_object) else {
            return err(s, field, "is required for this resource");
        };
        for key in params.keys() {
            let bare = key.strip_suffix(".$").unwrap_or(key);
            if !allowed.contains(&bare) || (jsonata && bare != key) {
                return err(
                    s,
                    &format!("{field}.{key}"),
                    "is not supported for this resource by the local executor",
                );
            }
        }
        let required = if resource == Resource::LambdaInvoke {
            "FunctionName"
        } else {
            "StateMachineArn"
        };
        if !params.contains_key(required) && !params.contains_key(&format!("{required}.$")) {
            return err(s, &format!("{field}.{required}"), "is required");
        }
        if let Some(Value::String(kind)) = params.get("InvocationType")
            && kind != "RequestResponse"
        {
            return err(
                s,
                &format!("{field}.InvocationType"),
                "only RequestResponse is supported locally",
            );
        }
    }
    let timeout_query = match obj.get("TimeoutSeconds") {
        Some(v) if jsonata => query_of(s, "TimeoutSeconds", v)?,
        _ => None,
    };
    let timeout_seconds = obj
        .get("TimeoutSeconds")
        .filter(|_| timeout_query.is_none())
        .map(|v| positive_integer(s, "TimeoutSeconds", v))
        .transpose()?;
    let timeout_seconds_path = obj
        .get("TimeoutSecondsPath")
        .map(|v| reference_path(s, "TimeoutSecondsPath", v))
        .transpose()?;
    if timeout_seconds.is_some() && timeout_seconds_path.is_some() {
        return err(
            s,
            "TimeoutSecondsPath",
            "cannot be used together with TimeoutSeconds",
        );
    }
    Ok(Kind::Task {
        resource,
        timeout_seconds,
        timeout_seconds_path,
        timeout_query,
    })
}

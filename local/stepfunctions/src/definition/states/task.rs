//! The Task state's own fields: the Resource (the integrations this executor runs), the
//! Parameters each integration accepts, and TimeoutSeconds or TimeoutSecondsPath.

use crate::definition::fields::{Res, err, positive_integer, reference_path};
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
pub(in crate::definition) fn parse_task(s: Option<&str>, obj: &Map<String, Value>) -> Res<Kind> {
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
    let parameters = obj.get("Parameters");
    if let Some(allowed) = allowed_params {
        let Some(params) = parameters.and_then(Value::as_object) else {
            return err(s, "Parameters", "is required for this resource");
        };
        for key in params.keys() {
            let bare = key.strip_suffix(".$").unwrap_or(key);
            if !allowed.contains(&bare) {
                return err(
                    s,
                    &format!("Parameters.{key}"),
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
            return err(s, &format!("Parameters.{required}"), "is required");
        }
        if let Some(Value::String(kind)) = params.get("InvocationType")
            && kind != "RequestResponse"
        {
            return err(
                s,
                "Parameters.InvocationType",
                "only RequestResponse is supported locally",
            );
        }
    }
    let timeout_seconds = obj
        .get("TimeoutSeconds")
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
    })
}

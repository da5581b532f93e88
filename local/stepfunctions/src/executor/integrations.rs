//! The Task integrations: `lambda:invoke` (with the response envelope AWS adds), a plain
//! Lambda function ARN, and `states:startExecution`, served by the host's [`Resources`] and
//! by this engine.
//!
//! [`Resources`]: crate::Resources

use super::run::Run;
use crate::definition::Resource;
use crate::error::StatesError;
use crate::resources::LambdaError;
use chrono::Utc;
use serde_json::{Value, json};

impl Run {
    /// Calls a Task's resource with its rendered parameters.
    pub(super) async fn call_resource(
        &self,
        resource: &Resource,
        params: Value,
    ) -> Result<Value, StatesError> {
        match resource {
            Resource::LambdaInvoke => {
                let Some(function) = params.get("FunctionName").and_then(Value::as_str) else {
                    return Err(StatesError::runtime(
                        "The lambda:invoke parameter FunctionName must be a string",
                    ));
                };
                let payload = params.get("Payload").cloned().unwrap_or_else(|| json!({}));
                let payload_value = self.invoke(function, payload).await?;
                let (metadata, request_id) =
                    sdk_http_metadata(payload_value.to_string().len(), "application/json", true);
                Ok(json!({
                    "ExecutedVersion": "$LATEST",
                    "Payload": payload_value,
                    "SdkHttpMetadata": metadata,
                    "SdkResponseMetadata": {"RequestId": request_id},
                    "StatusCode": 200
                }))
            }
            Resource::LambdaArn(arn) => self.invoke(arn, params).await,
            Resource::StartExecution => {
                let Some(sm_arn) = params.get("StateMachineArn").and_then(Value::as_str) else {
                    return Err(StatesError::runtime(
                        "The startExecution parameter StateMachineArn must be a string",
                    ));
                };
                let input = match params.get("Input") {
                    None | Some(Value::Null) => json!({}),
                    Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| {
                        StatesError::new(
                            "StepFunctions.InvalidExecutionInputException",
                            format!("Input is not valid JSON: {e}"),
                        )
                    })?,
                    Some(other) => other.clone(),
                };
                let name = params.get("Name").and_then(Value::as_str);
                let started = self
                    .engine
                    .start_execution(sm_arn, name, input)
                    .map_err(|e| {
                        let kind = e.aws_type();
                        let error = if kind.ends_with("Exception") {
                            format!("StepFunctions.{kind}")
                        } else {
                            format!("StepFunctions.{kind}Exception")
                        };
                        StatesError::new(error, e.to_string())
                    })?;
                let body = json!({
                    "executionArn": started.arn,
                    "startDate": started.start_date.timestamp_millis() as f64 / 1000.0,
                });
                let (metadata, request_id) =
                    sdk_http_metadata(body.to_string().len(), "application/x-amz-json-1.0", false);
                Ok(json!({
                    "ExecutionArn": started.arn,
                    "StartDate": started.start_date.timestamp_millis(),
                    "SdkHttpMetadata": metadata,
                    "SdkResponseMetadata": {"RequestId": request_id}
                }))
            }
        }
    }

    /// Invokes a Lambda function through the host; a function error becomes its errorType
    /// (Lambda.Unknown when it has none) with the error object as the cause.
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, StatesError> {
        match self.engine.resources.invoke_lambda(function, payload).await {
            Ok(v) => Ok(v),
            Err(LambdaError::Function {
                error_type,
                error_message,
            }) => {
                let cause =
                    json!({"errorType": error_type, "errorMessage": error_message}).to_string();
                let name = if error_type.is_empty() {
                    "Lambda.Unknown".to_string()
                } else {
                    error_type
                };
                Err(StatesError::new(name, cause))
            }
            Err(LambdaError::Service { error, message }) => Err(StatesError::new(error, message)),
        }
    }
}

/// The `SdkHttpMetadata` AWS integrations add to a service response, and its request id.
fn sdk_http_metadata(length: usize, content_type: &str, lambda: bool) -> (Value, String) {
    let request_id = uuid::Uuid::new_v4().to_string();
    let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let length = length.to_string();
    let mut single = json!({
        "Connection": "keep-alive",
        "Content-Length": length,
        "Content-Type": content_type,
        "Date": date,
        "x-amzn-RequestId": request_id,
    });
    if lambda {
        single["X-Amz-Executed-Version"] = json!("$LATEST");
        single["x-amzn-Remapped-Content-Length"] = json!("0");
    }
    let all: serde_json::Map<String, Value> = single
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    (
        json!({"AllHttpHeaders": all, "HttpHeaders": single, "HttpStatusCode": 200}),
        request_id,
    )
}

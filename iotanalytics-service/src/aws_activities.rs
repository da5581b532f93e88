//! The pipeline activities that call other AWS services: `lambda` (Lambda Invoke),
//! `deviceRegistryEnrich` (IoT DescribeThing) and `deviceShadowEnrich` (IoT data plane
//! GetThingShadow, the classic shadow).
//!
//! The service calls them with its own credentials (on AWS, the function's role); the
//! activity's `roleArn` is checked for its shape but not assumed. Without
//! [`AwsActivityClients`] (the local host) pipelines holding them are refused.

use aws_config::SdkConfig;
use aws_smithy_types::Blob;
use aws_smithy_types::error::display::DisplayErrorContext;
use serde_json::{Map, Value};

/// The clients of the services the AWS-calling activities use.
#[derive(Debug, Clone)]
pub struct AwsActivityClients {
    /// Invokes the `lambda` activities' functions.
    pub lambda: aws_sdk_lambda::Client,
    /// Answers DescribeThing for `deviceRegistryEnrich`.
    pub iot: aws_sdk_iot::Client,
    /// Answers GetThingShadow for `deviceShadowEnrich`.
    pub iot_data: aws_sdk_iotdataplane::Client,
}

/// The longest one Lambda Invoke, DescribeThing or GetThingShadow call (retries included)
/// may take: well under the service function's 30 s timeout, so the request still answers.
pub const ACTIVITY_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl AwsActivityClients {
    /// Clients from the SDK configuration. `iot_data_endpoint` (for example the account's
    /// `iot:Data-ATS` endpoint, `https://PREFIX-ats.iot.REGION.amazonaws.com`) replaces the
    /// SDK's regional `data-ats.iot` endpoint for shadows when given.
    pub fn new(sdk: &SdkConfig, iot_data_endpoint: Option<&str>) -> Self {
        // These calls run inside a BatchPutMessage request, which the function URL's own
        // timeout ends: a call that hangs must fail the activity first, not the request.
        let sdk = sdk
            .to_builder()
            .timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .operation_timeout(ACTIVITY_CALL_TIMEOUT)
                    .build(),
            )
            .build();
        let mut data = aws_sdk_iotdataplane::config::Builder::from(&sdk);
        if let Some(url) = iot_data_endpoint {
            data = data.endpoint_url(url);
        }
        Self {
            lambda: aws_sdk_lambda::Client::new(&sdk),
            iot: aws_sdk_iot::Client::new(&sdk),
            iot_data: aws_sdk_iotdataplane::Client::from_conf(data.build()),
        }
    }
}

/// Why an AWS-calling activity could not process its messages.
#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    /// The function ran and reported an error (`X-Amz-Function-Error`).
    #[error("the Lambda function {function} failed ({kind}): {payload}")]
    Function {
        /// Function name.
        function: String,
        /// `Unhandled` or `Handled`.
        kind: String,
        /// The error document the function returned.
        payload: String,
    },
    /// The Invoke call itself failed (permissions, throttling, a missing function).
    #[error("invoking the Lambda function {function}: {message}")]
    Invoke {
        /// Function name.
        function: String,
        /// The SDK's error, with its causes.
        message: String,
    },
    /// The function answered something other than a JSON array of objects.
    #[error("the Lambda function {function} returned {found}, not a JSON array of message objects")]
    Response {
        /// Function name.
        function: String,
        /// What it returned instead.
        found: String,
    },
    /// DescribeThing or GetThingShadow failed for another reason than an unknown thing.
    #[error("reading {what} of the thing {thing}: {message}")]
    Iot {
        /// `the registry entry` or `the shadow`.
        what: &'static str,
        /// Thing name.
        thing: String,
        /// The SDK's error, with its causes.
        message: String,
    },
}

/// The largest request payload a synchronous Lambda Invoke takes (6 MB).
pub const INVOKE_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Splits messages into the batches a `lambda` activity sends, in order: at most
/// `batch_size` messages each, and no more than `max_bytes` as the JSON array Invoke sends
/// (a message bigger than that alone goes alone, and its call fails saying so).
pub fn batches(
    messages: Vec<Map<String, Value>>,
    batch_size: usize,
    max_bytes: usize,
) -> Vec<Vec<Map<String, Value>>> {
    let size = batch_size.max(1);
    let mut out: Vec<Vec<Map<String, Value>>> = Vec::new();
    let mut current = Vec::new();
    // `[` and `]`, then each message and the comma before all but the first.
    let mut bytes = 2;
    for message in messages {
        let length = serde_json::to_vec(&message).map_or(0, |v| v.len());
        let grown = bytes + length + usize::from(!current.is_empty());
        if !current.is_empty() && (current.len() == size || grown > max_bytes) {
            out.push(std::mem::take(&mut current));
            bytes = 2;
        }
        bytes += length + usize::from(!current.is_empty());
        current.push(message);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The messages a function answered: a JSON array whose items are all objects.
pub fn parse_response(
    function: &str,
    body: &[u8],
) -> Result<Vec<Map<String, Value>>, ActivityError> {
    let bad = |found: String| ActivityError::Response {
        function: function.to_owned(),
        found,
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| bad(format!("{} bytes that are not JSON", body.len())))?;
    let Value::Array(items) = value else {
        return Err(bad(format!("a JSON {}", kind_of(&value))));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => Ok(map),
            other => Err(bad(format!(
                "an array whose item {i} is a JSON {}",
                kind_of(&other)
            ))),
        })
        .collect()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Sends one batch to a function and returns the messages that replace it.
pub async fn invoke(
    client: &aws_sdk_lambda::Client,
    function: &str,
    batch: &[Map<String, Value>],
) -> Result<Vec<Map<String, Value>>, ActivityError> {
    let payload = serde_json::to_vec(batch).map_err(|e| ActivityError::Invoke {
        function: function.to_owned(),
        message: e.to_string(),
    })?;
    let out = client
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| ActivityError::Invoke {
            function: function.to_owned(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
    let body = out.payload().map(Blob::as_ref).unwrap_or_default();
    if let Some(kind) = out.function_error() {
        return Err(ActivityError::Function {
            function: function.to_owned(),
            kind: kind.to_owned(),
            payload: String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned(),
        });
    }
    parse_response(function, body)
}

/// The value at an attribute path (`device.thingName` reads a nested attribute).
pub fn thing_name_at(message: &Map<String, Value>, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let mut current = message.get(parts.next()?)?;
    for part in parts {
        current = current.get(part)?;
    }
    match current {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Adds an enrichment under `attribute`, replacing what the message had there, as the
/// service's documented examples show.
pub fn merge(message: &mut Map<String, Value>, attribute: &str, value: Value) {
    message.insert(attribute.to_owned(), value);
}

/// The registry entry of a thing as DescribeThing answers it; `None` when there is no such
/// thing.
pub async fn describe_thing(
    client: &aws_sdk_iot::Client,
    thing: &str,
) -> Result<Option<Value>, ActivityError> {
    let out = match client.describe_thing().thing_name(thing).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(ActivityError::Iot {
                what: "the registry entry",
                thing: thing.to_owned(),
                message: DisplayErrorContext(&e).to_string(),
            });
        }
    };
    let mut entry = Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            entry.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    };
    put("defaultClientId", out.default_client_id());
    put("thingName", out.thing_name());
    put("thingId", out.thing_id());
    put("thingArn", out.thing_arn());
    put("thingTypeName", out.thing_type_name());
    put("billingGroupName", out.billing_group_name());
    let attributes: Map<String, Value> = out
        .attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    entry.insert("attributes".into(), Value::Object(attributes));
    entry.insert("version".into(), out.version().into());
    Ok(Some(Value::Object(entry)))
}

/// The classic shadow document of a thing; `None` when the thing has none (or does not exist).
pub async fn thing_shadow(
    client: &aws_sdk_iotdataplane::Client,
    thing: &str,
) -> Result<Option<Value>, ActivityError> {
    let fail = |message: String| ActivityError::Iot {
        what: "the shadow",
        thing: thing.to_owned(),
        message,
    };
    match client.get_thing_shadow().thing_name(thing).send().await {
        Ok(out) => {
            let body = out.payload().map(Blob::as_ref).unwrap_or_default();
            serde_json::from_slice(body)
                .map(Some)
                .map_err(|e| fail(format!("the shadow document is not JSON: {e}")))
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(fail(DisplayErrorContext(&e).to_string())),
    }
}

/// Checks the shape of an activity's `roleArn` (`arn:PARTITION:iam::ACCOUNT:role/NAME`, 20 to
/// 2048 characters). The role is not assumed: the service calls with its own credentials.
pub fn check_role_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = (20..=2048).contains(&arn.len())
        && matches!(parts[..], ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.len() > 5
                && (resource.starts_with("role/") || resource.starts_with("role:")));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "roleArn '{arn}' is not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)"
        ))
    }
}

/// Where an enrich activity reads.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Registry(aws_sdk_iot::Client),
    Shadow(aws_sdk_iotdataplane::Client),
}

/// A compiled activity that calls another AWS service.
#[derive(Debug, Clone)]
pub(crate) enum AwsStep {
    /// `lambda`: batches of messages replaced by what the function returns.
    Lambda {
        activity: String,
        function: String,
        batch_size: usize,
        client: aws_sdk_lambda::Client,
    },
    /// `deviceRegistryEnrich` or `deviceShadowEnrich`: a document added under `attribute`.
    Enrich {
        activity: String,
        attribute: String,
        thing_name: String,
        source: Source,
    },
}

fn text<'a>(
    body: &'a Map<String, Value>,
    kind: &str,
    field: &str,
    max: usize,
) -> Result<&'a str, String> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.chars().count() <= max)
        .ok_or_else(|| {
            format!("The {kind} activity requires a string '{field}' of 1 to {max} characters")
        })
}

/// The activity's `name`, for logs and `logResult`.
fn activity_name(body: &Map<String, Value>) -> String {
    body.get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl AwsStep {
    /// Checks a `lambda`, `deviceRegistryEnrich` or `deviceShadowEnrich` activity; `None` for
    /// another kind.
    pub(crate) fn parse(
        kind: &str,
        body: &Map<String, Value>,
        clients: &AwsActivityClients,
    ) -> Option<Result<Self, String>> {
        match kind {
            "lambda" => Some(Self::parse_lambda(body, clients)),
            "deviceRegistryEnrich" => Some(Self::parse_enrich(
                kind,
                body,
                Source::Registry(clients.iot.clone()),
            )),
            "deviceShadowEnrich" => Some(Self::parse_enrich(
                kind,
                body,
                Source::Shadow(clients.iot_data.clone()),
            )),
            _ => None,
        }
    }

    fn parse_lambda(
        body: &Map<String, Value>,
        clients: &AwsActivityClients,
    ) -> Result<Self, String> {
        let function = text(body, "lambda", "lambdaName", 64)?;
        if !function
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "lambdaName '{function}' must match ^[a-zA-Z0-9_-]+$"
            ));
        }
        let batch_size = body
            .get("batchSize")
            .and_then(Value::as_u64)
            .filter(|n| (1..=1000).contains(n))
            .ok_or("The lambda activity requires a batchSize between 1 and 1000")?;
        Ok(AwsStep::Lambda {
            activity: activity_name(body),
            function: function.to_owned(),
            batch_size: batch_size as usize,
            client: clients.lambda.clone(),
        })
    }

    fn parse_enrich(kind: &str, body: &Map<String, Value>, source: Source) -> Result<Self, String> {
        let attribute = text(body, kind, "attribute", 256)?.to_owned();
        let thing_name = text(body, kind, "thingName", 256)?.to_owned();
        check_role_arn(text(body, kind, "roleArn", 2048)?)?;
        Ok(AwsStep::Enrich {
            activity: activity_name(body),
            attribute,
            thing_name,
            source,
        })
    }

    /// Runs the activity over messages, in order. A `lambda` batch whose call fails is left
    /// out (its messages stay in the channel, for reprocessing); a message that cannot be
    /// enriched goes on without the attribute. Each such case is logged and added to
    /// `problems`.
    pub(crate) async fn run(
        &self,
        pipeline: &str,
        messages: Vec<Map<String, Value>>,
        problems: &mut Vec<String>,
    ) -> Vec<Map<String, Value>> {
        use futures::StreamExt as _;
        match self {
            AwsStep::Lambda {
                activity,
                function,
                batch_size,
                client,
            } => {
                let results: Vec<_> =
                    futures::stream::iter(batches(messages, *batch_size, INVOKE_PAYLOAD_BYTES))
                        .map(|batch| async move {
                            (batch.len(), invoke(client, function, &batch).await)
                        })
                        .buffered(LAMBDA_CALLS_AT_ONCE)
                        .collect()
                        .await;
                let mut out = Vec::new();
                for (sent, result) in results {
                    match result {
                        Ok(messages) => out.extend(messages),
                        Err(e) => {
                            tracing::warn!(pipeline, activity = %activity, function = %function, dropped = sent, error = %e, "lambda activity failed: the batch is left out");
                            problems.push(format!(
                                "The lambda activity '{activity}' dropped {sent} messages: {e}"
                            ));
                        }
                    }
                }
                out
            }
            AwsStep::Enrich {
                activity,
                attribute,
                thing_name,
                source,
            } => {
                let results: Vec<_> = futures::stream::iter(messages)
                    .map(|mut message| async move {
                        let Some(thing) = thing_name_at(&message, thing_name) else {
                            let why = format!(
                                "The activity '{activity}' left a message unchanged: it has no thing name at '{thing_name}'"
                            );
                            return (message, Some(why));
                        };
                        let found = match source {
                            Source::Registry(c) => describe_thing(c, &thing).await,
                            Source::Shadow(c) => thing_shadow(c, &thing).await,
                        };
                        let why = match found {
                            Ok(Some(document)) => {
                                merge(&mut message, attribute, document);
                                None
                            }
                            Ok(None) => Some(format!(
                                "The activity '{activity}' left a message unchanged: the thing '{thing}' has no {}",
                                match source {
                                    Source::Registry(_) => "registry entry",
                                    Source::Shadow(_) => "shadow",
                                }
                            )),
                            Err(e) => {
                                tracing::warn!(pipeline, activity = %activity, thing = %thing, error = %e, "enrich activity failed: the message goes on unenriched");
                                Some(format!("The activity '{activity}' left a message unchanged: {e}"))
                            }
                        };
                        (message, why)
                    })
                    .buffered(ENRICH_CALLS_AT_ONCE)
                    .collect()
                    .await;
                let mut out = Vec::with_capacity(results.len());
                for (message, why) in results {
                    if let Some(why) = why {
                        tracing::debug!(pipeline, "{why}");
                        problems.push(why);
                    }
                    out.push(message);
                }
                out
            }
        }
    }
}

/// Lambda invocations of one activity in flight at once (the batches keep their order).
const LAMBDA_CALLS_AT_ONCE: usize = 4;
/// DescribeThing or GetThingShadow calls of one activity in flight at once.
const ENRICH_CALLS_AT_ONCE: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn batches_hold_at_most_the_batch_size_in_order() {
        let messages: Vec<_> = (0..5).map(|i| msg(json!({ "i": i }))).collect();
        let out = batches(messages, 2, INVOKE_PAYLOAD_BYTES);
        let sizes: Vec<usize> = out.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert_eq!(out[2][0]["i"], json!(4));
        assert!(batches(Vec::new(), 3, INVOKE_PAYLOAD_BYTES).is_empty());
    }

    #[test]
    fn batches_stay_under_the_invoke_payload_limit() {
        // Each message is {"p":"xx…"}: 8 bytes of JSON around its text.
        let messages: Vec<_> = [10, 10, 10, 40, 10]
            .iter()
            .map(|&n| msg(json!({ "p": "x".repeat(n) })))
            .collect();
        let out = batches(messages, 100, 40);
        for batch in &out {
            let sent = serde_json::to_vec(batch).unwrap().len();
            assert!(sent <= 40 || batch.len() == 1, "{sent} bytes in {batch:?}");
        }
        let sizes: Vec<usize> = out.iter().map(Vec::len).collect();
        // 18 + 18 = 39 bytes as an array; a third would be 58; the 48-byte one goes alone.
        assert_eq!(sizes, [2, 1, 1, 1]);
    }

    #[test]
    fn a_response_must_be_an_array_of_objects() {
        let ok = parse_response("f", br#"[{"a":1},{"b":2}]"#).unwrap();
        assert_eq!(ok.len(), 2);
        let err = parse_response("f", br#"{"a":1}"#).unwrap_err().to_string();
        assert!(
            err.contains("a JSON object") && err.contains(" f "),
            "{err}"
        );
        let err = parse_response("f", br#"[{"a":1}, 3]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("item 1 is a JSON number"), "{err}");
        assert!(parse_response("f", b"not json").is_err());
    }

    #[test]
    fn thing_names_are_read_from_nested_attributes() {
        let m = msg(json!({"device": {"thingName": "t1"}, "id": 7, "empty": ""}));
        assert_eq!(thing_name_at(&m, "device.thingName").as_deref(), Some("t1"));
        assert_eq!(thing_name_at(&m, "id").as_deref(), Some("7"));
        assert_eq!(thing_name_at(&m, "empty"), None);
        assert_eq!(thing_name_at(&m, "device.missing"), None);
    }

    #[test]
    fn merging_replaces_the_attribute() {
        let mut m = msg(json!({"temp": 1, "meta": "old"}));
        merge(&mut m, "meta", json!({"thingName": "t"}));
        assert_eq!(
            Value::Object(m),
            json!({"temp": 1, "meta": {"thingName": "t"}})
        );
    }

    #[test]
    fn role_arns_are_checked_for_their_shape() {
        assert!(check_role_arn("arn:aws:iam::123456789012:role/enrich").is_ok());
        assert!(check_role_arn("arn:aws-cn:iam::123456789012:role/a/b").is_ok());
        assert!(check_role_arn("arn:aws:iam::12345:role/enrich").is_err());
        assert!(check_role_arn("arn:aws:s3:::bucket/role/x").is_err());
        assert!(check_role_arn("role").is_err());
    }
}

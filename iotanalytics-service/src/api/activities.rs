//! RunPipelineActivity: one transforming activity applied to sample payloads, as a pipeline
//! would apply it, without a channel or datastore. What went wrong in an AWS-calling activity
//! (a failed Lambda batch, a message left unenriched) is answered in `logResult`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::pipeline::Activity;
use crate::validate::MAX_PAYLOAD_BYTES;

use super::{ApiResult, Service, ok, parse};

/// Most payloads one RunPipelineActivity takes (the service model's `MessagePayloads`).
const MAX_PAYLOADS: usize = 10;

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new().route("/pipelineactivities/run", post(run_pipeline_activity))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunRequest {
    pipeline_activity: Option<Value>,
    payloads: Option<Vec<String>>,
}

async fn run_pipeline_activity(State(svc): State<Arc<Service>>, body: Bytes) -> ApiResult {
    let req: RunRequest = parse(&body)?;
    let activity = Activity::parse(
        req.pipeline_activity
            .as_ref()
            .ok_or_else(|| Error::InvalidRequest("pipelineActivity is required".into()))?,
        svc.config.aws_activities.as_ref(),
    )?;
    let payloads = req.payloads.unwrap_or_default();
    if payloads.is_empty() || payloads.len() > MAX_PAYLOADS {
        return Err(Error::InvalidRequest(format!(
            "payloads must hold between 1 and {MAX_PAYLOADS} payloads, got {}",
            payloads.len()
        )));
    }
    let mut messages = Vec::with_capacity(payloads.len());
    for (i, payload) in payloads.iter().enumerate() {
        let bytes = BASE64
            .decode(payload)
            .map_err(|_| Error::InvalidRequest(format!("payloads[{i}] is not base64")))?;
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::InvalidRequest(format!(
                "payloads[{i}] is {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                bytes.len()
            )));
        }
        let message: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|e| {
            Error::InvalidRequest(format!("payloads[{i}] is not a JSON object: {e}"))
        })?;
        messages.push(message);
    }
    // A message the activity drops (a filter, a failed Lambda batch) is left out of the answer.
    let ran = activity.run(messages).await;
    let out = ran
        .messages
        .iter()
        .map(|m| serde_json::to_vec(m).map(|bytes| BASE64.encode(bytes)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut answer = json!({ "payloads": out });
    if !ran.problems.is_empty() {
        answer["logResult"] = ran.problems.join("\n").into();
    }
    ok(StatusCode::OK, answer)
}

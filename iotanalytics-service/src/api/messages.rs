//! BatchPutMessage: validates a batch, routes it through the channel's pipelines and answers
//! once the backend has stored what it accepted. Pipelines with an activity that calls another
//! AWS service run over the request's messages together, so a `lambda` activity gets batches.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Error;
use crate::pipeline::Compiled;
use crate::store::{Append, DatastoreAppend};
use crate::validate::{
    self, AttrType, MAX_MESSAGE_ID_CHARS, MAX_MESSAGES_PER_BATCH, MAX_PAYLOAD_BYTES,
    check_resource_name, merge_attr, merge_attr_at,
};

use super::{ApiResult, Service, ok};

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new().route("/messages/batch", post(batch_put_message))
}

#[derive(Deserialize)]
struct BatchRequest<'a> {
    #[serde(rename = "channelName")]
    channel_name: Option<String>,
    #[serde(borrow, default)]
    messages: Option<Vec<MessageIn<'a>>>,
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(rename = "messageId", borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Option<Cow<'a, str>>,
}

/// Appends a payload as one line. JSON allows raw line breaks only as whitespace, so
/// blanking them keeps one message per line without changing its meaning.
fn push_line(out: &mut Vec<u8>, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(payload);
    for b in &mut out[start..] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    out.push(b'\n');
}

/// Adds what pipeline `p` makes of one valid payload (whose attributes are `attr_types`) to
/// its datastore's share; for a pipeline that calls AWS, sets the message aside in `pending`
/// for [`route_pending`].
pub(super) fn route(
    p: &Compiled,
    payload: &[u8],
    attr_types: &[(&str, AttrType)],
    out: &mut DatastoreAppend,
    pending: &mut Vec<serde_json::Map<String, Value>>,
) -> Result<(), Error> {
    if p.is_passthrough() {
        push_line(&mut out.lines, payload);
        out.records += 1;
        for (i, (k, t)) in attr_types.iter().enumerate() {
            merge_attr_at(&mut out.attrs, i, k, *t);
        }
        return Ok(());
    }
    let Ok(map) = serde_json::from_slice::<serde_json::Map<String, Value>>(payload) else {
        return Ok(());
    };
    if p.calls_aws() {
        pending.push(map);
    } else if let Some(result) = p.apply(map) {
        push_message(out, &result)?;
    }
    Ok(())
}

/// Adds a message a pipeline made to its datastore's share.
fn push_message(
    out: &mut DatastoreAppend,
    message: &serde_json::Map<String, Value>,
) -> Result<(), Error> {
    for (k, v) in message {
        let raw = v.to_string();
        merge_attr(&mut out.attrs, k, AttrType::of_raw(&raw));
    }
    serde_json::to_writer(&mut out.lines, message)?;
    out.lines.push(b'\n');
    out.records += 1;
    Ok(())
}

/// Runs the messages [`route`] set aside for a pipeline that calls AWS, all at once, and adds
/// what comes out to its datastore's share.
pub(super) async fn route_pending(
    p: &Compiled,
    pending: Vec<serde_json::Map<String, Value>>,
    out: &mut DatastoreAppend,
) -> Result<(), Error> {
    if pending.is_empty() {
        return Ok(());
    }
    for message in &p.run(pending).await.messages {
        push_message(out, message)?;
    }
    Ok(())
}

fn error_entry(id: &str, code: &str, message: &str) -> Value {
    json!({ "messageId": id, "errorCode": code, "errorMessage": message })
}

async fn batch_put_message(State(svc): State<Arc<Service>>, body: Bytes) -> ApiResult {
    let req: BatchRequest<'_> = serde_json::from_slice(&body)
        .map_err(|e| Error::InvalidRequest(format!("Invalid request body: {e}")))?;
    let channel = req
        .channel_name
        .ok_or_else(|| Error::InvalidRequest("channelName is required".into()))?;
    check_resource_name("channelName", &channel)?;
    let messages = req.messages.unwrap_or_default();
    if messages.is_empty() || messages.len() > MAX_MESSAGES_PER_BATCH {
        return Err(Error::InvalidRequest(format!(
            "messages must hold between 1 and {MAX_MESSAGES_PER_BATCH} messages, got {}",
            messages.len()
        )));
    }
    // Message ids are short: foldhash hashes one in a fraction of SipHash's time, and at most
    // 100 of them share a set, so colliding ids could cost little even with a known seed.
    let mut seen =
        HashSet::with_capacity_and_hasher(messages.len(), foldhash::fast::RandomState::default());
    let mut decoded = Vec::with_capacity(messages.len());
    for m in &messages {
        let id = m
            .message_id
            .as_deref()
            .ok_or_else(|| Error::InvalidRequest("Every message needs a messageId".into()))?;
        let chars = id.chars().count();
        if chars == 0 || chars > MAX_MESSAGE_ID_CHARS {
            return Err(Error::InvalidRequest(format!(
                "messageId '{}' must be 1 to {MAX_MESSAGE_ID_CHARS} characters long",
                id.chars().take(40).collect::<String>()
            )));
        }
        if !seen.insert(id) {
            return Err(Error::InvalidRequest(format!(
                "messageId '{id}' appears more than once in the request"
            )));
        }
        let encoded = m
            .payload
            .as_deref()
            .ok_or_else(|| Error::InvalidRequest(format!("Message '{id}' has no payload")))?;
        // The SDK's SIMD decoder: with the scalar one, decoding was 8% of this handler's time.
        let payload = aws_smithy_types::base64::decode(encoded).map_err(|_| {
            Error::InvalidRequest(format!("The payload of message '{id}' is not base64"))
        })?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::InvalidRequest(format!(
                "The payload of message '{id}' is {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                payload.len()
            )));
        }
        decoded.push((id, payload));
    }
    if !svc.backend.channel_exists(&channel).await? {
        return Err(Error::not_found("channel", &channel));
    }

    let faults = svc.controls.faults_for(&channel, decoded.len());
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if faults.throttle {
        return Err(Error::Throttling("Rate exceeded (injected fault)".into()));
    }
    if faults.server_error {
        return Err(Error::InternalFailure(
            "Internal failure (injected fault)".into(),
        ));
    }
    if !svc.controls.admit(&channel, decoded.len()) {
        return Err(Error::Throttling(format!(
            "Rate exceeded: channel {channel} is over its messages per second quota"
        )));
    }

    let routes = svc.routes().await?;
    let pipelines = routes.get(&channel).cloned().unwrap_or_default();
    let mut errors = Vec::new();
    let mut append = Append {
        channel: channel.clone(),
        channel_lines: Vec::with_capacity(body.len()),
        ..Append::default()
    };
    let mut outputs: Vec<DatastoreAppend> = pipelines
        .iter()
        .map(|p| DatastoreAppend {
            datastore: p.datastore.clone(),
            ..DatastoreAppend::default()
        })
        .collect();
    let mut pending = vec![Vec::new(); pipelines.len()];
    let mut failed = faults.failed_entries.into_iter().peekable();
    for (i, (id, payload)) in decoded.into_iter().enumerate() {
        if failed.peek() == Some(&i) {
            failed.next();
            errors.push(error_entry(
                id,
                "InternalFailureException",
                "Internal failure (injected fault)",
            ));
            continue;
        }
        let attrs = match validate::parse_payload(&payload) {
            Ok(a) => a,
            Err(message) => {
                errors.push(error_entry(id, "InvalidRequestException", &message));
                continue;
            }
        };
        let attr_types = attrs.types();
        for ((p, out), pending) in pipelines.iter().zip(&mut outputs).zip(&mut pending) {
            route(p, &payload, &attr_types, out, pending)?;
        }
        push_line(&mut append.channel_lines, &payload);
        append.channel_records += 1;
    }
    for ((p, out), pending) in pipelines.iter().zip(&mut outputs).zip(pending) {
        route_pending(p, pending, out).await?;
    }
    append.datastores = outputs;
    svc.backend.append(append).await?;
    ok(
        StatusCode::OK,
        json!({ "batchPutMessageErrorEntries": errors }),
    )
}

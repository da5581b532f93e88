//! CreateChannel, DescribeChannel, ListChannels, DeleteChannel and SampleChannelData.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::{ChannelDef, ResourceKind};
use crate::error::Error;
use crate::rules;
use crate::store::{Format, Kind};
use crate::validate::check_resource_name;

use super::{ApiResult, Service, create_tags, holders, now, ok, or_default, parse};

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/channels", post(create_channel).get(list_channels))
        .route(
            "/channels/{name}",
            get(describe_channel)
                .delete(delete_channel)
                .put(update_channel),
        )
        .route("/channels/{name}/sample", get(sample_channel_data))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateChannelRequest {
    channel_name: String,
    channel_storage: Option<Value>,
    retention_period: Option<Value>,
    tags: Option<Value>,
}

/// The storage choices of a channel.
const CHANNEL_STORAGE: [&str; 2] = ["serviceManagedS3", "customerManagedS3"];

/// Checks the optional storage and retention of a CreateChannel or UpdateChannel request.
fn check_settings(storage: &Option<Value>, retention: &Option<Value>) -> Result<(), Error> {
    if let Some(s) = storage.as_ref().filter(|v| !v.is_null()) {
        rules::check_storage("channelStorage", s, &CHANNEL_STORAGE)?;
    }
    if let Some(r) = retention.as_ref().filter(|v| !v.is_null()) {
        rules::check_retention("retentionPeriod", r)?;
    }
    Ok(())
}

async fn create_channel(State(svc): State<Arc<Service>>, body: Bytes) -> ApiResult {
    let req: CreateChannelRequest = parse(&body)?;
    check_resource_name("channelName", &req.channel_name)?;
    check_settings(&req.channel_storage, &req.retention_period)?;
    let tags = create_tags(req.tags)?;
    let t = now();
    let def = ChannelDef {
        name: req.channel_name.clone(),
        storage: or_default(req.channel_storage, json!({"serviceManagedS3": {}})),
        retention_period: or_default(req.retention_period, json!({"unlimited": true})),
        creation_time: t,
        last_update_time: t,
        tags,
    };
    // The message store exists before the channel is visible, so no accepted message finds
    // a channel without one.
    svc.backend
        .open_data(Kind::Channel, &def.name, Format::Json)?;
    if !svc.backend.create(&def).await? {
        return Err(svc.already_exists(ResourceKind::Channel, &def.name));
    }
    tracing::info!(channel = %def.name, "channel created");
    ok(
        StatusCode::CREATED,
        json!({
            "channelName": def.name,
            "channelArn": svc.arn(ResourceKind::Channel, &def.name),
            "retentionPeriod": def.retention_period,
        }),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateChannelRequest {
    channel_storage: Option<Value>,
    retention_period: Option<Value>,
}

/// UpdateChannel: the retention period may change; the storage choice may be given again but
/// not changed (the service model: "You can't change this storage option after the channel is
/// created"). Fields left out keep their values.
async fn update_channel(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: UpdateChannelRequest = parse(&body)?;
    check_settings(&req.channel_storage, &req.retention_period)?;
    svc.backend
        .modify(&name, |def: &mut ChannelDef| {
            if let Some(s) = req.channel_storage.as_ref().filter(|v| !v.is_null())
                && rules::choice(s) != rules::choice(&def.storage)
            {
                return Err(Error::InvalidRequest(
                    "channelStorage cannot be changed after the channel is created".into(),
                ));
            }
            if let Some(r) = req.retention_period.as_ref().filter(|v| !v.is_null()) {
                if rules::is_customer_managed(&def.storage) {
                    return Err(Error::InvalidRequest(
                        "The retention period of a channel with customer-managed storage cannot be updated".into(),
                    ));
                }
                def.retention_period = r.clone();
            }
            def.last_update_time = now();
            Ok(())
        })
        .await?;
    tracing::info!(channel = %name, "channel updated");
    ok(StatusCode::OK, json!({}))
}

async fn describe_channel(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let def = svc.backend.require::<ChannelDef>(&name).await?;
    let channel = json!({
        "name": def.name,
        "storage": def.storage,
        "arn": svc.arn(ResourceKind::Channel, &name),
        "status": "ACTIVE",
        "retentionPeriod": def.retention_period,
        "creationTime": def.creation_time,
        "lastUpdateTime": def.last_update_time,
    });
    holders::describe(&svc, Kind::Channel, &name, "channel", channel, &query).await
}

async fn list_channels(
    State(svc): State<Arc<Service>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    holders::list(
        &svc,
        Kind::Channel,
        "channelSummaries",
        &query,
        |c: &ChannelDef| {
            json!({
                "channelName": c.name,
                "channelStorage": c.storage,
                "status": "ACTIVE",
                "creationTime": c.creation_time,
                "lastUpdateTime": c.last_update_time,
            })
        },
    )
    .await
}

async fn delete_channel(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> ApiResult {
    holders::delete::<ChannelDef>(&svc, Kind::Channel, "channel", &name).await
}

#[derive(Deserialize)]
struct SampleQuery {
    #[serde(rename = "maxMessages")]
    max_messages: Option<usize>,
}

async fn sample_channel_data(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<SampleQuery>,
) -> ApiResult {
    let max = query.max_messages.unwrap_or(10);
    if !(1..=10).contains(&max) {
        return Err(Error::InvalidRequest(
            "maxMessages must be between 1 and 10".into(),
        ));
    }
    if !svc.backend.channel_exists(&name).await? {
        return Err(Error::not_found("channel", &name));
    }
    let lines = svc.backend.sample(&name, max).await?;
    let payloads: Vec<String> = lines.iter().map(|l| BASE64.encode(l)).collect();
    ok(StatusCode::OK, json!({ "payloads": payloads }))
}

//! CreateDataset, UpdateDataset, DescribeDataset, ListDatasets and DeleteDataset.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::{DatasetDef, ResourceKind};
use crate::error::Error;
use crate::validate::check_resource_name;

use super::{
    ApiResult, Service, create_tags, list_body, no_content, now, ok, or_default, page, parse,
};

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/datasets", post(create_dataset).get(list_datasets))
        .route(
            "/datasets/{name}",
            get(describe_dataset)
                .delete(delete_dataset)
                .put(update_dataset),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DatasetRequest {
    dataset_name: Option<String>,
    actions: Option<Value>,
    triggers: Option<Value>,
    content_delivery_rules: Option<Value>,
    retention_period: Option<Value>,
    versioning_configuration: Option<Value>,
    late_data_rules: Option<Value>,
    tags: Option<Value>,
}

fn check_actions(actions: &Value) -> Result<(), Error> {
    let list = actions
        .as_array()
        .filter(|a| a.len() == 1)
        .ok_or_else(|| Error::InvalidRequest("A dataset takes exactly one action".into()))?;
    let action = &list[0];
    if action.get("containerAction").is_some_and(|v| !v.is_null()) {
        return Err(Error::InvalidRequest(
            "containerAction is not supported by this service; use a queryAction".into(),
        ));
    }
    let sql = action
        .get("queryAction")
        .and_then(|q| q.get("sqlQuery"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::InvalidRequest("The dataset action needs queryAction.sqlQuery".into())
        })?;
    if sql.trim().is_empty() {
        return Err(Error::InvalidRequest("sqlQuery must not be empty".into()));
    }
    Ok(())
}

/// Checks the triggers and delivery rules of a Create or Update request for `name`.
async fn check_automation(
    svc: &Service,
    name: &str,
    triggers: Option<&Value>,
    rules: Option<&Value>,
) -> Result<(), Error> {
    if let Some(rules) = rules {
        crate::delivery::check_rules(rules, svc.config.delivery_client().is_some())?;
    }
    if let Some(triggers) = triggers {
        crate::schedule::check_triggers(triggers, name)?;
        if crate::schedule::triggered_by(triggers).next().is_some() {
            let all = svc.backend.list::<DatasetDef>().await?;
            if crate::schedule::closes_a_loop(name, triggers, &all) {
                return Err(Error::InvalidRequest(format!(
                    "triggers: the dataset {name} would trigger itself through the datasets it names"
                )));
            }
        }
    }
    Ok(())
}

async fn create_dataset(State(svc): State<Arc<Service>>, body: Bytes) -> ApiResult {
    let req: DatasetRequest = parse(&body)?;
    let name = req
        .dataset_name
        .ok_or_else(|| Error::InvalidRequest("datasetName is required".into()))?;
    check_resource_name("datasetName", &name)?;
    let actions = req
        .actions
        .ok_or_else(|| Error::InvalidRequest("actions is required".into()))?;
    check_actions(&actions)?;
    check_automation(
        &svc,
        &name,
        req.triggers.as_ref(),
        req.content_delivery_rules.as_ref(),
    )
    .await?;
    if let Some(r) = req.retention_period.as_ref().filter(|v| !v.is_null()) {
        crate::rules::check_retention("retentionPeriod", r)?;
    }
    let tags = create_tags(req.tags)?;
    let t = now();
    let def = DatasetDef {
        name: name.clone(),
        actions,
        triggers: or_default(req.triggers, json!([])),
        content_delivery_rules: or_default(req.content_delivery_rules, json!([])),
        retention_period: or_default(
            req.retention_period,
            json!({"unlimited": false, "numberOfDays": 90}),
        ),
        versioning_configuration: or_default(
            req.versioning_configuration,
            json!({"unlimited": false, "maxVersions": 1}),
        ),
        late_data_rules: or_default(req.late_data_rules, json!([])),
        creation_time: t,
        last_update_time: t,
        contents: Vec::new(),
        delta_end: None,
        last_scheduled: None,
        tags,
    };
    if !svc.backend.create(&def).await? {
        return Err(svc.already_exists(ResourceKind::Dataset, &name));
    }
    tracing::info!(dataset = %name, "dataset created");
    ok(
        StatusCode::CREATED,
        json!({
            "datasetName": name,
            "datasetArn": svc.arn(ResourceKind::Dataset, &name),
            "retentionPeriod": def.retention_period,
        }),
    )
}

async fn update_dataset(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: DatasetRequest = parse(&body)?;
    let actions = req
        .actions
        .clone()
        .ok_or_else(|| Error::InvalidRequest("actions is required".into()))?;
    check_actions(&actions)?;
    check_automation(
        &svc,
        &name,
        req.triggers.as_ref(),
        req.content_delivery_rules.as_ref(),
    )
    .await?;
    svc.backend
        .modify(&name, |def: &mut DatasetDef| {
            def.actions = actions.clone();
            for (field, value) in [
                (&mut def.triggers, &req.triggers),
                (&mut def.content_delivery_rules, &req.content_delivery_rules),
                (&mut def.retention_period, &req.retention_period),
                (
                    &mut def.versioning_configuration,
                    &req.versioning_configuration,
                ),
                (&mut def.late_data_rules, &req.late_data_rules),
            ] {
                if let Some(v) = value {
                    *field = v.clone();
                }
            }
            def.last_update_time = now();
            Ok(())
        })
        .await?;
    ok(StatusCode::OK, json!({}))
}

fn action_summaries(def: &DatasetDef) -> Value {
    let list: Vec<Value> = def
        .actions
        .as_array()
        .map(|a| {
            a.iter()
                .map(|a| {
                    json!({
                        "actionName": a.get("actionName").cloned().unwrap_or(Value::Null),
                        "actionType": if a.get("queryAction").is_some() { "QUERY" } else { "CONTAINER" },
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Value::Array(list)
}

async fn describe_dataset(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> ApiResult {
    let def = svc.backend.require::<DatasetDef>(&name).await?;
    ok(
        StatusCode::OK,
        json!({ "dataset": {
            "name": def.name,
            "arn": svc.arn(ResourceKind::Dataset, &name),
            "actions": def.actions,
            "triggers": def.triggers,
            "contentDeliveryRules": def.content_delivery_rules,
            "status": "ACTIVE",
            "creationTime": def.creation_time,
            "lastUpdateTime": def.last_update_time,
            "retentionPeriod": def.retention_period,
            "versioningConfiguration": def.versioning_configuration,
            "lateDataRules": def.late_data_rules,
        }}),
    )
}

async fn list_datasets(
    State(svc): State<Arc<Service>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let items: Vec<(String, Value)> = svc
        .backend
        .list::<DatasetDef>()
        .await?
        .into_iter()
        .map(|d| {
            (
                d.name.clone(),
                json!({
                    "datasetName": d.name,
                    "status": "ACTIVE",
                    "creationTime": d.creation_time,
                    "lastUpdateTime": d.last_update_time,
                    "triggers": d.triggers,
                    "actions": action_summaries(&d),
                }),
            )
        })
        .collect();
    let (items, next) = page(items, &query)?;
    ok(StatusCode::OK, list_body("datasetSummaries", items, next))
}

async fn delete_dataset(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> ApiResult {
    let def = svc.backend.require::<DatasetDef>(&name).await?;
    if !svc.backend.delete::<DatasetDef>(&name).await? {
        return Err(Error::not_found("dataset", &name));
    }
    for content in &def.contents {
        svc.engine
            .cancel(
                &name,
                &content.version_id,
                content.query_execution_id.as_deref(),
            )
            .await;
    }
    let versions: Vec<String> = def.contents.iter().map(|c| c.version_id.clone()).collect();
    svc.backend.delete_results(&name, &versions).await;
    tracing::info!(dataset = %name, "dataset deleted");
    no_content()
}

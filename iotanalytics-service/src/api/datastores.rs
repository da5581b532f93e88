//! CreateDatastore, DescribeDatastore, ListDatastores and DeleteDatastore.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::{DatastoreDef, ResourceKind};
use crate::error::Error;
use crate::store::Kind;
use crate::validate::check_resource_name;

use super::{ApiResult, Service, holders, now, ok, or_default, parse};

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/datastores", post(create_datastore).get(list_datastores))
        .route(
            "/datastores/{name}",
            get(describe_datastore).delete(delete_datastore),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateDatastoreRequest {
    datastore_name: String,
    datastore_storage: Option<Value>,
    retention_period: Option<Value>,
    file_format_configuration: Option<Value>,
    datastore_partitions: Option<Value>,
}

async fn create_datastore(State(svc): State<Arc<Service>>, body: Bytes) -> ApiResult {
    let req: CreateDatastoreRequest = parse(&body)?;
    check_resource_name("datastoreName", &req.datastore_name)?;
    let format_config = or_default(
        req.file_format_configuration,
        json!({"jsonConfiguration": {}}),
    );
    if let Some(obj) = format_config.as_object()
        && obj.contains_key("jsonConfiguration")
        && obj.contains_key("parquetConfiguration")
    {
        return Err(Error::InvalidRequest(
            "fileFormatConfiguration takes either jsonConfiguration or parquetConfiguration".into(),
        ));
    }
    let t = now();
    let def = DatastoreDef {
        name: req.datastore_name.clone(),
        storage: or_default(req.datastore_storage, json!({"serviceManagedS3": {}})),
        retention_period: or_default(req.retention_period, json!({"unlimited": true})),
        file_format_configuration: format_config,
        datastore_partitions: or_default(req.datastore_partitions, Value::Null),
        creation_time: t,
        last_update_time: t,
    };
    if svc.backend.get::<DatastoreDef>(&def.name).await?.is_some() {
        return Err(svc.already_exists(ResourceKind::Datastore, &def.name));
    }
    svc.backend
        .open_data(Kind::Datastore, &def.name, def.format())?;
    if !svc.backend.create(&def).await? {
        return Err(svc.already_exists(ResourceKind::Datastore, &def.name));
    }
    svc.backend.datastore_created(&def).await?;
    tracing::info!(datastore = %def.name, "datastore created");
    ok(
        StatusCode::CREATED,
        json!({
            "datastoreName": def.name,
            "datastoreArn": svc.arn(ResourceKind::Datastore, &def.name),
            "retentionPeriod": def.retention_period,
        }),
    )
}

fn format_type(def: &DatastoreDef) -> &'static str {
    if def.is_parquet() { "PARQUET" } else { "JSON" }
}

async fn describe_datastore(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let def = svc
        .backend
        .get::<DatastoreDef>(&name)
        .await?
        .ok_or_else(|| Error::not_found("datastore", &name))?;
    let mut datastore = json!({
        "name": def.name,
        "storage": def.storage,
        "arn": svc.arn(ResourceKind::Datastore, &name),
        "status": "ACTIVE",
        "retentionPeriod": def.retention_period,
        "creationTime": def.creation_time,
        "lastUpdateTime": def.last_update_time,
        "fileFormatConfiguration": def.file_format_configuration,
    });
    if !def.datastore_partitions.is_null() {
        datastore["datastorePartitions"] = def.datastore_partitions.clone();
    }
    holders::describe(&svc, Kind::Datastore, &name, "datastore", datastore, &query).await
}

async fn list_datastores(
    State(svc): State<Arc<Service>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    holders::list(
        &svc,
        Kind::Datastore,
        "datastoreSummaries",
        &query,
        |d: &DatastoreDef| {
            json!({
                "datastoreName": d.name,
                "datastoreStorage": d.storage,
                "status": "ACTIVE",
                "creationTime": d.creation_time,
                "lastUpdateTime": d.last_update_time,
                "fileFormatType": format_type(d),
            })
        },
    )
    .await
}

async fn delete_datastore(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> ApiResult {
    holders::delete::<DatastoreDef>(&svc, Kind::Datastore, "datastore", &name).await
}

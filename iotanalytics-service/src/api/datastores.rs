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
use crate::rules;
use crate::store::Kind;
use crate::validate::check_resource_name;

use super::{ApiResult, Service, create_tags, holders, now, ok, or_default, parse};

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/datastores", post(create_datastore).get(list_datastores))
        .route(
            "/datastores/{name}",
            get(describe_datastore)
                .delete(delete_datastore)
                .put(update_datastore),
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
    tags: Option<Value>,
}

/// The storage choices of a datastore.
const DATASTORE_STORAGE: [&str; 3] = [
    "serviceManagedS3",
    "customerManagedS3",
    "iotSiteWiseMultiLayerStorage",
];

/// Checks the optional storage and retention of a CreateDatastore or UpdateDatastore request.
fn check_settings(storage: &Option<Value>, retention: &Option<Value>) -> Result<(), Error> {
    if let Some(s) = storage.as_ref().filter(|v| !v.is_null()) {
        rules::check_storage("datastoreStorage", s, &DATASTORE_STORAGE)?;
    }
    if let Some(r) = retention.as_ref().filter(|v| !v.is_null()) {
        rules::check_retention("retentionPeriod", r)?;
    }
    Ok(())
}

async fn create_datastore(State(svc): State<Arc<Service>>, body: Bytes) -> ApiResult {
    let req: CreateDatastoreRequest = parse(&body)?;
    check_resource_name("datastoreName", &req.datastore_name)?;
    check_settings(&req.datastore_storage, &req.retention_period)?;
    let tags = create_tags(req.tags)?;
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
        tags,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateDatastoreRequest {
    retention_period: Option<Value>,
    datastore_storage: Option<Value>,
    file_format_configuration: Option<Value>,
}

/// UpdateDatastore: the retention period may change; the storage choice and the file format
/// may be given again but not changed (the service model says neither can change after the
/// datastore is created). Fields left out keep their values.
async fn update_datastore(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: UpdateDatastoreRequest = parse(&body)?;
    check_settings(&req.datastore_storage, &req.retention_period)?;
    svc.backend
        .modify(&name, |def: &mut DatastoreDef| {
            if let Some(s) = req.datastore_storage.as_ref().filter(|v| !v.is_null())
                && rules::choice(s) != rules::choice(&def.storage)
            {
                return Err(Error::InvalidRequest(
                    "datastoreStorage cannot be changed after the datastore is created".into(),
                ));
            }
            if let Some(f) = req.file_format_configuration.as_ref().filter(|v| !v.is_null())
                && f != &def.file_format_configuration
            {
                return Err(Error::InvalidRequest(
                    "fileFormatConfiguration cannot be changed after the datastore is created"
                        .into(),
                ));
            }
            if let Some(r) = req.retention_period.as_ref().filter(|v| !v.is_null()) {
                if rules::is_customer_managed(&def.storage) {
                    return Err(Error::InvalidRequest(
                        "The retention period of a datastore with customer-managed storage cannot be updated".into(),
                    ));
                }
                def.retention_period = r.clone();
            }
            def.last_update_time = now();
            Ok(())
        })
        .await?;
    tracing::info!(datastore = %name, "datastore updated");
    ok(StatusCode::OK, json!({}))
}

fn format_type(def: &DatastoreDef) -> &'static str {
    if def.is_parquet() { "PARQUET" } else { "JSON" }
}

async fn describe_datastore(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let def = svc.backend.require::<DatastoreDef>(&name).await?;
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

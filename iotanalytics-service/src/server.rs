//! The HTTP front end: restJson1 routes of the IoT Analytics API, signature checks, and the
//! download route for dataset content CSV files.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use datafusion::arrow::datatypes::DataType;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::catalog::{
    Catalog, ChannelDef, ContentState, ContentVersion, DatasetDef, DatastoreDef, PipelineDef,
};
use crate::config::{Credentials, ServiceConfig};
use crate::error::Error;
use crate::limits::Controls;
use crate::pipeline::{self, Compiled};
use crate::storage::{self, Format, Kind, Store, Write};
use crate::validate::{
    self, AttrType, MAX_MESSAGE_ID_CHARS, MAX_MESSAGES_PER_BATCH, MAX_PAYLOAD_BYTES,
    check_resource_name,
};

/// Largest request body accepted (100 messages of 128 KB, base64-encoded, fit).
const MAX_BODY_BYTES: usize = 32 << 20;
/// Prefix of the dataset content download route.
const CONTENT_PREFIX: &str = "/_content/";

type Routes = HashMap<String, Vec<Arc<Compiled>>>;

/// Shared state of a running service.
pub(crate) struct Service {
    pub config: ServiceConfig,
    pub catalog: Mutex<Catalog>,
    pub store: Arc<Store>,
    pub controls: Arc<Controls>,
    routes: RwLock<Arc<Routes>>,
    content_started: Mutex<HashMap<String, Instant>>,
    pub local_addr: SocketAddr,
}

fn now() -> f64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    (t * 1000.0).round() / 1000.0
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| Error::InvalidRequest(format!("Invalid request body: {e}")))
}

fn or_default(v: Option<Value>, default: Value) -> Value {
    match v {
        Some(Value::Null) | None => default,
        Some(v) => v,
    }
}

/// Maps a schema definition column type (Hive/Presto names) to the Arrow type stored.
fn column_type(t: &str) -> DataType {
    let t = t.trim().to_ascii_lowercase();
    match t.split('(').next().unwrap_or_default() {
        "boolean" => DataType::Boolean,
        "tinyint" | "smallint" | "int" | "integer" | "bigint" | "long" => DataType::Int64,
        "float" | "double" | "real" | "decimal" => DataType::Float64,
        _ => DataType::Utf8,
    }
}

/// The storage format of a datastore definition.
pub(crate) fn datastore_format(def: &DatastoreDef) -> Format {
    let Some(parquet) = def.file_format_configuration.get("parquetConfiguration") else {
        return Format::Json;
    };
    let columns: Vec<(String, DataType)> = parquet
        .get("schemaDefinition")
        .and_then(|s| s.get("columns"))
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .filter_map(|c| {
                    Some((
                        c.get("name")?.as_str()?.to_ascii_lowercase(),
                        column_type(c.get("type")?.as_str()?),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Format::Parquet(if columns.is_empty() {
        None
    } else {
        Some(columns)
    })
}

impl Service {
    pub(crate) fn new(
        config: ServiceConfig,
        catalog: Catalog,
        store: Arc<Store>,
        controls: Arc<Controls>,
        local_addr: SocketAddr,
    ) -> Arc<Self> {
        let svc = Arc::new(Self {
            config,
            catalog: Mutex::new(catalog),
            store,
            controls,
            routes: RwLock::new(Arc::new(HashMap::new())),
            content_started: Mutex::new(HashMap::new()),
            local_addr,
        });
        let catalog = svc.catalog();
        svc.rebuild_routes(&catalog);
        drop(catalog);
        svc
    }

    fn catalog(&self) -> MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, catalog: &Catalog) -> Result<(), Error> {
        catalog.save(&self.config.data_dir, self.config.durable)
    }

    fn arn(&self, kind: &str, name: &str) -> String {
        format!(
            "arn:aws:iotanalytics:{}:{}:{kind}/{name}",
            self.config.region, self.config.account_id
        )
    }

    fn already_exists(&self, kind: &str, name: &str) -> Error {
        Error::ResourceAlreadyExists {
            message: format!("A resource with the name {name} already exists."),
            resource_id: name.to_owned(),
            resource_arn: self.arn(kind, name),
        }
    }

    fn rebuild_routes(&self, catalog: &Catalog) {
        let mut routes: Routes = HashMap::new();
        for p in catalog.pipelines.values() {
            match pipeline::compile(&p.name, &p.activities) {
                Ok(c) => routes
                    .entry(c.channel.clone())
                    .or_default()
                    .push(Arc::new(c)),
                Err(e) => {
                    tracing::warn!(pipeline = %p.name, error = %e, "stored pipeline is not usable")
                }
            }
        }
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(routes);
    }

    fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.config.credentials.as_ref()
    }
}

/// Builds the router.
pub(crate) fn router(svc: Arc<Service>) -> Router {
    Router::new()
        .route("/channels", post(create_channel).get(list_channels))
        .route(
            "/channels/{name}",
            get(describe_channel).delete(delete_channel),
        )
        .route("/channels/{name}/sample", get(sample_channel_data))
        .route("/datastores", post(create_datastore).get(list_datastores))
        .route(
            "/datastores/{name}",
            get(describe_datastore).delete(delete_datastore),
        )
        .route("/pipelines", post(create_pipeline).get(list_pipelines))
        .route(
            "/pipelines/{name}",
            get(describe_pipeline)
                .delete(delete_pipeline)
                .put(update_pipeline),
        )
        .route("/datasets", post(create_dataset).get(list_datasets))
        .route(
            "/datasets/{name}",
            get(describe_dataset)
                .delete(delete_dataset)
                .put(update_dataset),
        )
        .route(
            "/datasets/{name}/content",
            post(create_dataset_content)
                .get(get_dataset_content)
                .delete(delete_dataset_content),
        )
        .route("/datasets/{name}/contents", get(list_dataset_contents))
        .route("/messages/batch", post(batch_put_message))
        .route("/_content/{dataset}/{file}", get(download_content))
        .fallback(unsupported)
        .method_not_allowed_fallback(unsupported)
        .layer(axum::middleware::from_fn_with_state(
            svc.clone(),
            authenticate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(svc)
}

async fn authenticate(State(svc): State<Arc<Service>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with(CONTENT_PREFIX) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return Error::InvalidRequest(format!(
                "The request body is larger than {MAX_BODY_BYTES} bytes"
            ))
            .into_response();
        }
    };
    if let Err(e) = crate::sigv4::verify(&parts, &bytes, svc.credentials(), SystemTime::now()) {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Names the operation a request would be in the real service, for the error message.
fn operation_name(method: &Method, path: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method.as_str(), segs.as_slice()) {
        ("PUT", ["channels", _]) => "UpdateChannel",
        ("PUT", ["datastores", _]) => "UpdateDatastore",
        ("POST", ["tags"]) => "TagResource",
        ("GET", ["tags"]) => "ListTagsForResource",
        ("DELETE", ["tags"]) => "UntagResource",
        ("GET", ["logging"]) => "DescribeLoggingOptions",
        ("PUT", ["logging"]) => "PutLoggingOptions",
        ("POST", ["pipelineactivities", "run"]) => "RunPipelineActivity",
        ("POST", ["pipelines", _, "reprocessing"]) => "StartPipelineReprocessing",
        ("DELETE", ["pipelines", _, "reprocessing", _]) => "CancelPipelineReprocessing",
        _ => return None,
    })
}

async fn unsupported(method: Method, uri: Uri) -> Error {
    let path = uri.path();
    match operation_name(&method, path) {
        Some(op) => Error::UnsupportedOperation {
            status: 400,
            message: format!(
                "The operation {op} ({method} {path}) is not supported by this IoT Analytics compatible service"
            ),
        },
        None => Error::UnsupportedOperation {
            status: 404,
            message: format!("No IoT Analytics operation matches {method} {path}"),
        },
    }
}

type ApiResult = Result<Response, Error>;

fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `maxResults` / `nextToken` paging over items sorted by name.
fn page<T>(
    items: Vec<(String, T)>,
    query: &HashMap<String, String>,
) -> Result<(Vec<T>, Option<String>), Error> {
    let max = match query.get("maxResults") {
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=250).contains(m))
            .ok_or_else(|| Error::InvalidRequest("maxResults must be between 1 and 250".into()))?,
        None => 250,
    };
    let after = query.get("nextToken").cloned();
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k > a))
        .collect();
    let next = (rest.len() > max).then(|| rest[max - 1].0.clone());
    rest.truncate(max);
    Ok((rest.into_iter().map(|(_, v)| v).collect(), next))
}

fn list_body(field: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut body = json!({ field: items });
    if let Some(n) = next {
        body["nextToken"] = n.into();
    }
    body
}

fn statistics(log: Option<Arc<storage::Log>>) -> Value {
    json!({ "size": {
        "estimatedSizeInBytes": log.map_or(0, |l| l.size_bytes()) as f64,
        "estimatedOn": now(),
    }})
}

fn last_arrival(log: Option<Arc<storage::Log>>) -> Option<f64> {
    log.and_then(|l| l.state().last_arrival)
        .map(|t| (t * 1000.0).round() / 1000.0)
}

// ---------------------------------------------------------------- channels

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateChannelRequest {
    channel_name: String,
    channel_storage: Option<Value>,
    retention_period: Option<Value>,
}

async fn create_channel(State(svc): State<Arc<Service>>, body: Bytes) -> ApiResult {
    let req: CreateChannelRequest = parse(&body)?;
    check_resource_name("channelName", &req.channel_name)?;
    let mut catalog = svc.catalog();
    if catalog.channels.contains_key(&req.channel_name) {
        return Err(svc.already_exists("channel", &req.channel_name));
    }
    svc.store
        .open_log(Kind::Channel, &req.channel_name, Format::Json)?;
    let t = now();
    let def = ChannelDef {
        name: req.channel_name.clone(),
        storage: or_default(req.channel_storage, json!({"serviceManagedS3": {}})),
        retention_period: or_default(req.retention_period, json!({"unlimited": true})),
        creation_time: t,
        last_update_time: t,
    };
    let retention = def.retention_period.clone();
    catalog.channels.insert(def.name.clone(), def);
    svc.save(&catalog)?;
    tracing::info!(channel = %req.channel_name, "channel created");
    ok(
        StatusCode::CREATED,
        json!({
            "channelName": req.channel_name,
            "channelArn": svc.arn("channel", &req.channel_name),
            "retentionPeriod": retention,
        }),
    )
}

async fn describe_channel(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let def = svc
        .catalog()
        .channels
        .get(&name)
        .cloned()
        .ok_or_else(|| Error::not_found("channel", &name))?;
    let log = svc.store.log(Kind::Channel, &name);
    let mut channel = json!({
        "name": def.name,
        "storage": def.storage,
        "arn": svc.arn("channel", &name),
        "status": "ACTIVE",
        "retentionPeriod": def.retention_period,
        "creationTime": def.creation_time,
        "lastUpdateTime": def.last_update_time,
    });
    if let Some(t) = last_arrival(log.clone()) {
        channel["lastMessageArrivalTime"] = t.into();
    }
    let mut body = json!({ "channel": channel });
    if query.get("includeStatistics").map(String::as_str) == Some("true") {
        body["statistics"] = statistics(log);
    }
    ok(StatusCode::OK, body)
}

async fn list_channels(
    State(svc): State<Arc<Service>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let items: Vec<(String, Value)> = svc
        .catalog()
        .channels
        .values()
        .map(|c| {
            let mut v = json!({
                "channelName": c.name,
                "channelStorage": c.storage,
                "status": "ACTIVE",
                "creationTime": c.creation_time,
                "lastUpdateTime": c.last_update_time,
            });
            if let Some(t) = last_arrival(svc.store.log(Kind::Channel, &c.name)) {
                v["lastMessageArrivalTime"] = t.into();
            }
            (c.name.clone(), v)
        })
        .collect();
    let (items, next) = page(items, &query)?;
    ok(StatusCode::OK, list_body("channelSummaries", items, next))
}

async fn delete_channel(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> ApiResult {
    {
        let mut catalog = svc.catalog();
        if catalog.channels.remove(&name).is_none() {
            return Err(Error::not_found("channel", &name));
        }
        svc.save(&catalog)?;
    }
    svc.store.drop_log(Kind::Channel, &name).await?;
    tracing::info!(channel = %name, "channel deleted");
    no_content()
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
    let log = svc
        .store
        .log(Kind::Channel, &name)
        .ok_or_else(|| Error::not_found("channel", &name))?;
    let lines = tokio::task::spawn_blocking(move || storage::tail_lines(&log, max))
        .await
        .map_err(|e| Error::InternalFailure(e.to_string()))??;
    let payloads: Vec<String> = lines.iter().map(|l| BASE64.encode(l)).collect();
    ok(StatusCode::OK, json!({ "payloads": payloads }))
}

// ---------------------------------------------------------------- datastores

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
    let mut catalog = svc.catalog();
    if catalog.datastores.contains_key(&req.datastore_name) {
        return Err(svc.already_exists("datastore", &req.datastore_name));
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
    svc.store
        .open_log(Kind::Datastore, &def.name, datastore_format(&def))?;
    let retention = def.retention_period.clone();
    catalog.datastores.insert(def.name.clone(), def);
    svc.save(&catalog)?;
    tracing::info!(datastore = %req.datastore_name, "datastore created");
    ok(
        StatusCode::CREATED,
        json!({
            "datastoreName": req.datastore_name,
            "datastoreArn": svc.arn("datastore", &req.datastore_name),
            "retentionPeriod": retention,
        }),
    )
}

fn format_type(def: &DatastoreDef) -> &'static str {
    if def
        .file_format_configuration
        .get("parquetConfiguration")
        .is_some()
    {
        "PARQUET"
    } else {
        "JSON"
    }
}

async fn describe_datastore(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let def = svc
        .catalog()
        .datastores
        .get(&name)
        .cloned()
        .ok_or_else(|| Error::not_found("datastore", &name))?;
    let log = svc.store.log(Kind::Datastore, &name);
    let mut datastore = json!({
        "name": def.name,
        "storage": def.storage,
        "arn": svc.arn("datastore", &name),
        "status": "ACTIVE",
        "retentionPeriod": def.retention_period,
        "creationTime": def.creation_time,
        "lastUpdateTime": def.last_update_time,
        "fileFormatConfiguration": def.file_format_configuration,
    });
    if !def.datastore_partitions.is_null() {
        datastore["datastorePartitions"] = def.datastore_partitions.clone();
    }
    if let Some(t) = last_arrival(log.clone()) {
        datastore["lastMessageArrivalTime"] = t.into();
    }
    let mut body = json!({ "datastore": datastore });
    if query.get("includeStatistics").map(String::as_str) == Some("true") {
        body["statistics"] = statistics(log);
    }
    ok(StatusCode::OK, body)
}

async fn list_datastores(
    State(svc): State<Arc<Service>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let items: Vec<(String, Value)> = svc
        .catalog()
        .datastores
        .values()
        .map(|d| {
            let mut v = json!({
                "datastoreName": d.name,
                "datastoreStorage": d.storage,
                "status": "ACTIVE",
                "creationTime": d.creation_time,
                "lastUpdateTime": d.last_update_time,
                "fileFormatType": format_type(d),
            });
            if let Some(t) = last_arrival(svc.store.log(Kind::Datastore, &d.name)) {
                v["lastMessageArrivalTime"] = t.into();
            }
            (d.name.clone(), v)
        })
        .collect();
    let (items, next) = page(items, &query)?;
    ok(StatusCode::OK, list_body("datastoreSummaries", items, next))
}

async fn delete_datastore(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> ApiResult {
    {
        let mut catalog = svc.catalog();
        if catalog.datastores.remove(&name).is_none() {
            return Err(Error::not_found("datastore", &name));
        }
        svc.save(&catalog)?;
    }
    svc.store.drop_log(Kind::Datastore, &name).await?;
    tracing::info!(datastore = %name, "datastore deleted");
    no_content()
}

// ---------------------------------------------------------------- pipelines

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatePipelineRequest {
    pipeline_name: String,
    pipeline_activities: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdatePipelineRequest {
    pipeline_activities: Vec<Value>,
}

async fn create_pipeline(State(svc): State<Arc<Service>>, body: Bytes) -> ApiResult {
    let req: CreatePipelineRequest = parse(&body)?;
    check_resource_name("pipelineName", &req.pipeline_name)?;
    pipeline::compile(&req.pipeline_name, &req.pipeline_activities)?;
    let mut catalog = svc.catalog();
    if catalog.pipelines.contains_key(&req.pipeline_name) {
        return Err(svc.already_exists("pipeline", &req.pipeline_name));
    }
    let t = now();
    catalog.pipelines.insert(
        req.pipeline_name.clone(),
        PipelineDef {
            name: req.pipeline_name.clone(),
            activities: req.pipeline_activities,
            creation_time: t,
            last_update_time: t,
        },
    );
    svc.save(&catalog)?;
    svc.rebuild_routes(&catalog);
    tracing::info!(pipeline = %req.pipeline_name, "pipeline created");
    ok(
        StatusCode::CREATED,
        json!({
            "pipelineName": req.pipeline_name,
            "pipelineArn": svc.arn("pipeline", &req.pipeline_name),
        }),
    )
}

async fn update_pipeline(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: UpdatePipelineRequest = parse(&body)?;
    pipeline::compile(&name, &req.pipeline_activities)?;
    let mut catalog = svc.catalog();
    let def = catalog
        .pipelines
        .get_mut(&name)
        .ok_or_else(|| Error::not_found("pipeline", &name))?;
    def.activities = req.pipeline_activities;
    def.last_update_time = now();
    svc.save(&catalog)?;
    svc.rebuild_routes(&catalog);
    ok(StatusCode::OK, json!({}))
}

async fn describe_pipeline(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> ApiResult {
    let def = svc
        .catalog()
        .pipelines
        .get(&name)
        .cloned()
        .ok_or_else(|| Error::not_found("pipeline", &name))?;
    ok(
        StatusCode::OK,
        json!({ "pipeline": {
            "name": def.name,
            "arn": svc.arn("pipeline", &name),
            "activities": def.activities,
            "reprocessingSummaries": [],
            "creationTime": def.creation_time,
            "lastUpdateTime": def.last_update_time,
        }}),
    )
}

async fn list_pipelines(
    State(svc): State<Arc<Service>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let items: Vec<(String, Value)> = svc
        .catalog()
        .pipelines
        .values()
        .map(|p| {
            (
                p.name.clone(),
                json!({
                    "pipelineName": p.name,
                    "reprocessingSummaries": [],
                    "creationTime": p.creation_time,
                    "lastUpdateTime": p.last_update_time,
                }),
            )
        })
        .collect();
    let (items, next) = page(items, &query)?;
    ok(StatusCode::OK, list_body("pipelineSummaries", items, next))
}

async fn delete_pipeline(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> ApiResult {
    let mut catalog = svc.catalog();
    if catalog.pipelines.remove(&name).is_none() {
        return Err(Error::not_found("pipeline", &name));
    }
    svc.save(&catalog)?;
    svc.rebuild_routes(&catalog);
    no_content()
}

// ---------------------------------------------------------------- datasets

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
    let mut catalog = svc.catalog();
    if catalog.datasets.contains_key(&name) {
        return Err(svc.already_exists("dataset", &name));
    }
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
    };
    let retention = def.retention_period.clone();
    catalog.datasets.insert(name.clone(), def);
    svc.save(&catalog)?;
    tracing::info!(dataset = %name, "dataset created");
    ok(
        StatusCode::CREATED,
        json!({
            "datasetName": name,
            "datasetArn": svc.arn("dataset", &name),
            "retentionPeriod": retention,
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
        .ok_or_else(|| Error::InvalidRequest("actions is required".into()))?;
    check_actions(&actions)?;
    let mut catalog = svc.catalog();
    let def = catalog
        .datasets
        .get_mut(&name)
        .ok_or_else(|| Error::not_found("dataset", &name))?;
    def.actions = actions;
    if let Some(v) = req.triggers {
        def.triggers = v;
    }
    if let Some(v) = req.content_delivery_rules {
        def.content_delivery_rules = v;
    }
    if let Some(v) = req.retention_period {
        def.retention_period = v;
    }
    if let Some(v) = req.versioning_configuration {
        def.versioning_configuration = v;
    }
    if let Some(v) = req.late_data_rules {
        def.late_data_rules = v;
    }
    def.last_update_time = now();
    svc.save(&catalog)?;
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
    let def = svc
        .catalog()
        .datasets
        .get(&name)
        .cloned()
        .ok_or_else(|| Error::not_found("dataset", &name))?;
    ok(
        StatusCode::OK,
        json!({ "dataset": {
            "name": def.name,
            "arn": svc.arn("dataset", &name),
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
        .catalog()
        .datasets
        .values()
        .map(|d| {
            (
                d.name.clone(),
                json!({
                    "datasetName": d.name,
                    "status": "ACTIVE",
                    "creationTime": d.creation_time,
                    "lastUpdateTime": d.last_update_time,
                    "triggers": d.triggers,
                    "actions": action_summaries(d),
                }),
            )
        })
        .collect();
    let (items, next) = page(items, &query)?;
    ok(StatusCode::OK, list_body("datasetSummaries", items, next))
}

fn dataset_dir(svc: &Service, name: &str) -> std::path::PathBuf {
    svc.config.data_dir.join("datasets").join(name)
}

async fn delete_dataset(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> ApiResult {
    {
        let mut catalog = svc.catalog();
        if catalog.datasets.remove(&name).is_none() {
            return Err(Error::not_found("dataset", &name));
        }
        svc.save(&catalog)?;
    }
    match std::fs::remove_dir_all(dataset_dir(&svc, &name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    no_content()
}

// ---------------------------------------------------------------- dataset contents

async fn create_dataset_content(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
) -> ApiResult {
    let (version_id, sql) = {
        let mut catalog = svc.catalog();
        let def = catalog
            .datasets
            .get_mut(&name)
            .ok_or_else(|| Error::not_found("dataset", &name))?;
        {
            let mut started = svc
                .content_started
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now_i = Instant::now();
            if started
                .get(&name)
                .is_some_and(|t| now_i.duration_since(*t).as_secs_f64() < 1.0)
            {
                return Err(Error::Throttling(format!(
                    "CreateDatasetContent is limited to 1 request per second for dataset {name}"
                )));
            }
            started.insert(name.clone(), now_i);
        }
        let sql = def
            .sql()
            .ok_or_else(|| Error::InvalidRequest("The dataset has no queryAction".into()))?
            .to_owned();
        let version_id = uuid::Uuid::new_v4().to_string();
        def.contents.push(ContentVersion {
            version_id: version_id.clone(),
            state: ContentState::Creating,
            reason: None,
            creation_time: now(),
            completion_time: None,
            rows: None,
        });
        svc.save(&catalog)?;
        (version_id, sql)
    };
    tracing::info!(dataset = %name, version = %version_id, "dataset content started");
    tokio::spawn(run_content(svc.clone(), name, version_id.clone(), sql));
    ok(StatusCode::OK, json!({ "versionId": version_id }))
}

async fn run_content(svc: Arc<Service>, dataset: String, version_id: String, sql: String) {
    let started = Instant::now();
    let dir = dataset_dir(&svc, &dataset);
    let logs: Vec<Arc<storage::Log>> = {
        let catalog = svc.catalog();
        catalog
            .datastores
            .keys()
            .filter_map(|n| svc.store.log(Kind::Datastore, n))
            .collect()
    };
    let out = dir.join(format!("{version_id}.csv"));
    let result = match std::fs::create_dir_all(&dir) {
        Ok(()) => crate::query::run_to_csv(&sql, logs, &out).await,
        Err(e) => Err(e.into()),
    };
    let mut catalog = svc.catalog();
    let Some(def) = catalog.datasets.get_mut(&dataset) else {
        let _ = std::fs::remove_file(&out);
        return;
    };
    let Some(version) = def.contents.iter_mut().find(|c| c.version_id == version_id) else {
        let _ = std::fs::remove_file(&out);
        return;
    };
    version.completion_time = Some(now());
    match result {
        Ok(rows) => {
            version.state = ContentState::Succeeded;
            version.rows = Some(rows);
            tracing::info!(dataset = %dataset, version = %version_id, rows, elapsed_ms = started.elapsed().as_millis() as u64, "dataset content succeeded");
        }
        Err(e) => {
            version.state = ContentState::Failed;
            version.reason = Some(e.to_string());
            tracing::info!(dataset = %dataset, version = %version_id, error = %e, "dataset content failed");
        }
    }
    // Keep the newest finished versions allowed by the versioning configuration.
    let keep = def.max_versions();
    let finished: Vec<String> = def
        .contents
        .iter()
        .filter(|c| c.state != ContentState::Creating)
        .map(|c| c.version_id.clone())
        .collect();
    if finished.len() > keep {
        let drop: HashSet<String> = finished[..finished.len() - keep].iter().cloned().collect();
        def.contents.retain(|c| !drop.contains(&c.version_id));
        for id in drop {
            let _ = std::fs::remove_file(dir.join(format!("{id}.csv")));
        }
    }
    if let Err(e) = svc.save(&catalog) {
        tracing::error!(error = %e, "saving the catalog failed");
    }
}

#[derive(Deserialize)]
struct VersionQuery {
    #[serde(rename = "versionId")]
    version_id: Option<String>,
}

fn find_version<'a>(def: &'a DatasetDef, version: &str) -> Option<&'a ContentVersion> {
    match version {
        "$LATEST" => def.contents.last(),
        "$LATEST_SUCCEEDED" => def
            .contents
            .iter()
            .rev()
            .find(|c| c.state == ContentState::Succeeded),
        id => def.contents.iter().find(|c| c.version_id == id),
    }
}

fn status_json(c: &ContentVersion) -> Value {
    let mut status = json!({ "state": c.state });
    if let Some(r) = &c.reason {
        status["reason"] = r.clone().into();
    }
    status
}

async fn get_dataset_content(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<VersionQuery>,
    headers: HeaderMap,
) -> ApiResult {
    let version = query.version_id.unwrap_or_else(|| "$LATEST".into());
    let catalog = svc.catalog();
    let def = catalog
        .datasets
        .get(&name)
        .ok_or_else(|| Error::not_found("dataset", &name))?;
    let content = find_version(def, &version).ok_or_else(|| {
        Error::ResourceNotFound(format!(
            "The dataset {name} has no content version {version}"
        ))
    })?;
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| svc.local_addr.to_string(), str::to_owned);
    let entries: Vec<Value> = if content.state == ContentState::Succeeded {
        vec![json!({
            "entryName": format!("{}.csv", content.version_id),
            "dataURI": format!("http://{host}{CONTENT_PREFIX}{name}/{}.csv", content.version_id),
        })]
    } else {
        Vec::new()
    };
    ok(
        StatusCode::OK,
        json!({
            "entries": entries,
            "timestamp": content.creation_time,
            "status": status_json(content),
        }),
    )
}

async fn list_dataset_contents(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let catalog = svc.catalog();
    let def = catalog
        .datasets
        .get(&name)
        .ok_or_else(|| Error::not_found("dataset", &name))?;
    // Newest first; the sort key makes paging stable.
    let items: Vec<(String, Value)> = def
        .contents
        .iter()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let mut v = json!({
                "version": c.version_id,
                "status": status_json(c),
                "creationTime": c.creation_time,
                "scheduleTime": c.creation_time,
            });
            if let Some(t) = c.completion_time {
                v["completionTime"] = t.into();
            }
            (format!("{i:010}"), v)
        })
        .collect();
    let (items, next) = page(items, &query)?;
    ok(
        StatusCode::OK,
        list_body("datasetContentSummaries", items, next),
    )
}

async fn delete_dataset_content(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<VersionQuery>,
) -> ApiResult {
    let version = query.version_id.unwrap_or_else(|| "$LATEST".into());
    let mut catalog = svc.catalog();
    let def = catalog
        .datasets
        .get_mut(&name)
        .ok_or_else(|| Error::not_found("dataset", &name))?;
    let id = find_version(def, &version)
        .map(|c| c.version_id.clone())
        .ok_or_else(|| {
            Error::ResourceNotFound(format!(
                "The dataset {name} has no content version {version}"
            ))
        })?;
    def.contents.retain(|c| c.version_id != id);
    svc.save(&catalog)?;
    let _ = std::fs::remove_file(dataset_dir(&svc, &name).join(format!("{id}.csv")));
    no_content()
}

async fn download_content(
    State(svc): State<Arc<Service>>,
    Path((dataset, file)): Path<(String, String)>,
) -> ApiResult {
    let version = file.strip_suffix(".csv").unwrap_or(&file).to_owned();
    check_resource_name("datasetName", &dataset)
        .map_err(|_| Error::not_found("dataset", &dataset))?;
    let known = svc.catalog().datasets.get(&dataset).is_some_and(|d| {
        d.contents
            .iter()
            .any(|c| c.version_id == version && c.state == ContentState::Succeeded)
    });
    if !known {
        return Err(Error::ResourceNotFound(format!(
            "The dataset {dataset} has no content {file}"
        )));
    }
    let data = tokio::fs::read(dataset_dir(&svc, &dataset).join(format!("{version}.csv"))).await?;
    Ok((
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "text/csv")],
        data,
    )
        .into_response())
}

// ---------------------------------------------------------------- messages

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

/// Lines, line count and attributes produced for one pipeline's datastore.
type PipelineOutput = (Vec<u8>, u64, Vec<(String, AttrType)>);

fn merge_attr(acc: &mut Vec<(String, AttrType)>, name: &str, ty: AttrType) {
    if let Some(slot) = acc.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        slot.1 = slot.1.merge(ty);
    } else {
        acc.push((name.to_ascii_lowercase(), ty));
    }
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
    let mut seen = HashSet::with_capacity(messages.len());
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
        let payload =
            BASE64
                .decode(m.payload.as_deref().ok_or_else(|| {
                    Error::InvalidRequest(format!("Message '{id}' has no payload"))
                })?)
                .map_err(|_| {
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
    let channel_log = svc
        .store
        .log(Kind::Channel, &channel)
        .ok_or_else(|| Error::not_found("channel", &channel))?;

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

    let routes = svc.routes();
    let pipelines: Vec<(Arc<Compiled>, Arc<storage::Log>)> = routes
        .get(&channel)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    svc.store
                        .log(Kind::Datastore, &p.datastore)
                        .map(|log| (p.clone(), log))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut errors = Vec::new();
    let mut channel_data = Vec::with_capacity(body.len());
    let mut channel_records = 0u64;
    let mut outputs: Vec<PipelineOutput> = vec![(Vec::new(), 0, Vec::new()); pipelines.len()];
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
        let attr_types: Vec<(&str, AttrType)> = attrs
            .0
            .iter()
            .map(|(k, v)| (k.as_ref(), AttrType::of_raw(v.get())))
            .collect();
        for ((p, _), out) in pipelines.iter().zip(outputs.iter_mut()) {
            if p.is_passthrough() {
                push_line(&mut out.0, &payload);
                out.1 += 1;
                for (k, t) in &attr_types {
                    merge_attr(&mut out.2, k, *t);
                }
            } else {
                let Ok(map) = serde_json::from_slice::<serde_json::Map<String, Value>>(&payload)
                else {
                    continue;
                };
                if let Some(result) = p.apply(map) {
                    for (k, v) in &result {
                        let raw = v.to_string();
                        merge_attr(&mut out.2, k, AttrType::of_raw(&raw));
                    }
                    serde_json::to_writer(&mut out.0, &result)?;
                    out.0.push(b'\n');
                    out.1 += 1;
                }
            }
        }
        push_line(&mut channel_data, &payload);
        channel_records += 1;
    }
    let mut writes = Vec::with_capacity(1 + pipelines.len());
    if channel_records > 0 {
        writes.push(Write {
            log: channel_log,
            data: channel_data,
            records: channel_records,
            attrs: Vec::new(),
        });
    }
    for ((_, log), (data, records, attrs)) in pipelines.into_iter().zip(outputs) {
        if records > 0 {
            writes.push(Write {
                log,
                data,
                records,
                attrs,
            });
        }
    }
    svc.store.append(writes).await?;
    ok(
        StatusCode::OK,
        json!({ "batchPutMessageErrorEntries": errors }),
    )
}

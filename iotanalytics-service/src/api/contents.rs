//! CreateDatasetContent, GetDatasetContent, ListDatasetContents, DeleteDatasetContent, and the
//! download route of the filesystem backend's content CSVs.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::{ContentState, ContentVersion, DatasetDef};
use crate::error::Error;
use crate::store::Backend;
use crate::validate::check_resource_name;

use super::runs::{Origin, refresh, start_content};
use super::{ApiResult, Service, list_body, no_content, ok, page};

/// Prefix of the filesystem backend's dataset content download route.
pub(crate) const CONTENT_PREFIX: &str = "/_content/";

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route(
            "/datasets/{name}/content",
            post(create_dataset_content)
                .get(get_dataset_content)
                .delete(delete_dataset_content),
        )
        .route("/datasets/{name}/contents", get(list_dataset_contents))
        .route("/_content/{dataset}/{file}", get(download_content))
}

async fn create_dataset_content(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
) -> ApiResult {
    let version_id = start_content(&svc, &name, Origin::Request)
        .await?
        .ok_or_else(|| Error::InternalFailure("the content was not started".into()))?;
    ok(StatusCode::OK, json!({ "versionId": version_id }))
}

async fn dataset(svc: &Arc<Service>, name: &str) -> Result<DatasetDef, Error> {
    let def = svc.backend.require::<DatasetDef>(name).await?;
    refresh(svc, def).await
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

fn no_version(name: &str, version: &str) -> Error {
    Error::ResourceNotFound(format!(
        "The dataset {name} has no content version {version}"
    ))
}

fn status_json(c: &ContentVersion) -> Value {
    let mut status = json!({ "state": c.state });
    if let Some(r) = &c.reason {
        status["reason"] = r.clone().into();
    }
    status
}

/// Where a client downloads a succeeded content's CSV: a presigned S3 URL, or this service's
/// download route on the host the client called.
async fn data_uri(
    svc: &Service,
    dataset: &str,
    content: &ContentVersion,
    headers: &HeaderMap,
) -> Result<String, Error> {
    match (&*svc.backend, &content.result) {
        (Backend::S3(s3), Some(result)) => {
            let (bucket, key) = result
                .strip_prefix("s3://")
                .and_then(|r| r.split_once('/'))
                .ok_or_else(|| {
                    Error::InternalFailure(format!("unusable result location {result}"))
                })?;
            s3.presign(bucket, key).await
        }
        (Backend::S3(s3), None) => s3.result_uri(dataset, &content.version_id).await,
        (Backend::Fs(_), _) => {
            let host = headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            Ok(format!(
                "http://{host}{CONTENT_PREFIX}{dataset}/{}.csv",
                content.version_id
            ))
        }
    }
}

async fn get_dataset_content(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    Query(query): Query<VersionQuery>,
    headers: HeaderMap,
) -> ApiResult {
    let version = query.version_id.unwrap_or_else(|| "$LATEST".into());
    let def = dataset(&svc, &name).await?;
    let content = find_version(&def, &version).ok_or_else(|| no_version(&name, &version))?;
    let entries: Vec<Value> = if content.state == ContentState::Succeeded {
        vec![json!({
            "entryName": format!("{}.csv", content.version_id),
            "dataURI": data_uri(&svc, &name, content, &headers).await?,
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
    let def = dataset(&svc, &name).await?;
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
                "scheduleTime": c.schedule_time.unwrap_or(c.creation_time),
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
    let removed = svc
        .backend
        .modify(&name, |def: &mut DatasetDef| {
            let content = find_version(def, &version)
                .cloned()
                .ok_or_else(|| no_version(&name, &version))?;
            def.contents.retain(|c| c.version_id != content.version_id);
            Ok(content)
        })
        .await?;
    svc.engine
        .cancel(
            &name,
            &removed.version_id,
            removed.query_execution_id.as_deref(),
        )
        .await;
    svc.backend
        .delete_results(&name, std::slice::from_ref(&removed.version_id))
        .await;
    no_content()
}

async fn download_content(
    State(svc): State<Arc<Service>>,
    Path((dataset, file)): Path<(String, String)>,
) -> ApiResult {
    let version = file.strip_suffix(".csv").unwrap_or(&file).to_owned();
    check_resource_name("datasetName", &dataset)
        .map_err(|_| Error::not_found("dataset", &dataset))?;
    let Backend::Fs(fs) = &*svc.backend else {
        return Err(Error::ResourceNotFound(
            "Dataset contents are downloaded from their presigned dataURI".into(),
        ));
    };
    let known = svc
        .backend
        .get::<DatasetDef>(&dataset)
        .await?
        .is_some_and(|d| {
            d.contents
                .iter()
                .any(|c| c.version_id == version && c.state == ContentState::Succeeded)
        });
    if !known {
        return Err(Error::ResourceNotFound(format!(
            "The dataset {dataset} has no content {file}"
        )));
    }
    let data = tokio::fs::read(fs.result_path(&dataset, &version)).await?;
    Ok((
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "text/csv")],
        data,
    )
        .into_response())
}

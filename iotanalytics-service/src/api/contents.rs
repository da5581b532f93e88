//! CreateDatasetContent, GetDatasetContent, ListDatasetContents, DeleteDatasetContent, and the
//! download route of the filesystem backend's content CSVs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::{ContentState, ContentVersion, DatasetDef, DatastoreDef};
use crate::error::Error;
use crate::query::{Engine, Outcome, Started};
use crate::store::Backend;
use crate::validate::check_resource_name;

use super::{ApiResult, Service, list_body, no_content, now, ok, page};

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
    let version_id = uuid::Uuid::new_v4().to_string();
    // A deltaTime filter needs the datastore names to know which tables to window.
    let delta = crate::delta::delta_time(&svc.backend.require::<DatasetDef>(&name).await?.actions);
    let datastores: Vec<String> = match delta {
        Some(_) => svc
            .backend
            .list::<DatastoreDef>()
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect(),
        None => Vec::new(),
    };
    let sql = svc
        .backend
        .modify(&name, |def: &mut DatasetDef| {
            let t = now();
            // One per second per dataset, counted from the newest content's creation, so
            // every instance of the service applies the same quota.
            if def
                .contents
                .last()
                .is_some_and(|c| (t - c.creation_time).abs() < 1.0)
            {
                return Err(Error::Throttling(format!(
                    "CreateDatasetContent is limited to 1 request per second for dataset {}",
                    def.name
                )));
            }
            let mut sql = def
                .sql()
                .ok_or_else(|| Error::InvalidRequest("The dataset has no queryAction".into()))?
                .to_owned();
            if let Some(delta) = crate::delta::delta_time(&def.actions) {
                let end = t - delta.offset_seconds as f64;
                sql = crate::delta::restrict(&sql, &datastores, &delta, def.delta_end, end)?;
                def.delta_end = Some(end);
            }
            def.contents.push(ContentVersion {
                version_id: version_id.clone(),
                state: ContentState::Creating,
                reason: None,
                creation_time: t,
                completion_time: None,
                rows: None,
                query_execution_id: None,
                result: None,
            });
            Ok(sql)
        })
        .await?;
    tracing::info!(dataset = %name, version = %version_id, "dataset content started");
    let started = match &svc.engine {
        Engine::DataFusion(engine) => {
            let datastores = svc.backend.list::<DatastoreDef>().await?;
            let scratch = match &*svc.backend {
                Backend::Fs(fs) => fs.scratch_dir(),
                Backend::S3(_) => std::env::temp_dir(),
            };
            std::fs::create_dir_all(&scratch)?;
            Ok(engine.start(
                svc.backend.clone(),
                datastores,
                &name,
                &version_id,
                sql,
                scratch,
            ))
        }
        Engine::Athena(athena) => athena
            .start(&sql, &version_id)
            .await
            .map(Started::Submitted),
    };
    match started {
        Ok(Started::Running(task)) => {
            let backend = svc.backend.clone();
            let (dataset, version) = (name.clone(), version_id.clone());
            tokio::spawn(async move {
                let outcome = task.await.unwrap_or_else(|e| Outcome::Failed {
                    reason: format!("The query failed: {e}"),
                });
                if let Err(e) = finish(&backend, &dataset, &version, outcome).await {
                    tracing::error!(dataset, version, error = %e, "recording a dataset content failed");
                }
            });
        }
        Ok(Started::Submitted(id)) => {
            svc.backend
                .update(&name, |def: &mut DatasetDef| {
                    if let Some(c) = def.contents.iter_mut().find(|c| c.version_id == version_id) {
                        c.query_execution_id = Some(id.clone());
                    }
                    Ok(())
                })
                .await?;
        }
        Err(e) => {
            finish(
                &svc.backend,
                &name,
                &version_id,
                Outcome::Failed {
                    reason: e.to_string(),
                },
            )
            .await?;
        }
    }
    ok(StatusCode::OK, json!({ "versionId": version_id }))
}

/// Records how a content's query ended, and drops the finished versions the dataset's
/// versioning configuration no longer keeps.
async fn finish(
    backend: &Backend,
    dataset: &str,
    version: &str,
    outcome: Outcome,
) -> Result<(), Error> {
    let dropped = backend
        .update(dataset, |def: &mut DatasetDef| {
            let Some(content) = def.contents.iter_mut().find(|c| c.version_id == version) else {
                // Deleted while its query ran.
                return Ok(vec![version.to_owned()]);
            };
            if content.state != ContentState::Creating {
                return Ok(Vec::new());
            }
            content.completion_time = Some(now());
            match &outcome {
                Outcome::Succeeded { rows, result } => {
                    content.state = ContentState::Succeeded;
                    content.rows = *rows;
                    content.result.clone_from(result);
                }
                Outcome::Failed { reason } => {
                    content.state = ContentState::Failed;
                    content.reason = Some(reason.clone());
                }
            }
            let keep = def.max_versions();
            let finished: Vec<String> = def
                .contents
                .iter()
                .filter(|c| c.state != ContentState::Creating)
                .map(|c| c.version_id.clone())
                .collect();
            let mut dropped = Vec::new();
            if finished.len() > keep {
                dropped = finished[..finished.len() - keep].to_vec();
                let drop: HashSet<&String> = dropped.iter().collect();
                def.contents.retain(|c| !drop.contains(&c.version_id));
            }
            Ok(dropped)
        })
        .await?
        // The dataset was deleted while its query ran.
        .unwrap_or_else(|| vec![version.to_owned()]);
    match &outcome {
        Outcome::Succeeded { rows, .. } => {
            tracing::info!(dataset, version, rows, "dataset content succeeded")
        }
        Outcome::Failed { reason } => {
            tracing::info!(dataset, version, reason, "dataset content failed")
        }
    }
    if !dropped.is_empty() {
        backend.delete_results(dataset, &dropped).await;
    }
    Ok(())
}

/// Brings a dataset's contents still being created by Athena up to date.
async fn refresh(svc: &Service, mut def: DatasetDef) -> Result<DatasetDef, Error> {
    let pending: Vec<(String, String)> = def
        .contents
        .iter()
        .filter(|c| c.state == ContentState::Creating)
        .filter_map(|c| Some((c.version_id.clone(), c.query_execution_id.clone()?)))
        .collect();
    if pending.is_empty() {
        return Ok(def);
    }
    for (version, id) in pending {
        if let Some(outcome) = svc.engine.poll(&id).await? {
            finish(&svc.backend, &def.name, &version, outcome).await?;
        }
    }
    if let Some(fresh) = svc.backend.get::<DatasetDef>(&def.name).await? {
        def = fresh;
    }
    Ok(def)
}

async fn dataset(svc: &Service, name: &str) -> Result<DatasetDef, Error> {
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

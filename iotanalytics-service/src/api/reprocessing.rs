//! StartPipelineReprocessing and CancelPipelineReprocessing: a pipeline re-run over its
//! channel's stored messages (all, or those that arrived in a time range) into its datastore,
//! in the background. The run's state lives in the pipeline's catalog entry, so every instance
//! shows it in DescribePipeline, and the run reads it between chunks to notice a cancellation.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::{PipelineDef, Reprocessing, ReprocessingStatus, ResourceKind};
use crate::error::Error;
use crate::pipeline::{self, Compiled};
use crate::store::{Append, DatastoreAppend};
use crate::validate;

use super::{ApiResult, Service, messages, now, ok, parse};

/// Messages re-run between two looks at the run's state.
const CHUNK: usize = 100;

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route(
            "/pipelines/{name}/reprocessing",
            post(start_pipeline_reprocessing),
        )
        .route(
            "/pipelines/{name}/reprocessing/{id}",
            delete(cancel_pipeline_reprocessing),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartRequest {
    start_time: Option<f64>,
    end_time: Option<f64>,
    channel_messages: Option<Value>,
}

async fn start_pipeline_reprocessing(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: StartRequest = parse(&body)?;
    if req.channel_messages.as_ref().is_some_and(|v| !v.is_null()) {
        if req.start_time.is_some() || req.end_time.is_some() {
            return Err(Error::InvalidRequest(
                "channelMessages cannot be given with startTime or endTime".into(),
            ));
        }
        return Err(Error::InvalidRequest(
            "channelMessages.s3Paths names objects of the real service's channel storage, which \
             this service does not have; reprocess a time range (startTime, endTime) or everything"
                .into(),
        ));
    }
    if let (Some(s), Some(e)) = (req.start_time, req.end_time)
        && s >= e
    {
        return Err(Error::InvalidRequest(
            "startTime must be before endTime".into(),
        ));
    }
    let def = svc.backend.require::<PipelineDef>(&name).await?;
    let compiled = pipeline::compile(&name, &def.activities, svc.config.aws_activities.as_ref())?;
    let id = uuid::Uuid::new_v4().to_string();
    let run = Reprocessing {
        id: id.clone(),
        status: ReprocessingStatus::Running,
        creation_time: now(),
    };
    svc.backend
        .modify(&name, |def: &mut PipelineDef| {
            if let Some(r) = def
                .reprocessing
                .iter()
                .find(|r| r.status == ReprocessingStatus::Running)
            {
                return Err(Error::ResourceAlreadyExists {
                    message: format!(
                        "The pipeline {name} is already reprocessing (reprocessingId {})",
                        r.id
                    ),
                    resource_id: r.id.clone(),
                    resource_arn: svc.arn(ResourceKind::Pipeline, &name),
                });
            }
            def.reprocessing.insert(0, run.clone());
            def.reprocessing.truncate(PipelineDef::KEPT_REPROCESSINGS);
            Ok(())
        })
        .await?;
    tracing::info!(pipeline = %name, reprocessing = %id, "reprocessing started");
    let task_svc = svc.clone();
    let task_id = id.clone();
    tokio::spawn(async move {
        let status = match rerun(&task_svc, &compiled, &task_id, req.start_time, req.end_time).await
        {
            Ok(true) => ReprocessingStatus::Succeeded,
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(pipeline = %compiled.name, reprocessing = %task_id, error = %e, "reprocessing failed");
                ReprocessingStatus::Failed
            }
        };
        if let Err(e) = set_status(&task_svc, &compiled.name, &task_id, status).await {
            tracing::warn!(pipeline = %compiled.name, error = %e, "recording a reprocessing's end failed");
        }
    });
    ok(StatusCode::OK, json!({ "reprocessingId": id }))
}

/// The state a run has in the catalog; `None` when the pipeline or the run is gone.
async fn status_of(
    svc: &Service,
    pipeline: &str,
    id: &str,
) -> Result<Option<ReprocessingStatus>, Error> {
    Ok(svc
        .backend
        .get::<PipelineDef>(pipeline)
        .await?
        .and_then(|p| p.reprocessing.into_iter().find(|r| r.id == id))
        .map(|r| r.status))
}

/// Sets a running run's end state (a run cancelled meanwhile stays cancelled).
async fn set_status(
    svc: &Service,
    pipeline: &str,
    id: &str,
    status: ReprocessingStatus,
) -> Result<(), Error> {
    svc.backend
        .update(pipeline, |def: &mut PipelineDef| {
            if let Some(r) = def.reprocessing.iter_mut().find(|r| r.id == id)
                && r.status == ReprocessingStatus::Running
            {
                r.status = status;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// Re-runs the channel's messages through the pipeline, a chunk at a time. `Ok(false)` when
/// the run was cancelled (or its pipeline deleted) before it finished.
async fn rerun(
    svc: &Service,
    p: &Compiled,
    id: &str,
    start: Option<f64>,
    end: Option<f64>,
) -> Result<bool, Error> {
    let lines = svc.backend.channel_lines(&p.channel, start, end).await?;
    for chunk in lines.chunks(CHUNK) {
        if status_of(svc, &p.name, id).await? != Some(ReprocessingStatus::Running) {
            tracing::info!(pipeline = %p.name, reprocessing = %id, "reprocessing cancelled");
            return Ok(false);
        }
        let mut out = DatastoreAppend {
            datastore: p.datastore.clone(),
            ..DatastoreAppend::default()
        };
        let mut pending = Vec::new();
        for payload in chunk {
            // Stored payloads were valid when accepted; one that is not is skipped, as then.
            let Ok(attrs) = validate::parse_payload(payload) else {
                continue;
            };
            let attr_types = attrs.types();
            messages::route(p, payload, &attr_types, &mut out, &mut pending)?;
        }
        messages::route_pending(p, pending, &mut out).await?;
        svc.backend
            .append(Append {
                channel: p.channel.clone(),
                datastores: vec![out],
                ..Append::default()
            })
            .await?;
        tokio::task::yield_now().await;
    }
    tracing::info!(pipeline = %p.name, reprocessing = %id, messages = lines.len(), "reprocessing finished");
    Ok(true)
}

async fn cancel_pipeline_reprocessing(
    State(svc): State<Arc<Service>>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult {
    svc.backend
        .modify(&name, |def: &mut PipelineDef| {
            let run = def
                .reprocessing
                .iter_mut()
                .find(|r| r.id == id)
                .ok_or_else(|| {
                    Error::ResourceNotFound(format!(
                        "The pipeline {name} has no reprocessing with id {id}"
                    ))
                })?;
            if run.status != ReprocessingStatus::Running {
                return Err(Error::InvalidRequest(format!(
                    "The reprocessing {id} is not running (it is {:?})",
                    run.status
                )));
            }
            run.status = ReprocessingStatus::Cancelled;
            Ok(())
        })
        .await?;
    tracing::info!(pipeline = %name, reprocessing = %id, "reprocessing cancellation asked");
    ok(StatusCode::OK, json!({}))
}

//! CreatePipeline, UpdatePipeline, DescribePipeline, ListPipelines and DeletePipeline.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::{PipelineDef, ResourceKind};
use crate::error::Error;
use crate::pipeline;
use crate::validate::check_resource_name;

use super::{ApiResult, Service, create_tags, list_body, no_content, now, ok, page, parse};

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/pipelines", post(create_pipeline).get(list_pipelines))
        .route(
            "/pipelines/{name}",
            get(describe_pipeline)
                .delete(delete_pipeline)
                .put(update_pipeline),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatePipelineRequest {
    pipeline_name: String,
    pipeline_activities: Vec<Value>,
    tags: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdatePipelineRequest {
    pipeline_activities: Vec<Value>,
}

async fn create_pipeline(State(svc): State<Arc<Service>>, body: Bytes) -> ApiResult {
    let req: CreatePipelineRequest = parse(&body)?;
    check_resource_name("pipelineName", &req.pipeline_name)?;
    pipeline::compile(
        &req.pipeline_name,
        &req.pipeline_activities,
        svc.config.aws_activities.as_ref(),
    )?;
    let tags = create_tags(req.tags)?;
    let t = now();
    let def = PipelineDef {
        name: req.pipeline_name.clone(),
        activities: req.pipeline_activities,
        creation_time: t,
        last_update_time: t,
        tags,
        reprocessing: Vec::new(),
    };
    if !svc.backend.create(&def).await? {
        return Err(svc.already_exists(ResourceKind::Pipeline, &def.name));
    }
    svc.pipelines_changed();
    tracing::info!(pipeline = %def.name, "pipeline created");
    ok(
        StatusCode::CREATED,
        json!({
            "pipelineName": def.name,
            "pipelineArn": svc.arn(ResourceKind::Pipeline, &def.name),
        }),
    )
}

async fn update_pipeline(
    State(svc): State<Arc<Service>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: UpdatePipelineRequest = parse(&body)?;
    pipeline::compile(
        &name,
        &req.pipeline_activities,
        svc.config.aws_activities.as_ref(),
    )?;
    svc.backend
        .modify(&name, |def: &mut PipelineDef| {
            def.activities = req.pipeline_activities.clone();
            def.last_update_time = now();
            Ok(())
        })
        .await?;
    svc.pipelines_changed();
    ok(StatusCode::OK, json!({}))
}

/// `reprocessingSummaries`: the pipeline's reprocessing runs, newest first.
fn reprocessing_summaries(def: &PipelineDef) -> Value {
    serde_json::to_value(&def.reprocessing).unwrap_or_else(|_| json!([]))
}

async fn describe_pipeline(State(svc): State<Arc<Service>>, Path(name): Path<String>) -> ApiResult {
    let def = svc.backend.require::<PipelineDef>(&name).await?;
    ok(
        StatusCode::OK,
        json!({ "pipeline": {
            "name": def.name,
            "arn": svc.arn(ResourceKind::Pipeline, &name),
            "activities": def.activities,
            "reprocessingSummaries": reprocessing_summaries(&def),
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
        .backend
        .list::<PipelineDef>()
        .await?
        .into_iter()
        .map(|p| {
            (
                p.name.clone(),
                json!({
                    "pipelineName": p.name,
                    "reprocessingSummaries": reprocessing_summaries(&p),
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
    if !svc.backend.delete::<PipelineDef>(&name).await? {
        return Err(Error::not_found("pipeline", &name));
    }
    svc.pipelines_changed();
    no_content()
}

//! DescribeLoggingOptions and PutLoggingOptions: the account's logging options, kept in the
//! catalog. This service logs through `tracing` whatever they say; they are stored and
//! returned as the real service did.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::SettingsDef;
use crate::error::Error;
use crate::rules;

use super::{ApiResult, Service, ok, parse};

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new().route(
        "/logging",
        get(describe_logging_options).put(put_logging_options),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutLoggingOptionsRequest {
    logging_options: Option<Value>,
}

async fn put_logging_options(State(svc): State<Arc<Service>>, body: Bytes) -> ApiResult {
    let req: PutLoggingOptionsRequest = parse(&body)?;
    let options = req.logging_options.unwrap_or(Value::Null);
    rules::check_logging_options(&options)?;
    let value = json!({
        "roleArn": options["roleArn"],
        "level": options["level"],
        "enabled": options["enabled"],
    });
    // Changed in place when set before; created otherwise (and changed if another instance
    // created it meanwhile).
    loop {
        let set = |def: &mut SettingsDef| {
            def.value = value.clone();
            Ok(())
        };
        if svc
            .backend
            .update::<SettingsDef, _, _>(SettingsDef::LOGGING, set)
            .await?
            .is_some()
        {
            break;
        }
        let def = SettingsDef {
            name: SettingsDef::LOGGING.to_owned(),
            value: value.clone(),
        };
        if svc.backend.create(&def).await? {
            break;
        }
    }
    tracing::info!(options = %value, "logging options set");
    ok(StatusCode::OK, json!({}))
}

async fn describe_logging_options(State(svc): State<Arc<Service>>) -> ApiResult {
    let def = svc
        .backend
        .get::<SettingsDef>(SettingsDef::LOGGING)
        .await?
        .ok_or_else(|| {
            Error::ResourceNotFound("No logging options have been set (PutLoggingOptions)".into())
        })?;
    ok(StatusCode::OK, json!({ "loggingOptions": def.value }))
}

//! What channels and datastores share as the resources that hold messages: a Describe
//! answer with the last arrival and the statistics, a List page of summaries with their last
//! arrivals, and a Delete that drops the data with the definition.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::catalog::Resource;
use crate::error::Error;
use crate::store::Kind;

use super::{ApiResult, Service, list_body, no_content, ok, page, statistics, wants_statistics};

/// The Describe answer `{field: resource}` for `name`, with its last message arrival and, when
/// the query asks for them, its statistics.
pub(super) async fn describe(
    svc: &Service,
    kind: Kind,
    name: &str,
    field: &str,
    mut resource: Value,
    query: &HashMap<String, String>,
) -> ApiResult {
    let stats = svc.backend.stats(kind, name).await?;
    if let Some(t) = stats.last_arrival {
        resource["lastMessageArrivalTime"] = t.into();
    }
    let mut body = json!({ field: resource });
    if wants_statistics(query) {
        body["statistics"] = statistics(stats.size_bytes);
    }
    ok(StatusCode::OK, body)
}

/// One page of `R`'s summaries under `field`, each made by `summary` and given its last
/// message arrival.
pub(super) async fn list<R: Resource>(
    svc: &Service,
    kind: Kind,
    field: &str,
    query: &HashMap<String, String>,
    summary: impl Fn(&R) -> Value,
) -> ApiResult {
    let defs = svc.backend.list::<R>().await?;
    let (defs, next) = page(
        defs.into_iter().map(|d| (d.name().to_owned(), d)).collect(),
        query,
    )?;
    let mut items = Vec::with_capacity(defs.len());
    for def in defs {
        let mut item = summary(&def);
        if let Some(t) = svc.backend.stats(kind, def.name()).await?.last_arrival {
            item["lastMessageArrivalTime"] = t.into();
        }
        items.push(item);
    }
    ok(StatusCode::OK, list_body(field, items, next))
}

/// Deletes the `R` called `name` and the messages it holds; `label` names the kind in the
/// not-found error.
pub(super) async fn delete<R: Resource>(
    svc: &Service,
    kind: Kind,
    label: &str,
    name: &str,
) -> ApiResult {
    if !svc.backend.delete::<R>(name).await? {
        return Err(Error::not_found(label, name));
    }
    svc.backend.drop_data(kind, name).await?;
    tracing::info!(%name, kind = label, "deleted");
    no_content()
}

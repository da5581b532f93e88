//! TagResource, UntagResource and ListTagsForResource, on the ARN of any channel, datastore,
//! pipeline or dataset.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::{ChannelDef, DatasetDef, DatastoreDef, PipelineDef, ResourceKind, Tagged};
use crate::error::Error;
use crate::rules::{self, MAX_TAGS};

use super::{ApiResult, Service, no_content, ok, parse};

pub(super) fn routes() -> Router<Arc<Service>> {
    Router::new().route(
        "/tags",
        post(tag_resource)
            .get(list_tags_for_resource)
            .delete(untag_resource),
    )
}

/// The query string's pairs in order, repeated keys included (`tagKeys=a&tagKeys=b`).
type Pairs = Query<Vec<(String, String)>>;

fn resource_arn(query: &[(String, String)]) -> Result<&str, Error> {
    let arn = query
        .iter()
        .find(|(k, _)| k == "resourceArn")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| Error::InvalidRequest("resourceArn is required".into()))?;
    let len = arn.chars().count();
    if !(20..=2048).contains(&len) {
        return Err(Error::InvalidRequest(
            "resourceArn must be 20 to 2048 characters long".into(),
        ));
    }
    Ok(arn)
}

impl Service {
    /// The kind and name behind an ARN of this service. An ARN that is not an IoT Analytics
    /// resource ARN is `InvalidRequestException`; one of another region or account names no
    /// resource here, so it is `ResourceNotFoundException`.
    fn parse_arn(&self, arn: &str) -> Result<(ResourceKind, String), Error> {
        let invalid = || {
            Error::InvalidRequest(format!(
                "'{arn}' is not an IoT Analytics resource ARN (arn:aws:iotanalytics:REGION:ACCOUNT:channel/NAME, datastore/NAME, pipeline/NAME or dataset/NAME)"
            ))
        };
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, _partition, service, region, account, resource] = parts[..] else {
            return Err(invalid());
        };
        if prefix != "arn" || service != "iotanalytics" {
            return Err(invalid());
        }
        let (noun, name) = resource.split_once('/').ok_or_else(invalid)?;
        let kind = [
            ResourceKind::Channel,
            ResourceKind::Datastore,
            ResourceKind::Pipeline,
            ResourceKind::Dataset,
        ]
        .into_iter()
        .find(|k| k.noun() == noun)
        .ok_or_else(invalid)?;
        if region != self.config.region || account != self.config.account_id {
            return Err(Error::ResourceNotFound(format!(
                "No resource with ARN {arn} exists in this service ({} / {})",
                self.config.region, self.config.account_id
            )));
        }
        Ok((kind, name.to_owned()))
    }

    /// Applies `change` to the tags of the resource an ARN names.
    async fn change_tags<T: Send>(
        &self,
        arn: &str,
        change: impl FnMut(&mut Vec<crate::catalog::Tag>) -> Result<T, Error> + Send + Clone,
    ) -> Result<T, Error> {
        let (kind, name) = self.parse_arn(arn)?;
        match kind {
            ResourceKind::Channel => self.tags_of::<ChannelDef, T>(&name, change).await,
            ResourceKind::Datastore => self.tags_of::<DatastoreDef, T>(&name, change).await,
            ResourceKind::Pipeline => self.tags_of::<PipelineDef, T>(&name, change).await,
            ResourceKind::Dataset => self.tags_of::<DatasetDef, T>(&name, change).await,
            ResourceKind::Settings => Err(Error::InvalidRequest("not a resource".into())),
        }
    }

    async fn tags_of<R: Tagged, T: Send>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut Vec<crate::catalog::Tag>) -> Result<T, Error> + Send,
    ) -> Result<T, Error> {
        self.backend
            .modify(name, |def: &mut R| change(def.tags_mut()))
            .await
    }
}

#[derive(Deserialize)]
struct TagResourceRequest {
    tags: Option<Value>,
}

async fn tag_resource(
    State(svc): State<Arc<Service>>,
    Query(query): Pairs,
    body: Bytes,
) -> ApiResult {
    let arn = resource_arn(&query)?;
    let req: TagResourceRequest = parse(&body)?;
    let tags = rules::parse_tags(
        req.tags
            .as_ref()
            .ok_or_else(|| Error::InvalidRequest("tags is required".into()))?,
    )?;
    svc.change_tags(arn, |current| rules::merge_tags(current, &tags))
        .await?;
    no_content()
}

async fn untag_resource(State(svc): State<Arc<Service>>, Query(query): Pairs) -> ApiResult {
    let arn = resource_arn(&query)?;
    let keys: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v.clone())
        .collect();
    if keys.is_empty() || keys.len() > MAX_TAGS {
        return Err(Error::InvalidRequest(format!(
            "tagKeys must hold between 1 and {MAX_TAGS} keys, got {}",
            keys.len()
        )));
    }
    for k in &keys {
        rules::check_tag_key(k)?;
    }
    // Removing a key the resource does not carry is not an error, as on AWS.
    svc.change_tags(arn, |current| {
        current.retain(|t| !keys.contains(&t.key));
        Ok(())
    })
    .await?;
    no_content()
}

async fn list_tags_for_resource(State(svc): State<Arc<Service>>, Query(query): Pairs) -> ApiResult {
    let arn = resource_arn(&query)?;
    let (kind, name) = svc.parse_arn(arn)?;
    let tags = match kind {
        ResourceKind::Channel => tags_of::<ChannelDef>(&svc, &name).await?,
        ResourceKind::Datastore => tags_of::<DatastoreDef>(&svc, &name).await?,
        ResourceKind::Pipeline => tags_of::<PipelineDef>(&svc, &name).await?,
        ResourceKind::Dataset => tags_of::<DatasetDef>(&svc, &name).await?,
        ResourceKind::Settings => Vec::new(),
    };
    ok(StatusCode::OK, json!({ "tags": tags }))
}

async fn tags_of<R: Tagged>(svc: &Service, name: &str) -> Result<Vec<crate::catalog::Tag>, Error> {
    Ok(svc.backend.require::<R>(name).await?.tags().to_vec())
}

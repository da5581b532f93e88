//! One resource through aws-sdk-iotanalytics: its Create request, and when it exists
//! already, nothing (the default) or its Update request and TagResource (`--update`).

use aws_sdk_iotanalytics::Client;
use aws_sdk_iotanalytics::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iotanalytics::types::Tag;

use super::shapes::{self, Obj, ShapeError};
use super::{Kind, Resource};

/// What became of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// It did not exist and was created.
    Created,
    /// It existed and was updated (`--update`).
    Updated,
    /// It existed and was left as it was.
    Skipped,
}

/// Why a resource could not be created or updated.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    /// Its definition does not have the service model's shape.
    #[error("{0}")]
    Shape(#[from] ShapeError),
    /// The service refused a request.
    #[error("{0}")]
    Call(String),
    /// No answer came: the endpoint could not be reached, or the request could not be
    /// signed. Every other resource would fail the same way.
    #[error("{0}")]
    Unreachable(String),
}

/// A failed call's error code (when the service answered) and its text: `Code: message`.
struct CallError {
    code: Option<String>,
    text: String,
    answered: bool,
}

impl<E, R> From<SdkError<E, R>> for CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    fn from(error: SdkError<E, R>) -> Self {
        let answered = matches!(
            error,
            SdkError::ServiceError(_) | SdkError::ResponseError(_)
        );
        let code = error.code().map(str::to_owned);
        let text = match (&code, error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            _ => causes(&error),
        };
        Self {
            code,
            text,
            answered,
        }
    }
}

/// An error and its sources, each once: `dispatch failure: io error: … Connection refused`.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        let text = error.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        next = error.source();
    }
    parts.join(": ")
}

impl CallError {
    fn already_exists(&self) -> bool {
        self.code.as_deref() == Some("ResourceAlreadyExistsException")
    }
}

impl From<CallError> for Failed {
    fn from(error: CallError) -> Self {
        if error.answered {
            Self::Call(error.text)
        } else {
            Self::Unreachable(error.text)
        }
    }
}

/// Creates `resource`; if it exists, updates it when `update` is set, else skips it.
pub async fn apply(client: &Client, resource: &Resource, update: bool) -> Result<Done, Failed> {
    let created = create(client, resource).await?;
    match created {
        Ok(()) => Ok(Done::Created),
        Err(error) if error.already_exists() && !update => Ok(Done::Skipped),
        Err(error) if error.already_exists() => {
            replace(client, resource).await?;
            if !resource.tags.is_empty() {
                tag(client, resource).await?;
            }
            Ok(Done::Updated)
        }
        Err(error) => Err(error.into()),
    }
}

fn tags(resource: &Resource) -> Result<Option<Vec<Tag>>, ShapeError> {
    if resource.tags.is_empty() {
        return Ok(None);
    }
    resource
        .tags
        .iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|error| ShapeError {
                    path: "tags".into(),
                    message: error.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Reads the definition into the SDK's types without calling anything (what `--dry-run`
/// checks): the shape errors a Create call would end with before it is sent.
pub fn check(resource: &Resource) -> Result<(), ShapeError> {
    let o = Obj::root(&resource.definition);
    tags(resource)?;
    match resource.kind {
        Kind::Channel => {
            o.with("channelStorage", shapes::channel_storage)?;
            o.with("retentionPeriod", shapes::retention_period)?;
        }
        Kind::Datastore => {
            o.with("datastoreStorage", shapes::datastore_storage)?;
            o.with("retentionPeriod", shapes::retention_period)?;
            o.with("fileFormatConfiguration", shapes::file_format)?;
            o.with("datastorePartitions", shapes::partitions)?;
        }
        Kind::Pipeline => {
            o.each("pipelineActivities", shapes::activity)?;
        }
        Kind::Dataset => {
            o.each("actions", shapes::dataset_action)?;
            o.each("triggers", shapes::trigger)?;
            o.each("contentDeliveryRules", shapes::delivery_rule)?;
            o.with("retentionPeriod", shapes::retention_period)?;
            o.with("versioningConfiguration", shapes::versioning)?;
            o.each("lateDataRules", shapes::late_data_rule)?;
        }
    }
    Ok(())
}

/// The Create call: a shape error before any call, else the call's own result.
async fn create(client: &Client, resource: &Resource) -> Result<Result<(), CallError>, ShapeError> {
    let o = Obj::root(&resource.definition);
    let name = resource.name.as_str();
    let tags = tags(resource)?;
    Ok(match resource.kind {
        Kind::Channel => client
            .create_channel()
            .channel_name(name)
            .set_channel_storage(o.with("channelStorage", shapes::channel_storage)?)
            .set_retention_period(o.with("retentionPeriod", shapes::retention_period)?)
            .set_tags(tags)
            .send()
            .await
            .map(drop)
            .map_err(CallError::from),
        Kind::Datastore => client
            .create_datastore()
            .datastore_name(name)
            .set_datastore_storage(o.with("datastoreStorage", shapes::datastore_storage)?)
            .set_retention_period(o.with("retentionPeriod", shapes::retention_period)?)
            .set_file_format_configuration(o.with("fileFormatConfiguration", shapes::file_format)?)
            .set_datastore_partitions(o.with("datastorePartitions", shapes::partitions)?)
            .set_tags(tags)
            .send()
            .await
            .map(drop)
            .map_err(CallError::from),
        Kind::Pipeline => client
            .create_pipeline()
            .pipeline_name(name)
            .set_pipeline_activities(o.each("pipelineActivities", shapes::activity)?)
            .set_tags(tags)
            .send()
            .await
            .map(drop)
            .map_err(CallError::from),
        Kind::Dataset => client
            .create_dataset()
            .dataset_name(name)
            .set_actions(o.each("actions", shapes::dataset_action)?)
            .set_triggers(o.each("triggers", shapes::trigger)?)
            .set_content_delivery_rules(o.each("contentDeliveryRules", shapes::delivery_rule)?)
            .set_retention_period(o.with("retentionPeriod", shapes::retention_period)?)
            .set_versioning_configuration(o.with("versioningConfiguration", shapes::versioning)?)
            .set_late_data_rules(o.each("lateDataRules", shapes::late_data_rule)?)
            .set_tags(tags)
            .send()
            .await
            .map(drop)
            .map_err(CallError::from),
    })
}

/// The Update call: the definition replaces the existing one.
async fn replace(client: &Client, resource: &Resource) -> Result<(), Failed> {
    let o = Obj::root(&resource.definition);
    let name = resource.name.as_str();
    match resource.kind {
        Kind::Channel => {
            client
                .update_channel()
                .channel_name(name)
                .set_channel_storage(o.with("channelStorage", shapes::channel_storage)?)
                .set_retention_period(o.with("retentionPeriod", shapes::retention_period)?)
                .send()
                .await
                .map_err(CallError::from)?;
        }
        Kind::Datastore => {
            client
                .update_datastore()
                .datastore_name(name)
                .set_datastore_storage(o.with("datastoreStorage", shapes::datastore_storage)?)
                .set_retention_period(o.with("retentionPeriod", shapes::retention_period)?)
                .set_file_format_configuration(
                    o.with("fileFormatConfiguration", shapes::file_format)?,
                )
                .send()
                .await
                .map_err(CallError::from)?;
        }
        Kind::Pipeline => {
            client
                .update_pipeline()
                .pipeline_name(name)
                .set_pipeline_activities(o.each("pipelineActivities", shapes::activity)?)
                .send()
                .await
                .map_err(CallError::from)?;
        }
        Kind::Dataset => {
            client
                .update_dataset()
                .dataset_name(name)
                .set_actions(o.each("actions", shapes::dataset_action)?)
                .set_triggers(o.each("triggers", shapes::trigger)?)
                .set_content_delivery_rules(o.each("contentDeliveryRules", shapes::delivery_rule)?)
                .set_retention_period(o.with("retentionPeriod", shapes::retention_period)?)
                .set_versioning_configuration(
                    o.with("versioningConfiguration", shapes::versioning)?,
                )
                .set_late_data_rules(o.each("lateDataRules", shapes::late_data_rule)?)
                .send()
                .await
                .map_err(CallError::from)?;
        }
    }
    Ok(())
}

/// Sets the resource's tags on its ARN (what an update adds to Update*, which has no tags).
async fn tag(client: &Client, resource: &Resource) -> Result<(), Failed> {
    let name = resource.name.as_str();
    let arn = match resource.kind {
        Kind::Channel => client
            .describe_channel()
            .channel_name(name)
            .send()
            .await
            .map_err(CallError::from)?
            .channel
            .and_then(|c| c.arn),
        Kind::Datastore => client
            .describe_datastore()
            .datastore_name(name)
            .send()
            .await
            .map_err(CallError::from)?
            .datastore
            .and_then(|d| d.arn),
        Kind::Pipeline => client
            .describe_pipeline()
            .pipeline_name(name)
            .send()
            .await
            .map_err(CallError::from)?
            .pipeline
            .and_then(|p| p.arn),
        Kind::Dataset => client
            .describe_dataset()
            .dataset_name(name)
            .send()
            .await
            .map_err(CallError::from)?
            .dataset
            .and_then(|d| d.arn),
    };
    let arn = arn.ok_or_else(|| Failed::Call(format!("Describe answered no ARN for {name}")))?;
    client
        .tag_resource()
        .resource_arn(arn)
        .set_tags(tags(resource)?)
        .send()
        .await
        .map_err(CallError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: Kind, definition: serde_json::Value) -> Resource {
        Resource {
            kind,
            name: "r".into(),
            definition: definition.as_object().unwrap().clone(),
            tags: vec![("k".into(), "v".into())],
            origin: "f.json: document 1".into(),
        }
    }

    #[test]
    fn the_dry_run_check_names_a_field_the_sdk_requires() {
        let dataset = resource(
            Kind::Dataset,
            serde_json::json!({"actions": [{"actionName": "q", "queryAction": {}}]}),
        );
        let error = check(&dataset).unwrap_err();
        assert_eq!(error.path, "actions[0].queryAction");
        assert!(error.message.contains("sql_query"), "{error}");
        let fine = resource(
            Kind::Datastore,
            serde_json::json!({"datastoreStorage": {"serviceManagedS3": {}}}),
        );
        assert_eq!(check(&fine), Ok(()));
    }

    #[test]
    fn a_datastore_storage_naming_two_choices_is_refused() {
        let datastore = resource(
            Kind::Datastore,
            serde_json::json!({"datastoreStorage": {"serviceManagedS3": {},
                "customerManagedS3": {"bucket": "b", "roleArn": "arn:aws:iam::1:role/r"}}}),
        );
        let error = check(&datastore).unwrap_err();
        assert_eq!(error.path, "datastoreStorage");
    }
}

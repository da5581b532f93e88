//! Before a run ingests: the channel, the datastore and the pipeline between them exist, so a
//! first run on a fresh deployment (or a fresh local stack) has somewhere to write.

use aws_sdk_iotanalytics::types::{ChannelActivity, DatastoreActivity, PipelineActivity};
use serde::{Deserialize, Serialize};

use crate::error::IngestError;
use crate::service_errors::{CallFailure, iota_error};

/// Input of the validator's `prepare` action (`events/validator-prepare.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrepareResources {
    /// The channel the workers send to.
    pub channel_name: String,
    /// The datastore the validation queries.
    pub datastore_name: String,
    /// The pipeline from the channel to the datastore.
    pub pipeline_name: String,
}

/// What `prepare` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prepared {
    /// The resources it created, as `channel/NAME`, `datastore/NAME`, `pipeline/NAME`; empty
    /// when all existed. An existing pipeline is left as it is.
    pub created: Vec<String>,
}

fn already_exists(failure: &CallFailure) -> bool {
    failure.has_code("ResourceAlreadyExistsException")
}

/// Creates the datastore, the channel and a pipeline from one to the other, each only if it
/// is missing. Safe to call from several runs at once: a creation another run won is fine.
pub async fn ensure_resources(
    client: &aws_sdk_iotanalytics::Client,
    names: &PrepareResources,
) -> Result<Prepared, IngestError> {
    let mut prepared = Prepared::default();
    let datastore = client
        .create_datastore()
        .datastore_name(&names.datastore_name)
        .send()
        .await
        .map_err(|e| CallFailure::from_sdk(&e));
    note(
        &mut prepared,
        "CreateDatastore",
        "datastore",
        &names.datastore_name,
        datastore,
    )?;
    let channel = client
        .create_channel()
        .channel_name(&names.channel_name)
        .send()
        .await
        .map_err(|e| CallFailure::from_sdk(&e));
    note(
        &mut prepared,
        "CreateChannel",
        "channel",
        &names.channel_name,
        channel,
    )?;
    let invalid =
        |e: aws_sdk_iotanalytics::error::BuildError| IngestError::invalid_input("pipelineName", e);
    let source = PipelineActivity::builder()
        .channel(
            ChannelActivity::builder()
                .name("Source")
                .channel_name(&names.channel_name)
                .next("Sink")
                .build()
                .map_err(invalid)?,
        )
        .build();
    let sink = PipelineActivity::builder()
        .datastore(
            DatastoreActivity::builder()
                .name("Sink")
                .datastore_name(&names.datastore_name)
                .build()
                .map_err(invalid)?,
        )
        .build();
    let pipeline = client
        .create_pipeline()
        .pipeline_name(&names.pipeline_name)
        .pipeline_activities(source)
        .pipeline_activities(sink)
        .send()
        .await
        .map_err(|e| CallFailure::from_sdk(&e));
    note(
        &mut prepared,
        "CreatePipeline",
        "pipeline",
        &names.pipeline_name,
        pipeline,
    )?;
    Ok(prepared)
}

fn note<T>(
    prepared: &mut Prepared,
    operation: &str,
    kind: &str,
    name: &str,
    result: Result<T, CallFailure>,
) -> Result<(), IngestError> {
    match result {
        Ok(_) => {
            tracing::info!(kind, name, "created");
            prepared.created.push(format!("{kind}/{name}"));
            Ok(())
        }
        Err(failure) if already_exists(&failure) => Ok(()),
        Err(failure) => Err(iota_error(operation, name, failure)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iotanalytics::operation::create_channel::CreateChannelOutput;
    use aws_sdk_iotanalytics::operation::create_datastore::CreateDatastoreError;
    use aws_sdk_iotanalytics::operation::create_pipeline::CreatePipelineOutput;
    use aws_sdk_iotanalytics::types::error::ResourceAlreadyExistsException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn names() -> PrepareResources {
        PrepareResources {
            channel_name: "c".into(),
            datastore_name: "d".into(),
            pipeline_name: "p".into(),
        }
    }

    #[tokio::test]
    async fn missing_resources_are_created_and_existing_ones_left_alone() {
        let datastore_exists = mock!(aws_sdk_iotanalytics::Client::create_datastore)
            .match_requests(|r| r.datastore_name() == Some("d"))
            .then_error(|| {
                CreateDatastoreError::ResourceAlreadyExistsException(
                    ResourceAlreadyExistsException::builder()
                        .message("exists")
                        .meta(
                            aws_sdk_iotanalytics::error::ErrorMetadata::builder()
                                .code("ResourceAlreadyExistsException")
                                .build(),
                        )
                        .build(),
                )
            });
        let channel = mock!(aws_sdk_iotanalytics::Client::create_channel)
            .then_output(|| CreateChannelOutput::builder().channel_name("c").build());
        let pipeline = mock!(aws_sdk_iotanalytics::Client::create_pipeline)
            .match_requests(|r| {
                r.pipeline_activities().len() == 2
                    && r.pipeline_activities()[0]
                        .channel()
                        .is_some_and(|c| c.channel_name() == "c")
                    && r.pipeline_activities()[1]
                        .datastore()
                        .is_some_and(|d| d.datastore_name() == "d")
            })
            .then_output(|| CreatePipelineOutput::builder().pipeline_name("p").build());
        let client = mock_client!(
            aws_sdk_iotanalytics,
            RuleMode::MatchAny,
            [&datastore_exists, &channel, &pipeline]
        );
        let prepared = ensure_resources(&client, &names()).await.unwrap();
        assert_eq!(prepared.created, ["channel/c", "pipeline/p"]);
    }
}

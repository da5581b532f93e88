//! The validator's `start` action: the dataset pointed at the query, and a new content.

use std::collections::BTreeMap;

use aws_sdk_iotanalytics::types::{DatasetAction, SqlQueryDatasetAction, VersioningConfiguration};

use super::check::creating;
use super::{
    ACTION_NAME, CONTENT_QUOTA_BACKOFF, CONTENT_QUOTA_WAITS, Expectation, StartOutput,
    StartValidation, VALIDATION_VERSIONS, default_sql,
};
use crate::completeness::identity_sql;
use crate::error::IngestError;
use crate::retry::retry;
use crate::service_errors::{CallFailure, iota_error};

/// Creates the dataset if it is missing (or points it at the requested query) and starts a
/// content version.
pub async fn start_content(
    client: &aws_sdk_iotanalytics::Client,
    input: &StartValidation,
) -> Result<StartOutput, IngestError> {
    for (field, value) in [
        ("datasetName", &input.dataset_name),
        ("datastoreName", &input.datastore_name),
    ] {
        let ok = (1..=128).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(IngestError::invalid_input(
                field,
                format!("{value:?} must be 1–128 letters, digits or underscores"),
            ));
        }
    }
    let totals = input.totals.with_results(&input.results);
    // The per-object comparison needs rows with an identity; a run that sent none (an empty
    // source) has nothing to compare, and its datastore may not even have the columns.
    let per_object = match (&input.sql, &input.expected, &input.per_object) {
        (None, None, Some(per_object))
            if input.row_identity
                && per_object.ledger.is_some()
                && totals.rows + totals.skipped_rows > 0 =>
        {
            Some(Box::new(per_object.clone()))
        }
        _ => None,
    };
    let sql = match (&input.sql, &per_object) {
        (Some(sql), _) => sql.clone(),
        (None, Some(_)) => identity_sql(&input.datastore_name),
        (None, None) => default_sql(&input.datastore_name),
    };
    let action = query_action(&sql);
    let name = &input.dataset_name;
    // By default a dataset keeps only its latest contents: a run validating while another
    // does would find its own content dropped before it read it.
    let versions = VersioningConfiguration::builder()
        .max_versions(VALIDATION_VERSIONS)
        .build();
    point_dataset(client, name, &sql, action, versions).await?;
    // The service allows one CreateDatasetContent per second per dataset, so two runs
    // validating at once collide; the second waits out the quota here rather than failing.
    let created = retry(
        "CreateDatasetContent",
        CONTENT_QUOTA_WAITS + 1,
        CONTENT_QUOTA_BACKOFF,
        CallFailure::is_throttling,
        || async {
            client
                .create_dataset_content()
                .dataset_name(name)
                .send()
                .await
                .map_err(|e| CallFailure::from_sdk(&e))
        },
    )
    .await
    .map_err(|failure| iota_error("CreateDatasetContent", name, failure))?;
    let version_id = created.version_id().unwrap_or_default().to_owned();
    tracing::info!(dataset = %name, version = %version_id, "dataset content started");
    let expected = match (&input.expected, &input.sql) {
        (Some(expected), _) => expected.clone(),
        (None, None) if per_object.is_some() => BTreeMap::from([
            ("missing_rows".to_owned(), Expectation::Exact(0.into())),
            ("held_objects".to_owned(), Expectation::Exact(0.into())),
        ]),
        (None, None) => BTreeMap::from([(
            "row_count".to_owned(),
            Expectation::AtLeast {
                // Rows of objects skipped as already ingested are in the datastore too.
                at_least: (totals.rows + totals.skipped_rows) as f64,
            },
        )]),
        (None, Some(_)) => BTreeMap::new(),
    };
    Ok(StartOutput {
        dataset_name: name.clone(),
        version_id,
        sql,
        check: creating(expected.clone()),
        expected,
        totals,
        per_object,
    })
}

/// The dataset's one action: the validation query.
fn query_action(sql: &str) -> DatasetAction {
    DatasetAction::builder()
        .action_name(ACTION_NAME)
        .query_action(
            SqlQueryDatasetAction::builder()
                .sql_query(sql)
                .build()
                .expect("sql is set"),
        )
        .build()
}

/// Makes the dataset `name` run `sql` and keep enough versions: describes it, then updates it
/// or creates it. Two runs validating at once may both find it missing; the one whose create
/// loses sees it exist and describes it again.
async fn point_dataset(
    client: &aws_sdk_iotanalytics::Client,
    name: &str,
    sql: &str,
    action: DatasetAction,
    versions: VersioningConfiguration,
) -> Result<(), IngestError> {
    let mut lost_a_create = false;
    loop {
        let failure = match client.describe_dataset().dataset_name(name).send().await {
            Ok(described) => {
                let dataset = described.dataset();
                let current = dataset
                    .and_then(|d| d.actions().first())
                    .and_then(|a| a.query_action())
                    .map(|q| q.sql_query());
                let kept = dataset.and_then(|d| d.versioning_configuration());
                let keeps_enough = kept.is_some_and(|v| {
                    v.unlimited() || v.max_versions().is_some_and(|n| n >= VALIDATION_VERSIONS)
                });
                if current != Some(sql) || !keeps_enough {
                    client
                        .update_dataset()
                        .dataset_name(name)
                        .actions(action)
                        .versioning_configuration(
                            kept.filter(|_| keeps_enough).cloned().unwrap_or(versions),
                        )
                        .send()
                        .await
                        .map_err(|e| {
                            iota_error("UpdateDataset", name, CallFailure::from_sdk(&e))
                        })?;
                    tracing::info!(dataset = %name, %sql, "dataset query updated");
                }
                return Ok(());
            }
            Err(e) => CallFailure::from_sdk(&e),
        };
        // A dataset that exists but cannot be described is an error, not a reason to loop.
        if lost_a_create || !failure.has_code("ResourceNotFoundException") {
            return Err(iota_error("DescribeDataset", name, failure));
        }
        let created = client
            .create_dataset()
            .dataset_name(name)
            .actions(action.clone())
            .versioning_configuration(versions.clone())
            .send()
            .await;
        match created {
            Ok(_) => {
                tracing::info!(dataset = %name, %sql, "dataset created");
                return Ok(());
            }
            Err(e) => {
                let failure = CallFailure::from_sdk(&e);
                if !failure.has_code("ResourceAlreadyExistsException") {
                    return Err(iota_error("CreateDataset", name, failure));
                }
                tracing::info!(dataset = %name, "another run created the dataset first");
                lost_a_create = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::{ObjectCounts, Totals};
    use aws_sdk_iotanalytics::operation::create_dataset::{
        CreateDatasetError, CreateDatasetOutput,
    };
    use aws_sdk_iotanalytics::operation::create_dataset_content::CreateDatasetContentOutput;
    use aws_sdk_iotanalytics::operation::describe_dataset::{
        DescribeDatasetError, DescribeDatasetOutput,
    };
    use aws_sdk_iotanalytics::operation::update_dataset::UpdateDatasetOutput;
    use aws_sdk_iotanalytics::types::Dataset;
    use aws_sdk_iotanalytics::types::error::{
        ResourceAlreadyExistsException, ResourceNotFoundException,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn dataset_missing() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_iotanalytics::Client::describe_dataset).then_error(|| {
            DescribeDatasetError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .meta(crate::sender::tests::code("ResourceNotFoundException"))
                    .build(),
            )
        })
    }

    #[tokio::test]
    async fn start_creates_a_missing_dataset_then_its_content() {
        let describe = dataset_missing();
        let create = mock!(aws_sdk_iotanalytics::Client::create_dataset)
            .match_requests(|req| {
                req.actions()[0].query_action().map(|q| q.sql_query())
                    == Some("SELECT count(*) AS row_count FROM store")
                    // Enough versions that runs validating at once keep their contents.
                    && req
                        .versioning_configuration()
                        .and_then(|v| v.max_versions())
                        == Some(VALIDATION_VERSIONS)
            })
            .then_output(|| CreateDatasetOutput::builder().build());
        let content =
            mock!(aws_sdk_iotanalytics::Client::create_dataset_content).then_output(|| {
                CreateDatasetContentOutput::builder()
                    .version_id("v-1")
                    .build()
            });
        let client = mock_client!(
            aws_sdk_iotanalytics,
            RuleMode::Sequential,
            &[&describe, &create, &content]
        );
        let out = start_content(
            &client,
            &StartValidation {
                dataset_name: "check".into(),
                datastore_name: "store".into(),
                sql: None,
                expected: None,
                totals: Totals {
                    rows: 30,
                    skipped_rows: 10,
                    ..Totals::default()
                },
                results: vec![ObjectCounts {
                    rows: 2,
                    ..ObjectCounts::default()
                }],
                row_identity: false,
                per_object: None,
                wait_seconds: 0,
            },
        )
        .await
        .unwrap();
        assert_eq!(out.version_id, "v-1");
        assert_eq!(
            out.expected["row_count"],
            Expectation::AtLeast { at_least: 42.0 },
            "the default query expects every acknowledged row and every row already ingested"
        );
        assert_eq!(create.num_calls(), 1);
    }

    #[tokio::test]
    async fn start_points_an_existing_dataset_at_the_requested_query() {
        let describe = mock!(aws_sdk_iotanalytics::Client::describe_dataset).then_output(|| {
            let action = query_action("SELECT 1");
            DescribeDatasetOutput::builder()
                .dataset(Dataset::builder().name("check").actions(action).build())
                .build()
        });
        let update = mock!(aws_sdk_iotanalytics::Client::update_dataset)
            .then_output(|| UpdateDatasetOutput::builder().build());
        let content =
            mock!(aws_sdk_iotanalytics::Client::create_dataset_content).then_output(|| {
                CreateDatasetContentOutput::builder()
                    .version_id("v-2")
                    .build()
            });
        let client = mock_client!(
            aws_sdk_iotanalytics,
            RuleMode::Sequential,
            &[&describe, &update, &content]
        );
        let out = start_content(
            &client,
            &StartValidation {
                dataset_name: "check".into(),
                datastore_name: "store".into(),
                sql: Some("SELECT count(*) AS n FROM store".into()),
                expected: None,
                totals: Totals::default(),
                results: Vec::new(),
                row_identity: false,
                per_object: None,
                wait_seconds: 0,
            },
        )
        .await
        .unwrap();
        assert_eq!(update.num_calls(), 1);
        assert_eq!(out.sql, "SELECT count(*) AS n FROM store");
    }

    #[tokio::test]
    async fn a_dataset_another_run_created_first_is_described_again_not_an_error() {
        let missing = dataset_missing();
        let lost = mock!(aws_sdk_iotanalytics::Client::create_dataset).then_error(|| {
            CreateDatasetError::ResourceAlreadyExistsException(
                ResourceAlreadyExistsException::builder()
                    .meta(crate::sender::tests::code("ResourceAlreadyExistsException"))
                    .build(),
            )
        });
        let found = mock!(aws_sdk_iotanalytics::Client::describe_dataset).then_output(|| {
            let action = query_action("SELECT count(*) AS row_count FROM store");
            let versions = VersioningConfiguration::builder()
                .max_versions(VALIDATION_VERSIONS)
                .build();
            DescribeDatasetOutput::builder()
                .dataset(
                    Dataset::builder()
                        .name("check")
                        .actions(action)
                        .versioning_configuration(versions)
                        .build(),
                )
                .build()
        });
        let content =
            mock!(aws_sdk_iotanalytics::Client::create_dataset_content).then_output(|| {
                CreateDatasetContentOutput::builder()
                    .version_id("v-3")
                    .build()
            });
        let client = mock_client!(
            aws_sdk_iotanalytics,
            RuleMode::Sequential,
            &[&missing, &lost, &found, &content]
        );
        let out = start_content(
            &client,
            &StartValidation {
                dataset_name: "check".into(),
                datastore_name: "store".into(),
                sql: None,
                expected: None,
                totals: Totals::default(),
                results: Vec::new(),
                row_identity: false,
                per_object: None,
                wait_seconds: 0,
            },
        )
        .await
        .unwrap();
        assert_eq!(out.version_id, "v-3");
        assert_eq!(found.num_calls(), 1, "the dataset is described again");
    }
}

//! The validator step: runs a dataset query over the datastore and compares its result with
//! what the run expects, in two actions so the state machine can wait between them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_iotanalytics::types::{
    DatasetAction, DatasetContentState, SqlQueryDatasetAction, VersioningConfiguration,
};
use serde::{Deserialize, Serialize};

use crate::clients::Clients;
use crate::completeness::{
    CheckProgress, Compared, PerObject, compare_ledger, identity_sql, parse_counts,
};
use crate::error::IngestError;
use crate::launcher::{ObjectCounts, Totals};
use crate::ledger::Ledger;
use crate::retry::{Backoff, retry};
use crate::service_errors::{CallFailure, iota_error};
use crate::setup::{PrepareResources, Prepared, ensure_resources};

/// The query used when the input gives none and rows carry no identity: the datastore's row
/// count (which cannot tell a missing row from a duplicate; see [`crate::completeness`]).
pub fn default_sql(datastore: &str) -> String {
    format!("SELECT count(*) AS row_count FROM {datastore}")
}

/// Times `start` waits out CreateDatasetContent's one-per-second quota before it reports
/// `Throttled`.
const CONTENT_QUOTA_WAITS: u32 = 5;

/// A second and a bit between CreateDatasetContent attempts: the quota's period, with jitter
/// so that two waiting runs do not collide again.
const CONTENT_QUOTA_BACKOFF: Backoff = Backoff {
    floor: std::time::Duration::from_secs(1),
    base: std::time::Duration::from_millis(500),
    max: std::time::Duration::from_millis(500),
};

/// Name of the dataset action the validator creates.
pub const ACTION_NAME: &str = "validation_query";

/// Input of one validator invocation, by action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum ValidatorInput {
    /// Create the dataset if needed and start a content version (`events/validator-start.json`).
    Start(StartValidation),
    /// Look at a content version and compare it (`events/validator-check.json`).
    Check(CheckValidation),
    /// Create the channel, datastore and pipeline if missing, before a run ingests
    /// (`events/validator-prepare.json`).
    Prepare(PrepareResources),
}

/// The `start` action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartValidation {
    /// Dataset to create or reuse.
    pub dataset_name: String,
    /// Datastore it queries.
    pub datastore_name: String,
    /// The query; default [`default_sql`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// Column → expected value for `check`. When absent with the default query: the row
    /// count is at least the rows the run acknowledged (the datastore may hold earlier runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<BTreeMap<String, Expectation>>,
    /// The run's totals so far.
    #[serde(default)]
    pub totals: Totals,
    /// The last page's per-object results, folded into the totals.
    #[serde(default, deserialize_with = "crate::launcher::flattened_results")]
    pub results: Vec<ObjectCounts>,
    /// Whether the run's rows carry their identity (`_src`, `_row`).
    #[serde(default)]
    pub row_identity: bool,
    /// The run's objects in the ledger. With row identity and neither `sql` nor `expected`
    /// given, the validation compares every object's rows with the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_object: Option<PerObject>,
    /// Seconds `start` waits for the content and checks it itself before it hands the
    /// polling over to the state machine (default 10; 0: return at once). Most contents
    /// finish in well under a second, and a Lambda waiting that long costs less than the
    /// Wait and Check states it saves.
    #[serde(default = "default_wait_seconds")]
    pub wait_seconds: u64,
}

fn default_wait_seconds() -> u64 {
    DEFAULT_WAIT_SECONDS
}

/// How long `start` waits for the content unless told otherwise.
pub const DEFAULT_WAIT_SECONDS: u64 = 10;

/// Contents the validation dataset keeps: one per run, so this many runs can validate at once
/// without one's content being dropped before it is read.
pub const VALIDATION_VERSIONS: i32 = 10;

/// The `check` action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckValidation {
    /// Dataset name.
    pub dataset_name: String,
    /// Version returned by `start`.
    pub version_id: String,
    /// Column of the result's first row → expected value (`null`: none).
    #[serde(default)]
    pub expected: Option<BTreeMap<String, Expectation>>,
    /// Compare the result (of [`identity_sql`]) object by object with the ledger instead.
    #[serde(default)]
    pub per_object: Option<PerObject>,
    /// Where an earlier `check` that answered `CHECKING` stopped (`null`: from the start).
    #[serde(default)]
    pub progress: Option<CheckProgress>,
}

/// What a result column must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expectation {
    /// At least this number (repeated runs over a growing datastore).
    AtLeast {
        /// The lower bound.
        #[serde(rename = "atLeast")]
        at_least: f64,
    },
    /// Exactly this value; numbers compare as numbers, anything else as text.
    Exact(serde_json::Value),
}

/// Output of `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartOutput {
    /// Dataset name.
    pub dataset_name: String,
    /// The content version being created.
    pub version_id: String,
    /// The query it runs.
    pub sql: String,
    /// What `check` compares the result with.
    pub expected: BTreeMap<String, Expectation>,
    /// The run's totals, the last page included.
    pub totals: Totals,
    /// Set when `check` compares object by object with the ledger (`null` otherwise).
    pub per_object: Option<Box<PerObject>>,
    /// The check `start` made itself after waiting (`state` CREATING when the content was not
    /// done within `waitSeconds`: the state machine polls with `check` from there).
    pub check: CheckOutput,
}

/// Output of `check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutput {
    /// `CREATING` (check again later), `CHECKING` (the content is done and part of the ledger
    /// compared: check again at once, with `progress`) or `SUCCEEDED`.
    pub state: String,
    /// Whether every expectation held (`null` while CREATING).
    #[serde(default)]
    pub passed: Option<bool>,
    /// The expectations.
    #[serde(default)]
    pub expected: BTreeMap<String, Expectation>,
    /// The first row of the result, column → value (while `CHECKING`, the figures so far).
    #[serde(default)]
    pub actual: BTreeMap<String, String>,
    /// Where the per-object comparison goes on while `CHECKING`; `null` otherwise. Always
    /// present, so the state machine can pass it back whatever the state.
    #[serde(default)]
    pub progress: Option<CheckProgress>,
}

/// Output of either action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValidatorOutput {
    /// From `start`.
    Started(StartOutput),
    /// From `check`.
    Checked(CheckOutput),
    /// From `prepare`.
    Prepared(Prepared),
}

/// Runs one validator action, leaving a third of the time until `deadline` unused.
pub async fn handle(
    clients: &Clients,
    input: &ValidatorInput,
    deadline: SystemTime,
) -> Result<ValidatorOutput, IngestError> {
    // A ledger page read after this could run past the deadline.
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let stop_at = Some(Instant::now() + left * 2 / 3);
    match input {
        ValidatorInput::Start(start) => {
            let mut started = start_content(&clients.iotanalytics, start).await?;
            started.check = wait_and_check(clients, &started, start.wait_seconds, stop_at).await?;
            Ok(ValidatorOutput::Started(started))
        }
        ValidatorInput::Check(check) => {
            check_with(&clients.iotanalytics, Some(&clients.s3), check, stop_at)
                .await
                .map(ValidatorOutput::Checked)
        }
        ValidatorInput::Prepare(prepare) => ensure_resources(&clients.iotanalytics, prepare)
            .await
            .map(ValidatorOutput::Prepared),
    }
}

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
    let action = DatasetAction::builder()
        .action_name(ACTION_NAME)
        .query_action(
            SqlQueryDatasetAction::builder()
                .sql_query(&sql)
                .build()
                .expect("sql is set"),
        )
        .build();
    let name = &input.dataset_name;
    // By default a dataset keeps only its latest contents: a run validating while another
    // does would find its own content dropped before it read it.
    let versions = VersioningConfiguration::builder()
        .max_versions(VALIDATION_VERSIONS)
        .build();
    match client.describe_dataset().dataset_name(name).send().await {
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
            if current != Some(sql.as_str()) || !keeps_enough {
                client
                    .update_dataset()
                    .dataset_name(name)
                    .actions(action)
                    .versioning_configuration(
                        kept.filter(|_| keeps_enough).cloned().unwrap_or(versions),
                    )
                    .send()
                    .await
                    .map_err(|e| iota_error("UpdateDataset", name, CallFailure::from_sdk(&e)))?;
                tracing::info!(dataset = %name, %sql, "dataset query updated");
            }
        }
        Err(e) => {
            let failure = CallFailure::from_sdk(&e);
            if !failure.has_code("ResourceNotFoundException") {
                return Err(iota_error("DescribeDataset", name, failure));
            }
            client
                .create_dataset()
                .dataset_name(name)
                .actions(action)
                .versioning_configuration(versions)
                .send()
                .await
                .map_err(|e| iota_error("CreateDataset", name, CallFailure::from_sdk(&e)))?;
            tracing::info!(dataset = %name, %sql, "dataset created");
        }
    }
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

/// Checks the content `started` describes until it is done or `wait_seconds` have passed,
/// polling quickly at first (a small datastore's content takes milliseconds).
async fn wait_and_check(
    clients: &Clients,
    started: &StartOutput,
    wait_seconds: u64,
    stop_at: Option<Instant>,
) -> Result<CheckOutput, IngestError> {
    let check = CheckValidation {
        dataset_name: started.dataset_name.clone(),
        version_id: started.version_id.clone(),
        expected: Some(started.expected.clone()),
        per_object: started.per_object.as_deref().cloned(),
        progress: None,
    };
    let until = Instant::now() + Duration::from_secs(wait_seconds);
    let mut pause = Duration::from_millis(10);
    loop {
        let now = Instant::now();
        if now >= until {
            return Ok(creating(started.expected.clone()));
        }
        tokio::time::sleep(pause.min(until - now)).await;
        let result = check_with(&clients.iotanalytics, Some(&clients.s3), &check, stop_at).await?;
        if result.state != "CREATING" {
            return Ok(result);
        }
        // Growing by half, not doubling: a content found just after a poll waits at most a
        // third of its own time more, and the polls stay a few per second at the cap.
        pause = (pause * 3 / 2).min(Duration::from_millis(250));
    }
}

/// The answer for a content still being created.
fn creating(expected: BTreeMap<String, Expectation>) -> CheckOutput {
    CheckOutput {
        state: "CREATING".to_owned(),
        passed: None,
        expected,
        actual: BTreeMap::new(),
        progress: None,
    }
}

/// Reads a content version; once it succeeded, downloads its CSV and compares the first row.
pub async fn check_content(
    client: &aws_sdk_iotanalytics::Client,
    input: &CheckValidation,
) -> Result<CheckOutput, IngestError> {
    check_with(client, None, input, None).await
}

/// [`check_content`], or with `per_object` set, the per-object comparison with the ledger
/// (read with `s3`), paused at `stop_at` if it has not finished by then.
async fn check_with(
    client: &aws_sdk_iotanalytics::Client,
    s3: Option<&aws_sdk_s3::Client>,
    input: &CheckValidation,
    stop_at: Option<Instant>,
) -> Result<CheckOutput, IngestError> {
    let name = &input.dataset_name;
    let expected = input.expected.clone().unwrap_or_default();
    let content = client
        .get_dataset_content()
        .dataset_name(name)
        .version_id(&input.version_id)
        .send()
        .await
        .map_err(|e| {
            let failure = CallFailure::from_sdk(&e);
            if failure.has_code("ResourceNotFoundException") {
                IngestError::ResourceNotFound {
                    kind: "dataset",
                    name: name.clone(),
                }
            } else {
                iota_error("GetDatasetContent", name, failure)
            }
        })?;
    let status = content.status();
    match status.and_then(|s| s.state()) {
        Some(DatasetContentState::Succeeded) => {}
        Some(DatasetContentState::Failed) => {
            return Err(IngestError::DatasetContentFailed {
                dataset: name.clone(),
                version_id: input.version_id.clone(),
                reason: status
                    .and_then(|s| s.reason())
                    .unwrap_or("no reason given")
                    .to_owned(),
            });
        }
        _ => return Ok(creating(expected)),
    }
    let uri = content
        .entries()
        .first()
        .and_then(|e| e.data_uri())
        .ok_or_else(|| IngestError::ResultUnreadable {
            uri: String::new(),
            message: format!("dataset {name} content {} has no entries", input.version_id),
        })?;
    let csv = crate::http::get(uri)
        .await
        .map_err(|message| IngestError::ResultUnreadable {
            uri: uri.to_owned(),
            message,
        })?;
    if let Some(per_object) = &input.per_object {
        let s3 = s3.ok_or_else(|| {
            IngestError::invalid_input("perObject", "needs the S3 client to read the ledger")
        })?;
        let ledger = Compare {
            s3,
            per_object,
            progress: input.progress.clone(),
            stop_at,
        };
        return check_objects(ledger, name, uri, &csv, expected).await;
    }
    let actual = first_row(&csv).map_err(|message| IngestError::ResultUnreadable {
        uri: uri.to_owned(),
        message,
    })?;
    let mismatches = compare(&expected, &actual);
    if !mismatches.is_empty() {
        return Err(IngestError::ValidationFailed {
            dataset: name.clone(),
            mismatches: mismatches.join("; "),
        });
    }
    tracing::info!(dataset = %name, ?actual, "validation passed");
    Ok(CheckOutput {
        state: "SUCCEEDED".to_owned(),
        passed: Some(true),
        expected,
        actual,
        progress: None,
    })
}

/// The ledger side of a per-object check: where to read it, how far an earlier call got, and
/// when to pause.
struct Compare<'a> {
    s3: &'a aws_sdk_s3::Client,
    per_object: &'a PerObject,
    progress: Option<CheckProgress>,
    stop_at: Option<Instant>,
}

/// Compares the per-object counts in `csv` with the ledger's entries, or as many of them as
/// fit before `compare.stop_at` (answering `CHECKING` with where to go on).
async fn check_objects(
    compare: Compare<'_>,
    dataset: &str,
    uri: &str,
    csv: &[u8],
    expected: BTreeMap<String, Expectation>,
) -> Result<CheckOutput, IngestError> {
    let counts = parse_counts(csv).map_err(|message| IngestError::ResultUnreadable {
        uri: uri.to_owned(),
        message,
    })?;
    let location = compare
        .per_object
        .ledger
        .as_ref()
        .ok_or_else(|| IngestError::invalid_input("perObject.ledger", "is required"))?;
    let ledger = Ledger::new(compare.s3, location);
    let compared = compare_ledger(
        ledger,
        compare.per_object,
        &counts,
        compare.progress,
        compare.stop_at,
    )
    .await?;
    let result = match compared {
        Compared::Done(result) => result,
        Compared::Paused(progress) => {
            tracing::info!(
                dataset,
                objects = progress.so_far.objects,
                "part of the ledger compared; the next check goes on from there"
            );
            return Ok(CheckOutput {
                state: "CHECKING".to_owned(),
                passed: None,
                expected,
                actual: progress.so_far.actual(),
                progress: Some(progress),
            });
        }
    };
    let actual = result.actual();
    if !result.passed() {
        let mut mismatches = result.failures(&compare.per_object.bucket);
        mismatches.push(format!(
            "{} of {} rows stored, {} duplicates",
            result.distinct_rows,
            result.expected_rows,
            result.duplicates()
        ));
        return Err(IngestError::ValidationFailed {
            dataset: dataset.to_owned(),
            mismatches: mismatches.join("; "),
        });
    }
    tracing::info!(
        dataset,
        ?actual,
        "validation passed: every row of every object is stored"
    );
    Ok(CheckOutput {
        state: "SUCCEEDED".to_owned(),
        passed: Some(true),
        expected,
        actual,
        progress: None,
    })
}

/// The first data row of a CSV with a header, as column → value.
pub fn first_row(csv: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv);
    let header = reader
        .headers()
        .map_err(|e| format!("result CSV header: {e}"))?
        .clone();
    let Some(row) = reader.records().next() else {
        return Ok(BTreeMap::new());
    };
    let row = row.map_err(|e| format!("result CSV row: {e}"))?;
    Ok(header
        .iter()
        .zip(row.iter())
        .map(|(h, v)| (h.to_owned(), v.to_owned()))
        .collect())
}

/// Every expectation that does not hold, as `column: expected X, actual Y`.
pub fn compare(
    expected: &BTreeMap<String, Expectation>,
    actual: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut mismatches = Vec::new();
    for (column, expectation) in expected {
        let found = actual.get(column).or_else(|| {
            actual
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(column))
                .map(|(_, v)| v)
        });
        let Some(found) = found else {
            mismatches.push(format!(
                "{column}: expected {}, but the result has no such column",
                describe(expectation)
            ));
            continue;
        };
        let number = found.trim().parse::<f64>().ok();
        let holds = match expectation {
            Expectation::AtLeast { at_least } => number.is_some_and(|n| n >= *at_least),
            Expectation::Exact(serde_json::Value::Number(n)) => {
                number.is_some_and(|a| Some(a) == n.as_f64())
            }
            Expectation::Exact(serde_json::Value::String(s)) => found == s,
            Expectation::Exact(other) => found.as_str() == other.to_string().as_str(),
        };
        if !holds {
            mismatches.push(format!(
                "{column}: expected {}, actual {found}",
                describe(expectation)
            ));
        }
    }
    mismatches
}

fn describe(expectation: &Expectation) -> String {
    match expectation {
        Expectation::AtLeast { at_least } => format!("at least {at_least}"),
        Expectation::Exact(value) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iotanalytics::operation::create_dataset::CreateDatasetOutput;
    use aws_sdk_iotanalytics::operation::create_dataset_content::CreateDatasetContentOutput;
    use aws_sdk_iotanalytics::operation::describe_dataset::{
        DescribeDatasetError, DescribeDatasetOutput,
    };
    use aws_sdk_iotanalytics::operation::get_dataset_content::GetDatasetContentOutput;
    use aws_sdk_iotanalytics::operation::update_dataset::UpdateDatasetOutput;
    use aws_sdk_iotanalytics::types::error::ResourceNotFoundException;
    use aws_sdk_iotanalytics::types::{Dataset, DatasetContentStatus};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn expected(json: serde_json::Value) -> BTreeMap<String, Expectation> {
        serde_json::from_value(json).unwrap()
    }

    fn actual(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn exact_and_lower_bound_expectations_compare_numbers_as_numbers() {
        let exp =
            expected(serde_json::json!({"locations": 2, "rows": {"atLeast": 100}, "name": "B"}));
        assert!(
            compare(
                &exp,
                &actual(&[("locations", "2.0"), ("rows", "150"), ("name", "B")])
            )
            .is_empty()
        );
        let mismatches = compare(
            &exp,
            &actual(&[("locations", "3"), ("rows", "99"), ("name", "b")]),
        );
        assert_eq!(mismatches.len(), 3, "{mismatches:?}");
        assert!(mismatches[0].contains("locations: expected 2, actual 3"));
    }

    #[test]
    fn a_missing_column_is_a_mismatch_that_says_so() {
        let mismatches = compare(&expected(serde_json::json!({"x": 1})), &actual(&[]));
        assert!(mismatches[0].contains("no such column"));
    }

    #[test]
    fn the_first_result_row_is_read_by_header() {
        let row = first_row(b"a,b\n1,\"x,y\"\n2,z\n").unwrap();
        assert_eq!(row, actual(&[("a", "1"), ("b", "x,y")]));
        assert!(first_row(b"a,b\n").unwrap().is_empty());
    }

    #[tokio::test]
    async fn start_creates_a_missing_dataset_then_its_content() {
        let describe = mock!(aws_sdk_iotanalytics::Client::describe_dataset).then_error(|| {
            DescribeDatasetError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .meta(crate::sender::tests::code("ResourceNotFoundException"))
                    .build(),
            )
        });
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
            let action = DatasetAction::builder()
                .action_name(ACTION_NAME)
                .query_action(
                    SqlQueryDatasetAction::builder()
                        .sql_query("SELECT 1")
                        .build()
                        .unwrap(),
                )
                .build();
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
    async fn failed_content_is_a_typed_error_with_the_reason() {
        let get = mock!(aws_sdk_iotanalytics::Client::get_dataset_content).then_output(|| {
            GetDatasetContentOutput::builder()
                .status(
                    DatasetContentStatus::builder()
                        .state(DatasetContentState::Failed)
                        .reason("table 'nope' not found")
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_iotanalytics, &[&get]);
        let input = CheckValidation {
            dataset_name: "check".into(),
            version_id: "v".into(),
            expected: None,
            per_object: None,
            progress: None,
        };
        let error = check_content(&client, &input).await.unwrap_err();
        assert_eq!(error.error_type(), "DatasetContentFailed");
        assert!(error.to_string().contains("table 'nope' not found"));
    }

    #[tokio::test]
    async fn content_still_creating_is_reported_for_another_look() {
        let get = mock!(aws_sdk_iotanalytics::Client::get_dataset_content).then_output(|| {
            GetDatasetContentOutput::builder()
                .status(
                    DatasetContentStatus::builder()
                        .state(DatasetContentState::Creating)
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_iotanalytics, &[&get]);
        let input = CheckValidation {
            dataset_name: "check".into(),
            version_id: "v".into(),
            expected: None,
            per_object: None,
            progress: None,
        };
        let out = check_content(&client, &input).await.unwrap();
        assert_eq!(out.state, "CREATING");
        assert_eq!(out.passed, None);
    }
}

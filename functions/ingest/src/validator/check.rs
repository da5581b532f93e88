//! The validator's `check` action: a content's state, and once it succeeded, its first row
//! (or the per-object counts) compared with what the run expects.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_iotanalytics::types::DatasetContentState;

use super::{CheckOutput, CheckValidation, Expectation, StartOutput};
use crate::clients::Clients;
use crate::completeness::{CheckProgress, Compared, PerObject, compare_ledger, parse_counts};
use crate::error::IngestError;
use crate::ledger::Ledger;
use crate::service_errors::{CallFailure, iota_error};

/// Checks the content `started` describes until it is done or `wait_seconds` have passed,
/// polling quickly at first (a small datastore's content takes milliseconds).
pub(super) async fn wait_and_check(
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
    let mut pause = Duration::from_millis(5);
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
        // Growing by a quarter, not doubling: a content that finishes just after a poll waits
        // at most a fifth of its own time more (a 100 ms query, 20 ms), the first second takes
        // about twenty polls, and after that they stay at four a second.
        pause = (pause * 5 / 4).min(Duration::from_millis(250));
    }
}

/// The answer for a content still being created.
pub(super) fn creating(expected: BTreeMap<String, Expectation>) -> CheckOutput {
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
pub(super) async fn check_with(
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
    use aws_sdk_iotanalytics::operation::get_dataset_content::GetDatasetContentOutput;
    use aws_sdk_iotanalytics::types::DatasetContentStatus;
    use aws_smithy_mocks::{mock, mock_client};

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

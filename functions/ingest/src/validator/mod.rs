//! The validator step: runs a dataset query over the datastore and compares its result with
//! what the run expects, in two actions so the state machine can wait between them. This file
//! holds the step's input and output and its handler; [`start`] creates the content and
//! [`check`] reads and compares it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

mod check;
mod start;

pub use check::{check_content, compare, first_row};
use check::{check_with, wait_and_check};
pub use start::start_content;

use crate::clients::Clients;
use crate::completeness::{CheckProgress, PerObject};
use crate::error::IngestError;
use crate::launcher::{ObjectCounts, Totals};
use crate::retry::Backoff;
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

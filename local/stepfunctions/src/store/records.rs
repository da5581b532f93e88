//! What the store keeps: state machines, executions with their histories and checkpoints, and
//! Map Runs with their items, as they are serialized to the data directory.

use crate::error::StatesError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The history limit of one execution.
pub const MAX_HISTORY_EVENTS: usize = 25_000;

/// The status of an execution, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Running (or about to resume after a restart).
    Running,
    /// Finished successfully.
    Succeeded,
    /// Failed with an error.
    Failed,
    /// Exceeded the state machine's TimeoutSeconds.
    TimedOut,
    /// Stopped by StopExecution (or aborted with its Map Run).
    Aborted,
    /// A Map Run child waiting for its parent's redrive.
    PendingRedrive,
}

impl ExecutionStatus {
    /// The API spelling (`RUNNING`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
            ExecutionStatus::PendingRedrive => "PENDING_REDRIVE",
        }
    }

    /// Parses the API spelling.
    pub fn parse(text: &str) -> Option<ExecutionStatus> {
        [
            ExecutionStatus::Running,
            ExecutionStatus::Succeeded,
            ExecutionStatus::Failed,
            ExecutionStatus::TimedOut,
            ExecutionStatus::Aborted,
            ExecutionStatus::PendingRedrive,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the execution has stopped.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive
        )
    }
}

/// A registered state machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateMachineRecord {
    /// `arn:aws:states:REGION:ACCOUNT:stateMachine:NAME`.
    pub arn: String,
    /// The name.
    pub name: String,
    /// The definition after substitution.
    pub definition: String,
    /// The role ARN reported to executions (`$$.Execution.RoleArn`).
    pub role_arn: String,
    /// When it was created.
    pub creation_date: DateTime<Utc>,
    /// An EXPRESS state machine (type EXPRESS): its executions keep no history and are not
    /// listed or described, as on AWS.
    #[serde(default)]
    pub express: bool,
}

/// One history event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// 1-based, per execution.
    pub id: u64,
    /// The event before it (0 for the first).
    pub previous_event_id: u64,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// The event type, e.g. `TaskStateEntered`.
    pub kind: String,
    /// The details member name (e.g. `stateEnteredEventDetails`) and its value, if any.
    pub details: Option<(String, Value)>,
}

/// Where an execution stands: the top-level state it last entered and that state's input.
/// A redrive (or a resume after restart) starts again from here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The state name.
    pub state: String,
    /// The state's raw input when it was entered.
    pub input: Value,
    /// For an inline Map or Parallel state: what its iterations or branches returned so far.
    #[serde(default)]
    pub iterations: Option<Iterations>,
    /// The workflow variables when the state was entered.
    #[serde(default)]
    pub variables: serde_json::Map<String, Value>,
}

/// Per-iteration results of the top-level inline Map or Parallel state at the checkpoint, so
/// that a redrive reruns only the iterations or branches that did not succeed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Iterations {
    /// The state they belong to.
    pub state: String,
    /// One slot per iteration or branch; `None` until it succeeded.
    pub results: Vec<Option<Value>>,
}

/// An execution (a top-level one or a Distributed Map child).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// The execution ARN.
    pub arn: String,
    /// The state machine ARN (for a Map Run child: `<parent machine>/<label>`).
    pub state_machine_arn: String,
    /// The state machine name as `$$.StateMachine.Name` shows it.
    pub state_machine_name: String,
    /// The execution name.
    pub name: String,
    /// The status.
    pub status: ExecutionStatus,
    /// The input.
    pub input: Value,
    /// The output once succeeded.
    pub output: Option<Value>,
    /// The error once failed.
    pub error: Option<StatesError>,
    /// Start time.
    pub start_date: DateTime<Utc>,
    /// Stop time.
    pub stop_date: Option<DateTime<Utc>>,
    /// Number of redrives.
    pub redrive_count: u32,
    /// Last redrive time.
    pub redrive_date: Option<DateTime<Utc>>,
    /// Role ARN.
    pub role_arn: String,
    /// The definition this execution runs (a Map item processor for a child).
    pub definition: String,
    /// Whether `definition` is a Map item processor rather than a whole state machine.
    pub is_processor: bool,
    /// For a Distributed Map child: its Map Run.
    pub map_run_arn: Option<String>,
    /// The resume point.
    pub checkpoint: Option<Checkpoint>,
    /// The Map Run of the Distributed Map state at the checkpoint, if it has one.
    pub open_map_run: Option<String>,
    /// Why this execution cannot be redriven, when that is known at failure time.
    pub not_redrivable: Option<String>,
    /// An Express execution (of an EXPRESS state machine, or an EXPRESS Map Run child): it
    /// records no history and is never written to the data directory.
    #[serde(default)]
    pub express: bool,
    /// The history. Persisted apart from the record, as an append-only JSON-lines file, so
    /// that a long history is never rewritten.
    #[serde(skip)]
    pub events: Vec<HistoryEvent>,
}

/// The status of one Map Run item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ItemStatus {
    /// Not started.
    Pending,
    /// Its child execution is running.
    Running,
    /// Its child execution succeeded.
    Succeeded,
    /// Its child execution failed.
    Failed,
    /// Its child execution timed out.
    TimedOut,
    /// Its child execution was aborted.
    Aborted,
}

/// One item (or batch) of a Map Run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MapItem {
    /// The child execution's input.
    pub input: Value,
    /// Status.
    pub status: ItemStatus,
    /// The child execution, once started.
    pub execution_arn: Option<String>,
    /// The child's output once succeeded.
    pub output: Option<Value>,
    /// The child's error once failed.
    pub error: Option<StatesError>,
    /// How many of the Map's items this child runs: 1, or the size of its ItemBatcher batch.
    #[serde(default = "one")]
    pub item_count: u64,
    /// When its (last) child execution started, for the ResultWriter's files.
    #[serde(default)]
    pub start_date: Option<DateTime<Utc>>,
    /// When its child execution stopped.
    #[serde(default)]
    pub stop_date: Option<DateTime<Utc>>,
}

fn one() -> u64 {
    1
}

/// The status of a Map Run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MapRunStatus {
    /// Running.
    Running,
    /// All items done within the tolerated failures.
    Succeeded,
    /// Too many items failed.
    Failed,
    /// Aborted with its execution.
    Aborted,
}

impl MapRunStatus {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MapRunStatus::Running => "RUNNING",
            MapRunStatus::Succeeded => "SUCCEEDED",
            MapRunStatus::Failed => "FAILED",
            MapRunStatus::Aborted => "ABORTED",
        }
    }
}

/// A Distributed Map run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MapRunRecord {
    /// `arn:aws:states:REGION:ACCOUNT:mapRun:MACHINE/LABEL:ID`.
    pub arn: String,
    /// The parent execution.
    pub execution_arn: String,
    /// The Map state's name.
    pub state_name: String,
    /// Status.
    pub status: MapRunStatus,
    /// Start time.
    pub start_date: DateTime<Utc>,
    /// Stop time.
    pub stop_date: Option<DateTime<Utc>>,
    /// Concurrency limit (0 = none).
    pub max_concurrency: u32,
    /// Tolerated failure percentage.
    pub tolerated_failure_percentage: f64,
    /// Tolerated failure count.
    pub tolerated_failure_count: u64,
    /// Number of redrives.
    pub redrive_count: u32,
    /// Last redrive time.
    pub redrive_date: Option<DateTime<Utc>>,
    /// The items.
    pub items: Vec<MapItem>,
}

/// Counts of a Map Run's items by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemCounts {
    /// Not started yet.
    pub pending: u64,
    /// Running.
    pub running: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Failed.
    pub failed: u64,
    /// Timed out.
    pub timed_out: u64,
    /// Aborted.
    pub aborted: u64,
    /// All items.
    pub total: u64,
}

impl MapRunRecord {
    /// Counts items by status; a batch counts as many items as it holds, so a failed batch
    /// counts all its items as failed (as AWS's itemCounts and failure tolerance do).
    pub fn counts(&self) -> ItemCounts {
        self.count_by(|item| item.item_count)
    }

    /// Counts child executions by status (AWS's executionCounts): one per batch.
    pub fn execution_counts(&self) -> ItemCounts {
        self.count_by(|_| 1)
    }

    fn count_by(&self, weight: impl Fn(&MapItem) -> u64) -> ItemCounts {
        let mut c = ItemCounts::default();
        for item in &self.items {
            let n = weight(item);
            c.total += n;
            match item.status {
                ItemStatus::Pending => c.pending += n,
                ItemStatus::Running => c.running += n,
                ItemStatus::Succeeded => c.succeeded += n,
                ItemStatus::Failed => c.failed += n,
                ItemStatus::TimedOut => c.timed_out += n,
                ItemStatus::Aborted => c.aborted += n,
            }
        }
        c
    }
}

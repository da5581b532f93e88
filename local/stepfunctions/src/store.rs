//! State machines, executions (with their histories) and map runs, kept in memory and persisted
//! as JSON files under the data directory so that they survive a restart of the host.

use crate::error::{Error, StatesError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Locks a mutex, recovering it if a thread panicked while holding it: every record stays
/// usable (and is persisted) even when a host's Resources panicked mid-update.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

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
    /// Counts items by status.
    pub fn counts(&self) -> ItemCounts {
        let mut c = ItemCounts {
            total: self.items.len() as u64,
            ..ItemCounts::default()
        };
        for item in &self.items {
            match item.status {
                ItemStatus::Pending => c.pending += 1,
                ItemStatus::Running => c.running += 1,
                ItemStatus::Succeeded => c.succeeded += 1,
                ItemStatus::Failed => c.failed += 1,
                ItemStatus::TimedOut => c.timed_out += 1,
                ItemStatus::Aborted => c.aborted += 1,
            }
        }
        c
    }
}

/// A live execution: its record plus what the running task needs to be stopped and awaited.
#[derive(Debug)]
pub(crate) struct ExecEntry {
    pub record: Mutex<ExecutionRecord>,
    pub dirty: AtomicBool,
    pub cancel: Mutex<CancellationToken>,
    pub status: watch::Sender<ExecutionStatus>,
    /// How many history events are on disk; held while flushing so that two flushes never
    /// append the same events.
    persisted_events: Mutex<usize>,
}

impl ExecEntry {
    pub fn new(record: ExecutionRecord) -> Arc<ExecEntry> {
        let (status, _) = watch::channel(record.status);
        Arc::new(ExecEntry {
            record: Mutex::new(record),
            dirty: AtomicBool::new(true),
            cancel: Mutex::new(CancellationToken::new()),
            status,
            persisted_events: Mutex::new(0),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, ExecutionRecord> {
        lock(&self.record)
    }

    pub fn touch(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

/// A live Map Run.
#[derive(Debug)]
pub(crate) struct MapRunEntry {
    pub record: Mutex<MapRunRecord>,
    pub dirty: AtomicBool,
}

impl MapRunEntry {
    pub fn lock(&self) -> MutexGuard<'_, MapRunRecord> {
        lock(&self.record)
    }

    pub fn touch(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

/// Everything the executor keeps, in memory and on disk.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    pub state_machines: Mutex<BTreeMap<String, StateMachineRecord>>,
    pub executions: Mutex<HashMap<String, Arc<ExecEntry>>>,
    pub map_runs: Mutex<HashMap<String, Arc<MapRunEntry>>>,
}

fn file_name(arn: &str) -> String {
    use sha1::Digest as _;
    format!("{}.json", hex::encode(sha1::Sha1::digest(arn.as_bytes())))
}

fn events_path(dir: &FsPath, arn: &str) -> PathBuf {
    dir.join("executions")
        .join(file_name(arn).replace(".json", ".events.jsonl"))
}

/// Reads a history file; a torn last line (the host stopped mid-write) is dropped.
fn read_events(path: &FsPath) -> Vec<HistoryEvent> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map_while(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Replaces a record file at once (write beside it, then rename), so a crash never leaves
/// half a record.
fn write_atomically(path: &FsPath, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn write_json<T: Serialize>(path: &FsPath, value: &T) -> Result<(), Error> {
    write_atomically(path, &serde_json::to_vec(value)?)
}

fn read_dir_json<T: for<'de> Deserialize<'de>>(dir: &FsPath) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            match serde_json::from_slice(&std::fs::read(&path)?) {
                Ok(v) => out.push(v),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable record")
                }
            }
        }
    }
    Ok(out)
}

impl Store {
    /// Opens (creating if needed) the data directory and loads what it holds.
    pub fn open(dir: &FsPath) -> Result<Store, Error> {
        for sub in ["state-machines", "executions", "map-runs"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let mut state_machines = BTreeMap::new();
        for sm in read_dir_json::<StateMachineRecord>(&dir.join("state-machines"))? {
            state_machines.insert(sm.arn.clone(), sm);
        }
        let mut executions = HashMap::new();
        for mut record in read_dir_json::<ExecutionRecord>(&dir.join("executions"))? {
            record.events = read_events(&events_path(dir, &record.arn));
            let persisted = record.events.len();
            let arn = record.arn.clone();
            let entry = ExecEntry::new(record);
            entry.dirty.store(false, Ordering::Release);
            *lock(&entry.persisted_events) = persisted;
            executions.insert(arn, entry);
        }
        let mut map_runs = HashMap::new();
        for record in read_dir_json::<MapRunRecord>(&dir.join("map-runs"))? {
            map_runs.insert(
                record.arn.clone(),
                Arc::new(MapRunEntry {
                    record: Mutex::new(record),
                    dirty: AtomicBool::new(false),
                }),
            );
        }
        tracing::debug!(
            dir = %dir.display(),
            state_machines = state_machines.len(),
            executions = executions.len(),
            "loaded the Step Functions store"
        );
        Ok(Store {
            dir: dir.to_path_buf(),
            state_machines: Mutex::new(state_machines),
            executions: Mutex::new(executions),
            map_runs: Mutex::new(map_runs),
        })
    }

    pub fn save_state_machine(&self, record: &StateMachineRecord) -> Result<(), Error> {
        write_json(
            &self.dir.join("state-machines").join(file_name(&record.arn)),
            record,
        )
    }

    pub fn delete_state_machine_file(&self, arn: &str) -> Result<(), Error> {
        let path = self.dir.join("state-machines").join(file_name(arn));
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }

    /// A registered state machine, or StateMachineDoesNotExist.
    pub fn state_machine(&self, arn: &str) -> Result<StateMachineRecord, Error> {
        lock(&self.state_machines)
            .get(arn)
            .cloned()
            .ok_or_else(|| Error::StateMachineDoesNotExist(arn.to_string()))
    }

    pub fn execution(&self, arn: &str) -> Option<Arc<ExecEntry>> {
        lock(&self.executions).get(arn).cloned()
    }

    /// An execution, or ExecutionDoesNotExist.
    pub fn existing_execution(&self, arn: &str) -> Result<Arc<ExecEntry>, Error> {
        self.execution(arn)
            .ok_or_else(|| Error::ExecutionDoesNotExist(arn.to_string()))
    }

    /// What `select` makes of each execution record, under that record's lock (histories are
    /// not copied), in no particular order.
    pub fn select_executions<T>(
        &self,
        mut select: impl FnMut(&ExecutionRecord) -> Option<T>,
    ) -> Vec<T> {
        lock(&self.executions)
            .values()
            .filter_map(|e| select(&e.lock()))
            .collect()
    }

    pub fn map_run(&self, arn: &str) -> Option<Arc<MapRunEntry>> {
        lock(&self.map_runs).get(arn).cloned()
    }

    /// What `select` makes of each Map Run record, under that record's lock, in no particular
    /// order.
    pub fn select_map_runs<T>(&self, mut select: impl FnMut(&MapRunRecord) -> Option<T>) -> Vec<T> {
        lock(&self.map_runs)
            .values()
            .filter_map(|m| select(&m.lock()))
            .collect()
    }

    pub fn insert_execution(&self, entry: Arc<ExecEntry>) {
        let arn = entry.lock().arn.clone();
        lock(&self.executions).insert(arn, entry);
    }

    pub fn insert_map_run(&self, record: MapRunRecord) -> Arc<MapRunEntry> {
        let entry = Arc::new(MapRunEntry {
            record: Mutex::new(record),
            dirty: AtomicBool::new(true),
        });
        let arn = entry.lock().arn.clone();
        lock(&self.map_runs).insert(arn, entry.clone());
        entry
    }

    /// Writes one execution now (used when it stops, so a final status is never lost).
    pub fn flush_execution(&self, entry: &ExecEntry) {
        let mut persisted = lock(&entry.persisted_events);
        entry.dirty.store(false, Ordering::Release);
        // Serialize under the record's lock; write after releasing it.
        let (arn, record, new_events, total) = {
            let r = entry.lock();
            let mut lines = Vec::new();
            for event in r.events.iter().skip(*persisted) {
                if serde_json::to_writer(&mut lines, event).is_ok() {
                    lines.push(b'\n');
                }
            }
            (
                r.arn.clone(),
                serde_json::to_vec(&*r),
                lines,
                r.events.len(),
            )
        };
        let result = record.map_err(Error::from).and_then(|bytes| {
            if !new_events.is_empty() {
                use std::io::Write as _;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(events_path(&self.dir, &arn))?
                    .write_all(&new_events)?;
            }
            write_atomically(&self.dir.join("executions").join(file_name(&arn)), &bytes)
        });
        match result {
            Ok(()) => *persisted = total,
            Err(e) => {
                tracing::error!(execution = %arn, error = %e, "could not persist an execution")
            }
        }
    }

    /// Writes one map run now.
    pub fn flush_map_run(&self, entry: &MapRunEntry) {
        entry.dirty.store(false, Ordering::Release);
        let record = entry.lock().clone();
        let path = self.dir.join("map-runs").join(file_name(&record.arn));
        if let Err(e) = write_json(&path, &record) {
            tracing::error!(map_run = %record.arn, error = %e, "could not persist a map run");
        }
    }

    /// Writes everything that changed since the last flush.
    pub fn flush_dirty(&self) {
        let executions: Vec<Arc<ExecEntry>> = lock(&self.executions)
            .values()
            .filter(|e| e.dirty.load(Ordering::Acquire))
            .cloned()
            .collect();
        for entry in executions {
            self.flush_execution(&entry);
        }
        let map_runs: Vec<Arc<MapRunEntry>> = lock(&self.map_runs)
            .values()
            .filter(|e| e.dirty.load(Ordering::Acquire))
            .cloned()
            .collect();
        for entry in map_runs {
            self.flush_map_run(&entry);
        }
    }
}

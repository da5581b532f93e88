//! State machines, executions (with their histories) and map runs, kept in memory and persisted
//! as JSON files under the data directory so that they survive a restart of the host. The
//! records themselves are in `records`; this module holds them live and writes them.

mod records;

pub use records::{
    Checkpoint, ExecutionRecord, ExecutionStatus, HistoryEvent, ItemCounts, ItemStatus, Iterations,
    MAX_HISTORY_EVENTS, MapItem, MapRunRecord, MapRunStatus, StateMachineRecord,
};

use crate::error::Error;
use serde::{Deserialize, Serialize};
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

    /// What `select` makes of each state machine, in ARN order.
    pub fn select_state_machines<T>(
        &self,
        select: impl FnMut(&StateMachineRecord) -> Option<T>,
    ) -> Vec<T> {
        lock(&self.state_machines)
            .values()
            .filter_map(select)
            .collect()
    }

    /// Forgets a state machine and removes its file; a machine that does not exist is no error.
    pub fn delete_state_machine(&self, arn: &str) -> Result<(), Error> {
        lock(&self.state_machines).remove(arn);
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
        for entry in changed(&self.executions, |e| &e.dirty) {
            self.flush_execution(&entry);
        }
        for entry in changed(&self.map_runs, |m| &m.dirty) {
            self.flush_map_run(&entry);
        }
    }
}

/// The entries of `entries` changed since their last flush, collected so that none is written
/// while the map is locked.
fn changed<E>(
    entries: &Mutex<HashMap<String, Arc<E>>>,
    dirty: impl Fn(&E) -> &AtomicBool,
) -> Vec<Arc<E>> {
    lock(entries)
        .values()
        .filter(|e| dirty(e).load(Ordering::Acquire))
        .cloned()
        .collect()
}

//! Durable storage of channel and datastore messages.
//!
//! Each channel and datastore is a directory of numbered segments. New messages are appended
//! as JSON lines to the newest segment by a single writer thread that syncs every file it
//! touched before acknowledging a whole group of batches at once (group commit). Full or idle
//! datastore segments are sealed and converted to Parquet by a compaction thread: for a
//! Parquet datastore the Parquet file replaces the JSON lines, for a JSON datastore it is a
//! query cache kept next to them. Queries read Parquet where it exists and JSON lines
//! elsewhere, up to the last acknowledged byte.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::store::arrow::{BATCH_ROWS, attr_data_type, decode_jsonl};
use crate::validate::AttrType;

mod compaction;
mod read;
mod recover;
mod sync;
mod writer;

use compaction::run_compactor;
pub use read::{lines_between, read_all, tail_lines};
use recover::recover;
use writer::Writer;

/// A datastore segment is sealed once it holds this many messages.
const SEGMENT_MAX_RECORDS: u64 = 250_000;
/// Any segment is sealed once it holds this many bytes.
const SEGMENT_MAX_BYTES: u64 = 256 << 20;
/// After this long without writes, datastore segments worth converting are sealed.
const IDLE_SEAL_AFTER: Duration = Duration::from_millis(1500);
/// A JSON datastore's idle segment is sealed only when it holds at least this many messages,
/// so that a trickle of messages does not leave a trail of tiny files.
const IDLE_SEAL_MIN_RECORDS_JSON: u64 = 20_000;
/// Most commands taken into one group commit.
const MAX_GROUP: usize = 512;
/// Sealed segments wait for Parquet conversion until the store has had no append for this
/// long, so conversion does not take the cores from an ingest in progress.
const COMPACT_WHEN_QUIET_FOR: Duration = Duration::from_millis(250);
/// ... or until this many are waiting, which bounds what a query reads as JSON lines.
const COMPACT_BACKLOG: usize = 16;

/// Whether a log belongs to a channel or to a datastore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Raw messages of a channel.
    Channel,
    /// Processed messages of a datastore.
    Datastore,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Channel => "channels",
            Kind::Datastore => "datastores",
        }
    }
}

/// How a datastore keeps its sealed segments.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// JSON lines (Parquet copies kept as a query cache).
    Json,
    /// Parquet; with a schema definition the columns are fixed, without one they are inferred.
    Parquet(Option<Vec<(String, DataType)>>),
}

/// One segment file of a log.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Sequence number, part of the file name.
    pub id: u64,
    /// Acknowledged bytes of its JSON lines file.
    pub len: u64,
    /// Acknowledged messages (counted for the active segment only after a restart).
    pub records: u64,
    /// No longer written to.
    pub sealed: bool,
    /// A Parquet version exists.
    pub parquet: bool,
}

/// The in-memory state of a log, changed by the writer and compaction threads.
#[derive(Debug, Default)]
pub struct LogState {
    /// Segments, oldest first; the last one is being written.
    pub segments: Vec<Segment>,
    /// Attributes seen, lower-cased, in order of first appearance.
    pub schema: Vec<(String, AttrType)>,
    schema_index: HashMap<String, usize>,
    /// Time of the last acknowledged message, seconds since the epoch.
    pub last_arrival: Option<f64>,
    /// Acknowledged bytes in JSON lines, over all segments ever written in this process
    /// plus those found at start.
    pub total_bytes: u64,
}

impl LogState {
    fn merge_attrs(&mut self, attrs: &[(String, AttrType)]) -> bool {
        let mut changed = false;
        for (name, ty) in attrs {
            match self.schema_index.get(name) {
                Some(&i) => {
                    let merged = self.schema[i].1.merge(*ty);
                    if merged != self.schema[i].1 {
                        self.schema[i].1 = merged;
                        changed = true;
                    }
                }
                None => {
                    self.schema_index.insert(name.clone(), self.schema.len());
                    self.schema.push((name.clone(), *ty));
                    changed = true;
                }
            }
        }
        changed
    }
}

/// A channel's or datastore's stored messages.
#[derive(Debug)]
pub struct Log {
    /// Channel or datastore.
    pub kind: Kind,
    /// Resource name.
    pub name: String,
    /// Directory of its segments.
    pub dir: PathBuf,
    /// Storage format (always JSON for channels).
    pub format: Format,
    state: Mutex<LogState>,
}

impl Log {
    /// Locks the state.
    pub fn state(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn jsonl_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("seg-{id:08}.jsonl"))
    }

    fn parquet_path(&self, id: u64) -> PathBuf {
        match self.format {
            Format::Parquet(_) => self.dir.join(format!("seg-{id:08}.parquet")),
            Format::Json => self.dir.join("cache").join(format!("seg-{id:08}.parquet")),
        }
    }

    /// The Arrow schema queries see: the defined columns of a Parquet datastore with a schema
    /// definition, otherwise the union of the attributes seen.
    pub fn arrow_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = match &self.format {
            Format::Parquet(Some(cols)) => cols
                .iter()
                .map(|(n, t)| Field::new(n, t.clone(), true))
                .collect(),
            _ => self
                .state()
                .schema
                .iter()
                .map(|(n, t)| Field::new(n, attr_data_type(*t), true))
                .collect(),
        };
        Arc::new(Schema::new(fields))
    }

    /// Size of the stored data in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.state().total_bytes
    }
}

/// Messages to append to one log: complete JSON lines.
pub struct Write {
    /// Target log.
    pub log: Arc<Log>,
    /// Newline-terminated JSON objects.
    pub data: Vec<u8>,
    /// Number of lines in `data`.
    pub records: u64,
    /// Attributes present in `data` (lower-cased), for the schema.
    pub attrs: Vec<(String, AttrType)>,
}

enum Cmd {
    Append {
        writes: Vec<Write>,
        ack: oneshot::Sender<Result<(), Error>>,
    },
    Drop {
        kind: Kind,
        name: String,
        ack: oneshot::Sender<Result<(), Error>>,
    },
    Expire {
        kind: Kind,
        name: String,
        cutoff: SystemTime,
        ack: oneshot::Sender<Result<u64, Error>>,
    },
    Shutdown,
}

struct Shared {
    root: PathBuf,
    durable: bool,
    logs: RwLock<HashMap<(Kind, String), Arc<Log>>>,
    compact_tx: Mutex<mpsc::Sender<(Arc<Log>, u64)>>,
    last_append: Arc<AppendClock>,
}

/// When the writer last committed an append, and whether the store is shutting down.
struct AppendClock {
    start: std::time::Instant,
    millis: std::sync::atomic::AtomicU64,
    stopping: std::sync::atomic::AtomicBool,
}

impl AppendClock {
    fn new() -> Self {
        Self {
            start: std::time::Instant::now(),
            millis: std::sync::atomic::AtomicU64::new(0),
            stopping: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn tick(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.millis.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.millis.load(std::sync::atomic::Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// The storage engine: owns the writer and compaction threads.
pub struct Store {
    shared: Arc<Shared>,
    tx: Mutex<mpsc::Sender<Cmd>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Lowers the calling thread's scheduling priority (nice 19), so compaction, which nothing
/// waits for, takes the cores only when ingest and queries leave them idle. Queries read the
/// segments not yet compacted as they are.
fn yield_to_ingest() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %e, "compaction keeps the default priority");
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a small file so that either the old or the new content survives a crash.
pub fn write_atomic(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if durable && let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn parse_segment_name(name: &str, ext: &str) -> Option<u64> {
    name.strip_prefix("seg-")?.strip_suffix(ext)?.parse().ok()
}

impl Store {
    /// Opens the store under `root` and starts its threads.
    pub fn open(root: &Path, durable: bool) -> Result<Arc<Store>, Error> {
        fs::create_dir_all(root.join(Kind::Channel.dir()))?;
        fs::create_dir_all(root.join(Kind::Datastore.dir()))?;
        let (tx, rx) = mpsc::channel();
        let (compact_tx, compact_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            root: root.to_owned(),
            durable,
            logs: RwLock::new(HashMap::new()),
            compact_tx: Mutex::new(compact_tx),
            last_append: Arc::new(AppendClock::new()),
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("iotanalytics-writer".into())
                .spawn(move || Writer::new(shared).run(rx))?
        };
        let compactor = {
            let durable = shared.durable;
            let clock = shared.last_append.clone();
            std::thread::Builder::new()
                .name("iotanalytics-compactor".into())
                .spawn(move || run_compactor(&compact_rx, &clock, durable))?
        };
        Ok(Arc::new(Store {
            shared,
            tx: Mutex::new(tx),
            threads: Mutex::new(vec![writer, compactor]),
        }))
    }

    fn send(&self, cmd: Cmd) -> Result<(), Error> {
        self.tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(cmd)
            .map_err(|_| Error::InternalFailure("the storage writer has stopped".into()))
    }

    /// The log of a channel or datastore, if open.
    pub fn log(&self, kind: Kind, name: &str) -> Option<Arc<Log>> {
        self.shared
            .logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(kind, name.to_owned()))
            .cloned()
    }

    /// Opens (creating or recovering) the log of a channel or datastore.
    pub fn open_log(&self, kind: Kind, name: &str, format: Format) -> Result<Arc<Log>, Error> {
        if let Some(log) = self.log(kind, name) {
            return Ok(log);
        }
        let dir = self.shared.root.join(kind.dir()).join(name);
        let log = Arc::new(recover(kind, name, dir, format, self.shared.durable)?);
        let unconverted: Vec<u64> = if kind == Kind::Datastore {
            log.state()
                .segments
                .iter()
                .filter(|s| s.sealed && !s.parquet)
                .map(|s| s.id)
                .collect()
        } else {
            Vec::new()
        };
        for id in unconverted {
            let _ = self
                .shared
                .compact_tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send((log.clone(), id));
        }
        self.shared
            .logs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((kind, name.to_owned()), log.clone());
        Ok(log)
    }

    /// Closes a log and deletes its files.
    pub async fn drop_log(&self, kind: Kind, name: &str) -> Result<(), Error> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Drop {
            kind,
            name: name.to_owned(),
            ack,
        })?;
        rx.await
            .map_err(|_| Error::InternalFailure("the storage writer has stopped".into()))?
    }

    /// Removes the segments of a log whose last write is before `cutoff` (the active segment
    /// too, sealed first, when it is that old); returns how many went.
    pub async fn expire(&self, kind: Kind, name: &str, cutoff: SystemTime) -> Result<u64, Error> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Expire {
            kind,
            name: name.to_owned(),
            cutoff,
            ack,
        })?;
        rx.await
            .map_err(|_| Error::InternalFailure("the storage writer has stopped".into()))?
    }

    /// Appends and, when durable, syncs; returns once the data is acknowledged.
    pub async fn append(&self, writes: Vec<Write>) -> Result<(), Error> {
        if writes.is_empty() {
            return Ok(());
        }
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Append { writes, ack })?;
        rx.await
            .map_err(|_| Error::InternalFailure("the storage writer has stopped".into()))?
    }

    /// Sealed datastore segments not yet converted to Parquet: the compaction thread's
    /// outstanding work (zero once it has caught up).
    pub fn unconverted_segments(&self) -> usize {
        let logs = self.shared.logs.read().unwrap_or_else(|e| e.into_inner());
        logs.values()
            .filter(|log| log.kind == Kind::Datastore)
            .map(|log| {
                log.state()
                    .segments
                    .iter()
                    .filter(|s| s.sealed && !s.parquet)
                    .count()
            })
            .sum()
    }

    /// Stops the threads after the writes already queued.
    pub fn shutdown(&self) {
        // Segments still waiting for conversion are queued again at the next start.
        self.shared
            .last_append
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.send(Cmd::Shutdown);
        let handles: Vec<_> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        // The compactor stops when its sender is gone, which the writer holds through `shared`;
        // only the writer is joined so shutdown never waits for a long conversion.
        if let Some(writer) = handles.into_iter().next() {
            let _ = writer.join();
        }
    }
}

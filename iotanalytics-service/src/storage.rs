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

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::validate::AttrType;

/// A datastore segment is sealed once it holds this many messages.
const SEGMENT_MAX_RECORDS: u64 = 250_000;
/// Any segment is sealed once it holds this many bytes.
const SEGMENT_MAX_BYTES: u64 = 256 << 20;
/// After this long without writes, datastore segments worth converting are sealed.
const IDLE_SEAL_AFTER: Duration = Duration::from_millis(1500);
/// A JSON datastore's idle segment is sealed only when it holds at least this many messages,
/// so that a trickle of messages does not leave a trail of tiny files.
const IDLE_SEAL_MIN_RECORDS_JSON: u64 = 20_000;
/// Rows per Arrow batch produced from JSON lines.
const BATCH_ROWS: usize = 16_384;
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

/// The Arrow type a column of this attribute kind gets.
pub fn attr_data_type(t: AttrType) -> DataType {
    match t {
        AttrType::Bool => DataType::Boolean,
        AttrType::Int => DataType::Int64,
        AttrType::Float => DataType::Float64,
        AttrType::Null | AttrType::Str | AttrType::Json => DataType::Utf8,
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

/// Rebuilds a log's state from its directory, repairing a torn last line.
fn recover(
    kind: Kind,
    name: &str,
    dir: PathBuf,
    format: Format,
    durable: bool,
) -> Result<Log, Error> {
    fs::create_dir_all(&dir)?;
    if format == Format::Json && kind == Kind::Datastore {
        fs::create_dir_all(dir.join("cache"))?;
    }
    let log = Log {
        kind,
        name: name.to_owned(),
        dir: dir.clone(),
        format,
        state: Mutex::new(LogState::default()),
    };
    let mut jsonl = HashSet::new();
    let mut parquet = HashSet::new();
    let mut newest_mtime = None;
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = parse_segment_name(&file_name, ".jsonl") {
            jsonl.insert(id);
        } else if let Some(id) = parse_segment_name(&file_name, ".parquet") {
            parquet.insert(id);
        } else {
            continue;
        }
        let mtime = entry.metadata()?.modified().ok();
        newest_mtime = newest_mtime.max(mtime);
    }
    if log.format == Format::Json && kind == Kind::Datastore {
        for entry in fs::read_dir(dir.join("cache"))? {
            let file_name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(id) = parse_segment_name(&file_name, ".parquet") {
                parquet.insert(id);
            }
        }
    }
    let mut ids: Vec<u64> = jsonl.union(&parquet).copied().collect();
    ids.sort_unstable();
    let mut state = LogState::default();
    if let Ok(text) = fs::read(dir.join("schema.json")) {
        let attrs: Vec<(String, AttrType)> = serde_json::from_slice(&text)?;
        state.merge_attrs(&attrs);
    }
    for &id in &ids {
        let has_parquet = parquet.contains(&id);
        let mut len = 0;
        if jsonl.contains(&id) {
            if has_parquet && matches!(log.format, Format::Parquet(_)) {
                // The conversion finished but the JSON lines were not yet removed.
                fs::remove_file(log.jsonl_path(id))?;
            } else {
                len = fs::metadata(log.jsonl_path(id))?.len();
            }
        } else if has_parquet {
            state.total_bytes += fs::metadata(log.parquet_path(id))?.len();
        }
        state.total_bytes += len;
        state.segments.push(Segment {
            id,
            len,
            records: 0,
            sealed: true,
            parquet: has_parquet,
        });
    }
    let reuse_last = matches!(state.segments.last(), Some(s) if !(s.parquet && matches!(log.format, Format::Parquet(_))));
    if reuse_last {
        let last = state.segments.last_mut().expect("checked above");
        let path = log.jsonl_path(last.id);
        let mut data = Vec::new();
        OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .open(&path)?
            .read_to_end(&mut data)?;
        let keep = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if keep != data.len() {
            tracing::warn!(log = %name, dropped = data.len() - keep, "discarding a torn last line left by a crash");
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(keep as u64)?;
            if durable {
                f.sync_all()?;
            }
            state.total_bytes -= (data.len() - keep) as u64;
        }
        last.len = keep as u64;
        last.records = data[..keep].iter().filter(|b| **b == b'\n').count() as u64;
        last.sealed = false;
        last.parquet = false;
    } else {
        let id = ids.last().map_or(1, |i| i + 1);
        File::create(log.jsonl_path(id))?;
        if durable {
            sync_dir(&dir)?;
        }
        state.segments.push(Segment {
            id,
            len: 0,
            records: 0,
            sealed: false,
            parquet: false,
        });
    }
    state.last_arrival = newest_mtime
        .filter(|_| state.total_bytes > 0)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    *log.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    Ok(log)
}

struct Active {
    file: File,
    id: u64,
    len: u64,
    records: u64,
}

struct Writer {
    shared: Arc<Shared>,
    files: HashMap<(Kind, String), Active>,
}

impl Writer {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            files: HashMap::new(),
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        loop {
            let first = match rx.recv_timeout(IDLE_SEAL_AFTER) {
                Ok(cmd) => cmd,
                Err(RecvTimeoutError::Timeout) => {
                    self.seal_idle();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut cmds = vec![first];
            while cmds.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(cmd) => cmds.push(cmd),
                    Err(_) => break,
                }
            }
            if self.process(cmds) {
                break;
            }
        }
        self.seal_idle();
        tracing::debug!("storage writer stopped");
    }

    /// Runs one group commit; returns true when asked to stop.
    fn process(&mut self, cmds: Vec<Cmd>) -> bool {
        let mut acks = Vec::new();
        let mut dirty: Vec<Arc<Log>> = Vec::new();
        let mut schema_dirty: Vec<Arc<Log>> = Vec::new();
        let mut stop = false;
        for cmd in cmds {
            match cmd {
                Cmd::Append { writes, ack } => {
                    let mut result = Ok(());
                    for w in &writes {
                        if let Err(e) = self.write(w, &mut dirty, &mut schema_dirty) {
                            result = Err(e);
                            break;
                        }
                    }
                    match result {
                        Ok(()) => acks.push(ack),
                        Err(e) => {
                            let _ = ack.send(Err(e));
                        }
                    }
                }
                Cmd::Drop { kind, name, ack } => {
                    let _ = ack.send(self.drop_log(kind, &name));
                }
                Cmd::Shutdown => stop = true,
            }
        }
        let result = self.commit(&dirty, &schema_dirty);
        match result {
            Ok(()) => {
                if !dirty.is_empty() {
                    self.shared.last_append.tick();
                }
                let now = now_secs();
                for log in &dirty {
                    let key = (log.kind, log.name.clone());
                    if let Some(active) = self.files.get(&key) {
                        let mut st = log.state();
                        let mut added = 0;
                        if let Some(seg) = st.segments.iter_mut().rev().find(|s| s.id == active.id)
                        {
                            added = active.len.saturating_sub(seg.len);
                            seg.len = active.len;
                            seg.records = active.records;
                        }
                        st.total_bytes += added;
                        st.last_arrival = Some(now);
                    }
                }
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                let message = e.to_string();
                for log in &dirty {
                    // Forget the handle so the next write reopens at the acknowledged length.
                    self.files.remove(&(log.kind, log.name.clone()));
                }
                for ack in acks {
                    let _ = ack.send(Err(Error::InternalFailure(message.clone())));
                }
            }
        }
        stop
    }

    fn commit(&mut self, dirty: &[Arc<Log>], schema_dirty: &[Arc<Log>]) -> Result<(), Error> {
        // The schema goes first: after a crash a column without data is harmless, data without
        // its column is not.
        for log in schema_dirty {
            let attrs = serde_json::to_vec(&log.state().schema)?;
            write_atomic(&log.dir.join("schema.json"), &attrs, self.shared.durable)?;
        }
        if self.shared.durable {
            let files: Vec<&File> = dirty
                .iter()
                .filter_map(|log| self.files.get(&(log.kind, log.name.clone())))
                .map(|a| &a.file)
                .collect();
            // A sync waits for the device; the files of a group (a channel and its
            // datastores) are synced side by side so the group waits about once.
            std::thread::scope(|scope| {
                let others: Vec<_> = files
                    .iter()
                    .skip(1)
                    .map(|f| scope.spawn(move || f.sync_data()))
                    .collect();
                let first = files.first().map_or(Ok(()), |f| f.sync_data());
                others
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(std::io::Error::other("sync thread panicked")))
                    })
                    .fold(first, |acc, r| acc.and(r))
            })?;
        }
        Ok(())
    }

    fn active(&mut self, log: &Arc<Log>) -> Result<&mut Active, Error> {
        let key = (log.kind, log.name.clone());
        if !self.files.contains_key(&key) {
            let (id, len, records) = {
                let st = log.state();
                let seg = st.segments.last().ok_or_else(|| {
                    Error::InternalFailure(format!("log {} has no segment", log.name))
                })?;
                (seg.id, seg.len, seg.records)
            };
            let path = log.jsonl_path(id);
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            // Drop anything past the acknowledged length (left by a failed commit).
            file.set_len(len)?;
            let mut file = file;
            file.seek(SeekFrom::End(0))?;
            self.files.insert(
                key.clone(),
                Active {
                    file,
                    id,
                    len,
                    records,
                },
            );
        }
        Ok(self.files.get_mut(&key).expect("inserted above"))
    }

    fn write(
        &mut self,
        w: &Write,
        dirty: &mut Vec<Arc<Log>>,
        schema_dirty: &mut Vec<Arc<Log>>,
    ) -> Result<(), Error> {
        let log = &w.log;
        let full = {
            let a = self.active(log)?;
            let max_records = if log.kind == Kind::Datastore {
                SEGMENT_MAX_RECORDS
            } else {
                u64::MAX
            };
            a.records > 0 && (a.records >= max_records || a.len >= SEGMENT_MAX_BYTES)
        };
        if full {
            self.seal(log)?;
        }
        if !w.attrs.is_empty()
            && log.kind == Kind::Datastore
            && log.state().merge_attrs(&w.attrs)
            && !schema_dirty.iter().any(|l| Arc::ptr_eq(l, log))
        {
            schema_dirty.push(log.clone());
        }
        let a = self.active(log)?;
        a.file.write_all(&w.data)?;
        a.len += w.data.len() as u64;
        a.records += w.records;
        if !dirty.iter().any(|l| Arc::ptr_eq(l, log)) {
            dirty.push(log.clone());
        }
        Ok(())
    }

    /// Closes the active segment (synced) and starts the next one.
    fn seal(&mut self, log: &Arc<Log>) -> Result<(), Error> {
        let key = (log.kind, log.name.clone());
        let Some(active) = self.files.remove(&key) else {
            return Ok(());
        };
        active.file.sync_all()?;
        let next = active.id + 1;
        File::create(log.jsonl_path(next))?;
        sync_dir(&log.dir)?;
        {
            let mut st = log.state();
            let mut added = 0;
            if let Some(seg) = st.segments.iter_mut().rev().find(|s| s.id == active.id) {
                added = active.len.saturating_sub(seg.len);
                seg.len = active.len;
                seg.records = active.records;
                seg.sealed = true;
            }
            st.total_bytes += added;
            st.segments.push(Segment {
                id: next,
                len: 0,
                records: 0,
                sealed: false,
                parquet: false,
            });
        }
        if log.kind == Kind::Datastore {
            let _ = self
                .shared
                .compact_tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send((log.clone(), active.id));
        }
        Ok(())
    }

    fn seal_idle(&mut self) {
        let logs: Vec<Arc<Log>> = self
            .shared
            .logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|l| l.kind == Kind::Datastore)
            .cloned()
            .collect();
        for log in logs {
            let Some(active) = self.files.get(&(log.kind, log.name.clone())) else {
                continue;
            };
            let min = match log.format {
                Format::Json => IDLE_SEAL_MIN_RECORDS_JSON,
                Format::Parquet(_) => 1,
            };
            if active.records >= min
                && let Err(e) = self.seal(&log)
            {
                tracing::warn!(datastore = %log.name, error = %e, "sealing an idle segment failed");
            }
        }
    }

    fn drop_log(&mut self, kind: Kind, name: &str) -> Result<(), Error> {
        self.files.remove(&(kind, name.to_owned()));
        let removed = self
            .shared
            .logs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(kind, name.to_owned()));
        let dir = removed.map_or_else(
            || self.shared.root.join(kind.dir()).join(name),
            |l| l.dir.clone(),
        );
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Converts sealed segments to Parquet, oldest first, when the store is quiet or the backlog
/// is full; returns when the store is gone.
fn run_compactor(sealed: &mpsc::Receiver<(Arc<Log>, u64)>, clock: &AppendClock, durable: bool) {
    yield_to_ingest();
    let mut waiting = std::collections::VecDeque::new();
    loop {
        let next = if waiting.is_empty() {
            sealed.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            let quiet = clock.quiet_for();
            sealed.recv_timeout(COMPACT_WHEN_QUIET_FOR.saturating_sub(quiet))
        };
        match next {
            Ok(segment) => waiting.push_back(segment),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if clock.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        while !clock.stopping.load(std::sync::atomic::Ordering::Relaxed)
            && (waiting.len() > COMPACT_BACKLOG
                || (!waiting.is_empty() && clock.quiet_for() >= COMPACT_WHEN_QUIET_FOR))
        {
            let Some((log, id)) = waiting.pop_front() else {
                break;
            };
            if let Err(e) = compact(&log, id, durable) {
                tracing::warn!(datastore = %log.name, segment = id, error = %e, "segment compaction failed");
            }
        }
    }
}

/// Converts a sealed segment to Parquet.
fn compact(log: &Arc<Log>, id: u64, durable: bool) -> Result<(), Error> {
    let schema = log.arrow_schema();
    let data = match fs::read(log.jsonl_path(id)) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let batches = decode_jsonl(&data, &schema)?;
    let target = log.parquet_path(id);
    let tmp = target.with_extension("parquet.tmp");
    {
        let file = File::create(&tmp)?;
        let mut writer = ArrowWriter::try_new(file, schema.clone(), None)?;
        for b in &batches {
            writer.write(b)?;
        }
        let file = writer.into_inner()?;
        if durable {
            file.sync_all()?;
        }
    }
    fs::rename(&tmp, &target)?;
    if durable && let Some(parent) = target.parent() {
        sync_dir(parent)?;
    }
    let replaces_jsonl = matches!(log.format, Format::Parquet(_));
    {
        let mut st = log.state();
        if let Some(seg) = st.segments.iter_mut().find(|s| s.id == id) {
            seg.parquet = true;
        }
    }
    if replaces_jsonl {
        fs::remove_file(log.jsonl_path(id))?;
        if durable {
            sync_dir(&log.dir)?;
        }
    }
    tracing::debug!(datastore = %log.name, segment = id, rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>(), "segment converted to Parquet");
    Ok(())
}

enum Col {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
}

impl Col {
    fn new(t: &DataType) -> Col {
        match t {
            DataType::Boolean => Col::Bool(BooleanBuilder::new()),
            DataType::Int64 => Col::Int(Int64Builder::new()),
            DataType::Float64 => Col::Float(Float64Builder::new()),
            _ => Col::Str(StringBuilder::new()),
        }
    }

    fn push(&mut self, v: &Value) {
        match self {
            Col::Bool(b) => b.append_option(match v {
                Value::Bool(x) => Some(*x),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }),
            Col::Int(b) => b.append_option(match v {
                Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }),
            Col::Float(b) => b.append_option(match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }),
            Col::Str(b) => match v {
                Value::Null => b.append_null(),
                Value::String(s) => b.append_value(s),
                other => b.append_value(other.to_string()),
            },
        }
    }

    fn push_null(&mut self) {
        match self {
            Col::Bool(b) => b.append_null(),
            Col::Int(b) => b.append_null(),
            Col::Float(b) => b.append_null(),
            Col::Str(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Int(b) => Arc::new(b.finish()),
            Col::Float(b) => Arc::new(b.finish()),
            Col::Str(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Col::Bool(b) => b.len(),
            Col::Int(b) => b.len(),
            Col::Float(b) => b.len(),
            Col::Str(b) => b.len(),
        }
    }
}

/// Decodes JSON lines into batches of `schema` (attribute names matched case-insensitively).
pub fn decode_jsonl(data: &[u8], schema: &SchemaRef) -> Result<Vec<RecordBatch>, Error> {
    let index: HashMap<String, usize> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().to_ascii_lowercase(), i))
        .collect();
    let mut cols: Vec<Col> = schema
        .fields()
        .iter()
        .map(|f| Col::new(f.data_type()))
        .collect();
    let mut set = vec![false; cols.len()];
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let finish = |cols: &mut Vec<Col>, rows: usize| -> Result<RecordBatch, Error> {
        let arrays: Vec<ArrayRef> = cols.iter_mut().map(Col::finish).collect();
        let options =
            datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            arrays,
            &options,
        )?)
    };
    for line in data.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let obj: serde_json::Map<String, Value> = match serde_json::from_slice(line) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unreadable stored line");
                continue;
            }
        };
        set.fill(false);
        for (k, v) in &obj {
            let idx = if k.bytes().any(|b| b.is_ascii_uppercase()) {
                index.get(&k.to_ascii_lowercase())
            } else {
                index.get(k.as_str())
            };
            if let Some(&i) = idx
                && !set[i]
            {
                cols[i].push(v);
                set[i] = true;
            }
        }
        for (i, was_set) in set.iter().enumerate() {
            if !was_set {
                cols[i].push_null();
            }
        }
        rows += 1;
        if rows == BATCH_ROWS {
            batches.push(finish(&mut cols, rows)?);
            rows = 0;
        }
    }
    if rows > 0 || cols.first().is_some_and(|c| c.len() > 0) {
        batches.push(finish(&mut cols, rows)?);
    }
    Ok(batches)
}

/// Reshapes a batch to `schema`: missing columns become nulls, other types are cast.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, Error> {
    let rows = batch.num_rows();
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let array = match batch.column_by_name(field.name()) {
            Some(col) if col.data_type() == field.data_type() => col.clone(),
            Some(col) => cast(col, field.data_type())?,
            None => new_null_array(field.data_type(), rows),
        };
        arrays.push(array);
    }
    let options =
        datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &options,
    )?)
}

fn read_parquet(path: &Path, schema: &SchemaRef) -> Result<Vec<RecordBatch>, Error> {
    let file = File::open(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(BATCH_ROWS)
        .build()?;
    let mut out = Vec::new();
    for batch in reader {
        out.push(conform(&batch?, schema)?);
    }
    Ok(out)
}

fn read_jsonl_prefix(path: &Path, len: u64) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(len as usize);
    File::open(path)?.take(len).read_to_end(&mut data)?;
    Ok(data)
}

/// Every acknowledged message of a datastore as batches of `schema`.
pub fn read_all(log: &Log, schema: &SchemaRef) -> Result<Vec<RecordBatch>, Error> {
    let segments = log.state().segments.clone();
    let mut out = Vec::new();
    for seg in segments {
        if seg.parquet {
            match read_parquet(&log.parquet_path(seg.id), schema) {
                Ok(batches) => {
                    out.extend(batches);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Parquet copy unreadable, falling back to JSON lines")
                }
            }
        }
        match read_jsonl_prefix(&log.jsonl_path(seg.id), seg.len) {
            Ok(data) => out.extend(decode_jsonl(&data, schema)?),
            // A Parquet datastore's compactor may have just replaced the JSON lines.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.extend(read_parquet(&log.parquet_path(seg.id), schema)?)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Up to `n` of the most recent acknowledged lines of a channel, newest last.
pub fn tail_lines(log: &Log, n: usize) -> Result<Vec<Vec<u8>>, Error> {
    const WINDOW: u64 = 4 << 20;
    let segments = log.state().segments.clone();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for seg in segments.iter().rev() {
        if out.len() >= n {
            break;
        }
        if seg.len == 0 {
            continue;
        }
        let start = seg.len.saturating_sub(WINDOW);
        let mut f = File::open(log.jsonl_path(seg.id))?;
        f.seek(SeekFrom::Start(start))?;
        let mut data = Vec::new();
        f.take(seg.len - start).read_to_end(&mut data)?;
        let mut lines: Vec<&[u8]> = data
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        if start > 0 && !lines.is_empty() {
            lines.remove(0);
        }
        let take = (n - out.len()).min(lines.len());
        let mut chunk: Vec<Vec<u8>> = lines[lines.len() - take..]
            .iter()
            .map(|l| l.to_vec())
            .collect();
        chunk.append(&mut out);
        out = chunk;
    }
    Ok(out)
}

//! Dataset queries on Apache DataFusion: every datastore is a table named after it, read from
//! the backend when a query scans it; the result streams to a CSV file with a header row.
//!
//! A query can never take the service down with it: it runs on its own runtime threads at a
//! lower priority than the request handlers, inside a memory pool (operators that buffer
//! spill or fail), within a time limit, a result size limit and a cap on queries at once, and
//! deleting its dataset or content aborts it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt as _;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

use crate::catalog::DatastoreDef;
use crate::error::Error;
use crate::store::{Backend, arrow, segments};

use super::{Outcome, Started};

/// The bounds every query runs within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Memory the operators of one query may hold (joins, aggregations, sorts).
    pub memory_bytes: usize,
    /// Time from start to the last result row.
    pub time: Duration,
    /// Largest CSV result.
    pub result_bytes: u64,
    /// Queries running at once; later ones wait (their content stays `CREATING`).
    pub concurrent: usize,
}

impl Default for QueryLimits {
    /// 512 MiB, 5 minutes, 256 MiB of CSV, 2 at once.
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            time: Duration::from_secs(300),
            result_bytes: 256 << 20,
            concurrent: 2,
        }
    }
}

/// Runs dataset queries in this process.
pub struct DataFusionEngine {
    limits: QueryLimits,
    runtime: Option<tokio::runtime::Runtime>,
    permits: Arc<Semaphore>,
    running: Arc<Mutex<HashMap<(String, String), AbortHandle>>>,
}

impl Drop for DataFusionEngine {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads, which an async context may not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's priority (nice 10), so a heavy query leaves the cores to the
/// request handlers first.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::debug!(error = %e, "query thread keeps the default priority");
    }
}

impl DataFusionEngine {
    /// An engine with its own two query threads.
    pub fn new(limits: QueryLimits) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("iotanalytics-query")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(Self {
            limits,
            runtime: Some(runtime),
            permits: Arc::new(Semaphore::new(limits.concurrent.max(1))),
            running: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Starts a content's query over `datastores`; the result goes to `scratch` and then to the
    /// backend's results.
    pub fn start(
        &self,
        backend: Arc<Backend>,
        datastores: Vec<DatastoreDef>,
        dataset: &str,
        version: &str,
        sql: String,
        scratch: PathBuf,
    ) -> Started {
        let limits = self.limits;
        let permits = self.permits.clone();
        let (dataset, version) = (dataset.to_owned(), version.to_owned());
        let key = (dataset.clone(), version.clone());
        let out = scratch.join(format!("{version}.csv.partial"));
        let query = {
            let out = out.clone();
            async move {
                let _permit = permits.acquire_owned().await;
                let run = run_to_csv(&sql, &backend, datastores, &out, limits);
                let rows = match tokio::time::timeout(limits.time, run).await {
                    Ok(Ok(rows)) => rows,
                    Ok(Err(e)) => return Err(e.to_string()),
                    Err(_) => {
                        return Err(format!(
                            "The query ran longer than its limit of {} s and was stopped",
                            limits.time.as_secs()
                        ));
                    }
                };
                backend
                    .save_result(&dataset, &version, &out)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(rows)
            }
        };
        let runtime = self.runtime.as_ref().map(|r| r.handle().clone());
        let task = match runtime {
            Some(handle) => handle.spawn(query),
            None => tokio::spawn(query),
        };
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), task.abort_handle());
        let running = self.running.clone();
        // The outcome is awaited on the caller's runtime, so an aborted query still reports.
        Started::Running(tokio::spawn(async move {
            let outcome = match task.await {
                Ok(Ok(rows)) => Outcome::Succeeded {
                    rows: Some(rows),
                    result: None,
                },
                Ok(Err(reason)) => Outcome::Failed { reason },
                Err(e) if e.is_cancelled() => Outcome::Failed {
                    reason: "The query was cancelled".into(),
                },
                Err(e) => Outcome::Failed {
                    reason: format!("The query failed: {e}"),
                },
            };
            running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            if !matches!(outcome, Outcome::Succeeded { .. }) {
                let _ = std::fs::remove_file(&out);
            }
            outcome
        }))
    }

    /// Aborts a content's query if it is running.
    pub fn cancel(&self, dataset: &str, version: &str) {
        let key = (dataset.to_owned(), version.to_owned());
        if let Some(task) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key)
        {
            task.abort();
            tracing::info!(dataset, version, "dataset content query cancelled");
        }
    }

    /// Contents whose queries are running now (for tests and logs).
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A datastore seen as a table; its rows are loaded when a query scans it.
struct DatastoreTable {
    backend: Arc<Backend>,
    name: String,
    schema: SchemaRef,
}

impl std::fmt::Debug for DatastoreTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatastoreTable")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The Arrow schema of a datastore as its backend knows it.
async fn datastore_schema(backend: &Backend, def: &DatastoreDef) -> Result<SchemaRef, Error> {
    if let Some(columns) = def.defined_columns() {
        return Ok(arrow::arrow_schema(&columns));
    }
    Ok(match backend {
        Backend::Fs(fs) => fs
            .datastore_log(&def.name)
            .map_or_else(|| arrow::arrow_schema(&[]), |log| log.arrow_schema()),
        Backend::S3(s3) => arrow::arrow_schema(&s3.schema(&def.name).await?),
    })
}

async fn read_datastore(
    backend: &Backend,
    name: &str,
    schema: SchemaRef,
) -> Result<Vec<RecordBatch>, Error> {
    match backend {
        Backend::Fs(fs) => {
            let Some(log) = fs.datastore_log(name) else {
                return Ok(Vec::new());
            };
            tokio::task::spawn_blocking(move || segments::read_all(&log, &schema))
                .await
                .map_err(|e| Error::InternalFailure(e.to_string()))?
        }
        Backend::S3(s3) => s3.read_datastore(name, schema).await,
    }
}

#[async_trait]
impl TableProvider for DatastoreTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // Only the columns the query reads are decoded.
        let schema = match projection {
            Some(columns) => Arc::new(self.schema.project(columns)?),
            None => self.schema.clone(),
        };
        let batches = read_datastore(&self.backend, &self.name, schema.clone())
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // Two partitions let both cores work on the aggregation.
        let partitions = state.config().target_partitions().max(1);
        let mut parts: Vec<Vec<_>> = vec![Vec::new(); partitions];
        for (i, b) in batches.into_iter().enumerate() {
            parts[i % partitions].push(b);
        }
        let table = MemTable::try_new(schema, parts)?;
        table.scan(state, None, filters, limit).await
    }
}

/// Runs a read-only SQL query over the given datastores and streams the CSV result to `out`.
/// Returns the number of data rows.
async fn run_to_csv(
    sql: &str,
    backend: &Arc<Backend>,
    datastores: Vec<DatastoreDef>,
    out: &Path,
    limits: QueryLimits,
) -> Result<usize, Error> {
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(false);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    for def in datastores {
        let schema = datastore_schema(backend, &def).await?;
        // Unquoted identifiers are lower-cased by the SQL parser, so tables are registered
        // lower-cased too; Presto treated table names case-insensitively as well.
        let table = DatastoreTable {
            backend: backend.clone(),
            name: def.name.clone(),
            schema,
        };
        ctx.register_table(def.name.to_ascii_lowercase().as_str(), Arc::new(table))?;
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut stream = df.execute_stream().await?;
    let file = std::fs::File::create(out)?;
    let written = Arc::new(AtomicU64::new(0));
    let mut writer = WriterBuilder::new()
        .with_header(true)
        .build(CountingWriter {
            inner: std::io::BufWriter::new(file),
            written: written.clone(),
        });
    let mut rows = 0;
    let mut wrote_any = false;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch)?;
        wrote_any = true;
        if written.load(Ordering::Relaxed) > limits.result_bytes {
            return Err(Error::InvalidRequest(format!(
                "The query result exceeds its limit of {} bytes",
                limits.result_bytes
            )));
        }
    }
    if !wrote_any {
        // A header row even for an empty result.
        writer.write(&RecordBatch::new_empty(schema))?;
    }
    let counting = writer.into_inner();
    let file = counting
        .inner
        .into_inner()
        .map_err(|e| Error::Io(e.into_error()))?;
    file.sync_all()?;
    Ok(rows)
}

/// Counts the bytes of a CSV result as it is written.
struct CountingWriter<W> {
    inner: W,
    written: Arc<AtomicU64>,
}

impl<W: std::io::Write> std::io::Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

//! Dataset queries: every datastore is a DataFusion table named after it, read from storage
//! when a query scans it, and results are written as CSV with a header row.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::error::Error;
use crate::storage::{self, Log};

/// A datastore seen as a table; its rows are loaded when a query scans it.
#[derive(Debug)]
struct DatastoreTable {
    log: Arc<Log>,
    schema: SchemaRef,
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
        let log = self.log.clone();
        let schema = self.schema.clone();
        let batches = tokio::task::spawn_blocking(move || storage::read_all(&log, &schema))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // Two partitions let both cores work on the aggregation.
        let partitions = state.config().target_partitions().max(1);
        let mut parts: Vec<Vec<_>> = vec![Vec::new(); partitions];
        for (i, b) in batches.into_iter().enumerate() {
            parts[i % partitions].push(b);
        }
        let table = MemTable::try_new(self.schema.clone(), parts)?;
        table.scan(state, projection, filters, limit).await
    }
}

/// Runs a read-only SQL query over the given datastores and writes the CSV result to `out`.
/// Returns the number of data rows.
pub async fn run_to_csv(sql: &str, datastores: Vec<Arc<Log>>, out: &Path) -> Result<usize, Error> {
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(false);
    let ctx = SessionContext::new_with_config(config);
    for log in datastores {
        let schema = log.arrow_schema();
        // Unquoted identifiers are lower-cased by the SQL parser, so tables are registered
        // lower-cased too; Presto treated table names case-insensitively as well.
        let name = log.name.to_ascii_lowercase();
        ctx.register_table(name.as_str(), Arc::new(DatastoreTable { log, schema }))?;
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    let out = out.to_owned();
    tokio::task::spawn_blocking(move || -> Result<usize, Error> {
        let tmp = out.with_extension("csv.tmp");
        let file = std::fs::File::create(&tmp)?;
        let mut writer = WriterBuilder::new().with_header(true).build(file);
        let mut rows = 0;
        if batches.is_empty() {
            writer.write(&datafusion::arrow::record_batch::RecordBatch::new_empty(
                schema,
            ))?;
        }
        for b in &batches {
            rows += b.num_rows();
            writer.write(b)?;
        }
        let file = writer.into_inner();
        file.sync_all()?;
        std::fs::rename(&tmp, &out)?;
        Ok(rows)
    })
    .await
    .map_err(|e| Error::InternalFailure(format!("query result writer panicked: {e}")))?
}

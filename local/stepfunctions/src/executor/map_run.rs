//! A Distributed Map's Map Run: its record (items read from S3 or the input, batched, labelled),
//! the failure tolerance, and the child execution that runs each item.

use super::batching::batches;
use super::map::{item_inputs, items_from_path, resolve_number};
use super::run::Run;
use super::{Engine, Outcome, StartMode, now};
use crate::dataflow::render;
use crate::definition::{MapSpec, State};
use crate::error::StatesError;
use crate::store::{
    ExecEntry, ExecutionStatus, ItemStatus, MapItem, MapRunEntry, MapRunRecord, MapRunStatus,
};
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// ToleratedFailureCount and ToleratedFailurePercentage, resolved.
pub(super) struct Tolerance {
    pub(super) count: Option<f64>,
    pub(super) percentage: Option<f64>,
}

impl Tolerance {
    /// Whether more items failed (or timed out) than tolerated; with neither limit set, one
    /// failure is too many.
    pub(super) fn exceeded(&self, m: &MapRunRecord) -> bool {
        let c = m.counts();
        let failed = c.failed + c.timed_out;
        if failed == 0 {
            return false;
        }
        match (self.count, self.percentage) {
            (None, None) => true,
            (count, pct) => {
                count.is_some_and(|n| failed as f64 > n)
                    || pct.is_some_and(|p| (failed as f64) * 100.0 / (c.total.max(1) as f64) > p)
            }
        }
    }
}

/// Records how an item's child execution ended.
pub(super) fn settle(item: &mut MapItem, outcome: Outcome) {
    if !matches!(outcome, Outcome::Interrupted) {
        item.stop_date = Some(now());
    }
    match outcome {
        Outcome::Succeeded(v) => {
            item.status = ItemStatus::Succeeded;
            item.output = Some(v);
            item.error = None;
        }
        Outcome::Failed(e) => {
            item.status = ItemStatus::Failed;
            item.error = Some(e);
        }
        Outcome::TimedOut => {
            item.status = ItemStatus::TimedOut;
            item.error = Some(StatesError::new(
                "States.Timeout",
                "The child execution timed out",
            ));
        }
        Outcome::Aborted => {
            item.status = ItemStatus::Aborted;
        }
        Outcome::Interrupted => {}
    }
}

impl Run {
    /// The unfinished Map Run this state left behind, when the execution resumes or redrives
    /// from it.
    pub(super) fn open_map_run(
        &self,
        state: &State,
        mode: Option<StartMode>,
    ) -> Option<Arc<MapRunEntry>> {
        if !matches!(mode, Some(StartMode::Resume | StartMode::Redrive)) {
            return None;
        }
        let open = self.entry.lock().open_map_run.clone();
        open.and_then(|arn| self.engine.store.map_run(&arn))
            .filter(|m| {
                let m = m.lock();
                m.state_name == state.name && m.status != MapRunStatus::Succeeded
            })
    }

    /// Reads the items, makes their inputs (batched if ItemBatcher says so) and records a new
    /// Map Run with every item pending.
    pub(super) async fn new_map_run(
        &self,
        state: &State,
        spec: &MapSpec,
        effective: &Value,
        context: &Value,
        max_concurrency: u32,
        tolerance: &Tolerance,
    ) -> Result<Arc<MapRunEntry>, StatesError> {
        let engine = &self.engine;
        let items = self.read_items(spec, effective, context).await?;
        tracing::debug!(state = %state.name, items = items.len(), "map run items read");
        let inputs = item_inputs(spec, effective, context, &items)?;
        let batches = batches(spec, effective, context, inputs)?;
        // Without a Label, AWS names the Map Run with a generated UUID, not the state's name.
        let label = spec
            .label
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let arn = engine.arn(
            "mapRun",
            &format!("{}/{label}:{}", self.sm_name, uuid::Uuid::new_v4()),
        );
        Ok(engine.store.insert_map_run(MapRunRecord {
            arn,
            execution_arn: self.entry.lock().arn.clone(),
            state_name: state.name.clone(),
            status: MapRunStatus::Running,
            start_date: now(),
            stop_date: None,
            max_concurrency,
            tolerated_failure_percentage: tolerance.percentage.unwrap_or(0.0),
            tolerated_failure_count: tolerance.count.unwrap_or(0.0) as u64,
            redrive_count: 0,
            redrive_date: None,
            items: batches
                .into_iter()
                .map(|batch| MapItem {
                    input: batch.input,
                    status: ItemStatus::Pending,
                    execution_arn: None,
                    output: None,
                    error: None,
                    item_count: batch.items,
                    start_date: None,
                    stop_date: None,
                })
                .collect(),
        }))
    }

    /// The items: the JSON array ItemReader names in S3 (up to MaxItems), else ItemsPath.
    async fn read_items(
        &self,
        spec: &MapSpec,
        effective: &Value,
        context: &Value,
    ) -> Result<Vec<Value>, StatesError> {
        let Some(reader) = &spec.item_reader else {
            return items_from_path(spec, effective, context);
        };
        let params = render(
            &reader.parameters,
            effective,
            context,
            "ItemReader.Parameters",
        )?;
        let (Some(bucket), Some(key)) = (
            params.get("Bucket").and_then(Value::as_str),
            params.get("Key").and_then(Value::as_str),
        ) else {
            return Err(StatesError::runtime(
                "ItemReader.Parameters Bucket and Key must be strings",
            ));
        };
        let bytes = self
            .engine
            .resources
            .get_object(bucket, key)
            .await
            .map_err(|e| {
                StatesError::new(
                    "States.ItemReaderFailed",
                    format!(
                        "Unable to read s3://{bucket}/{key}: {}: {}",
                        e.code, e.message
                    ),
                )
            })?;
        let items: Value = serde_json::from_slice(&bytes).map_err(|e| {
            StatesError::new(
                "States.ItemReaderFailed",
                format!("s3://{bucket}/{key} is not JSON: {e}"),
            )
        })?;
        let Value::Array(mut items) = items else {
            return Err(StatesError::new(
                "States.ItemReaderFailed",
                format!("s3://{bucket}/{key} does not hold a JSON array"),
            ));
        };
        if let Some(max) =
            resolve_number(reader.max_items.as_ref(), effective, context, "MaxItems")?
        {
            items.truncate(max as usize);
        }
        Ok(items)
    }

    /// Marks the Map Run running (counting a redrive) and returns its ARN and item count.
    pub(super) fn start_map_run(
        &self,
        run_entry: &MapRunEntry,
        redriving: bool,
    ) -> (String, usize) {
        let started = {
            let mut m = run_entry.lock();
            m.status = MapRunStatus::Running;
            m.stop_date = None;
            if redriving {
                m.redrive_count += 1;
                m.redrive_date = Some(now());
            }
            (m.arn.clone(), m.items.len())
        };
        run_entry.touch();
        started
    }

    /// The items still to run, in order. When redriving, the unsuccessful items start over as
    /// pending (they keep their child execution, which is redriven), so the failure threshold
    /// counts only this attempt.
    pub(super) fn items_to_run(&self, run_entry: &MapRunEntry, redriving: bool) -> Vec<usize> {
        let engine = &self.engine;
        let mut m = run_entry.lock();
        if redriving {
            for item in m.items.iter_mut() {
                if matches!(
                    item.status,
                    ItemStatus::Failed | ItemStatus::TimedOut | ItemStatus::Aborted
                ) {
                    item.status = ItemStatus::Pending;
                    item.error = None;
                    // Its child waits for its turn to be redriven, as AWS shows it.
                    if let Some(child) = item
                        .execution_arn
                        .as_deref()
                        .and_then(|a| engine.store.execution(a))
                    {
                        let mut c = child.lock();
                        if c.status.is_final() && c.status != ExecutionStatus::Succeeded {
                            c.status = ExecutionStatus::PendingRedrive;
                            drop(c);
                            child.status.send_replace(ExecutionStatus::PendingRedrive);
                            child.touch();
                        }
                    }
                }
            }
        }
        m.items
            .iter()
            .enumerate()
            .filter(|(_, item)| match item.status {
                ItemStatus::Pending | ItemStatus::Running => true,
                ItemStatus::Succeeded => false,
                ItemStatus::Failed | ItemStatus::TimedOut | ItemStatus::Aborted => false,
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Records the Map Run's final status and writes it.
    pub(super) fn close_map_run(&self, entry: &MapRunEntry, status: MapRunStatus) {
        {
            let mut m = entry.lock();
            m.status = status;
            m.stop_date = Some(now());
        }
        self.engine.store.flush_map_run(entry);
    }

    /// Starts (or redrives, or resumes) the child execution of one Map Run item.
    pub(super) fn spawn_item(
        &self,
        run_entry: &Arc<MapRunEntry>,
        index: usize,
        spec: &MapSpec,
        map_cancel: &CancellationToken,
        redriving: bool,
    ) -> tokio::task::JoinHandle<(usize, Outcome)> {
        let engine = self.engine.clone();
        let (item, map_run_arn, label) = {
            let m = run_entry.lock();
            let label = m
                .arn
                .rsplit_once(':')
                .map(|(head, _)| head.rsplit('/').next().unwrap_or("map").to_string())
                .unwrap_or_else(|| "map".into());
            (m.items[index].clone(), m.arn.clone(), label)
        };
        // An Express child is never stored: a resumed or redriven item starts a new one (AWS
        // runs Express children at least once and cannot redrive them).
        let existing = item
            .execution_arn
            .as_deref()
            .filter(|_| !spec.express)
            .and_then(|a| engine.store.execution(a));
        let (child, mode) = match existing {
            Some(child) => {
                let status = child.lock().status;
                if status == ExecutionStatus::Running {
                    (child, StartMode::Resume)
                } else if (redriving || status == ExecutionStatus::PendingRedrive)
                    && status != ExecutionStatus::Succeeded
                {
                    Engine::mark_redriven(&child);
                    (child, StartMode::Redrive)
                } else {
                    (child, StartMode::Fresh)
                }
            }
            None => {
                let name = uuid::Uuid::new_v4().to_string();
                let arn = if spec.express {
                    engine.arn(
                        "express",
                        &format!("{}/{label}:{name}:{}", self.sm_name, uuid::Uuid::new_v4()),
                    )
                } else {
                    engine.arn("execution", &format!("{}/{label}:{name}", self.sm_name))
                };
                let role = self.entry.lock().role_arn.clone();
                let mut record = engine.new_record(
                    arn,
                    format!("{}/{label}", self.sm_arn),
                    format!("{}/{label}", self.sm_name),
                    name,
                    item.input.clone(),
                    role,
                    spec.processor_json.to_string(),
                    Some(map_run_arn),
                );
                let entry = if spec.express {
                    record.express = true;
                    record.events.clear();
                    ExecEntry::new(record)
                } else {
                    let entry = ExecEntry::new(record);
                    engine.store.insert_execution(entry.clone());
                    entry
                };
                (entry, StartMode::Fresh)
            }
        };
        {
            let mut m = run_entry.lock();
            m.items[index].status = ItemStatus::Running;
            m.items[index].start_date = Some(now());
            m.items[index].stop_date = None;
            m.items[index].execution_arn = Some(child.lock().arn.clone());
        }
        run_entry.touch();
        let machine = spec.processor.clone();
        let cancel = map_cancel.child_token();
        tokio::spawn(async move {
            let outcome = engine.run_execution(child, machine, mode, cancel).await;
            (index, outcome)
        })
    }
}

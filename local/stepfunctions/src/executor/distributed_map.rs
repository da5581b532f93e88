//! The DISTRIBUTED Map state: its items run as child executions of a Map Run, at most
//! MaxConcurrency at a time, until they are done or more fail than ToleratedFailureCount or
//! ToleratedFailurePercentage allow. Redriving the parent redrives the Map Run: only the items
//! that did not succeed run again. The Map Run record and its children are in `map_run`.

use super::map::resolve_number;
use super::map_run::{Tolerance, settle};
use super::run::Run;
use super::{Outcome, StartMode};
use crate::definition::{MapSpec, State};
use crate::error::StatesError;
use crate::store::{MapRunEntry, MapRunStatus};
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;

impl Run {
    /// Runs (or continues, or redrives) the Map Run of this state and returns every item's
    /// output (or error output) in item order.
    pub(super) async fn distributed_map(
        &self,
        state: &State,
        spec: &MapSpec,
        effective: &Value,
        context: &Value,
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<Value, StatesError> {
        let max_concurrency = resolve_number(
            spec.max_concurrency.as_ref(),
            effective,
            context,
            "MaxConcurrency",
        )?
        .unwrap_or(0.0) as u32;
        let tolerance = Tolerance {
            percentage: resolve_number(
                spec.tolerated_percentage.as_ref(),
                effective,
                context,
                "ToleratedFailurePercentage",
            )?,
            count: resolve_number(
                spec.tolerated_count.as_ref(),
                effective,
                context,
                "ToleratedFailureCount",
            )?,
        };
        // Reuse the Map Run this state left behind when resuming or redriving from it.
        let reused = if top {
            self.open_map_run(state, mode)
        } else {
            None
        };
        let redriving = reused.is_some() && mode == Some(StartMode::Redrive);
        // A Map Run continued after a restart already has its MapRunStarted event.
        let continued = reused.is_some() && mode == Some(StartMode::Resume);
        let run_entry: Arc<MapRunEntry> = match reused {
            Some(entry) => entry,
            None => {
                self.new_map_run(state, spec, effective, context, max_concurrency, &tolerance)
                    .await?
            }
        };
        let (map_run_arn, total) = self.start_map_run(&run_entry, redriving);
        if top {
            self.entry.lock().open_map_run = Some(map_run_arn.clone());
        }
        self.event(
            "MapStateStarted",
            Some(("mapStateStartedEventDetails", json!({"length": total}))),
        )?;
        if redriving {
            let count = run_entry.lock().redrive_count;
            self.event(
                "MapRunRedriven",
                Some((
                    "mapRunRedrivenEventDetails",
                    json!({"mapRunArn": map_run_arn, "redriveCount": count}),
                )),
            )?;
        } else if !continued {
            self.event(
                "MapRunStarted",
                Some((
                    "mapRunStartedEventDetails",
                    json!({"mapRunArn": map_run_arn}),
                )),
            )?;
        }
        self.engine.store.flush_map_run(&run_entry);
        tracing::debug!(map_run = %map_run_arn, items = total, "map run started");

        let to_run = self.items_to_run(&run_entry, redriving);
        let map_cancel = self.cancel.child_token();
        let limit = if max_concurrency == 0 {
            usize::MAX
        } else {
            max_concurrency as usize
        };
        let mut queue = to_run.into_iter();
        let mut running = FuturesUnordered::new();
        let mut over_threshold = tolerance.exceeded(&run_entry.lock());
        loop {
            while running.len() < limit && !over_threshold && !map_cancel.is_cancelled() {
                let Some(i) = queue.next() else { break };
                running.push(self.spawn_item(&run_entry, i, spec, &map_cancel, redriving));
            }
            let Some(joined) = running.next().await else {
                break;
            };
            let (i, outcome): (usize, Outcome) = match joined {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(error = %e, "a map run child task panicked");
                    continue;
                }
            };
            {
                let mut m = run_entry.lock();
                settle(&mut m.items[i], outcome);
                if !over_threshold && tolerance.exceeded(&m) {
                    over_threshold = true;
                    // Stop the children still running: the Map Run has failed.
                    map_cancel.cancel();
                }
            }
            run_entry.touch();
        }
        if self.cancel.is_cancelled() && !over_threshold {
            self.close_map_run(&run_entry, MapRunStatus::Aborted);
            let _ = self.event("MapRunAborted", None);
            return Err(StatesError::new(
                "States.Aborted",
                "The execution was stopped",
            ));
        }
        // A ResultWriter exports the results of a failed Map Run too.
        let written = match &spec.result_writer {
            Some(_) => Some(
                self.write_results(spec, &run_entry, effective, context)
                    .await,
            ),
            None => None,
        };
        let failure = if over_threshold {
            Some(StatesError::new(
                "States.ExceedToleratedFailureThreshold",
                "The specified tolerated failure threshold was exceeded",
            ))
        } else {
            written.as_ref().and_then(|w| w.as_ref().err().cloned())
        };
        if let Some(error) = failure {
            self.close_map_run(&run_entry, MapRunStatus::Failed);
            let _ = self.event(
                "MapRunFailed",
                Some(("mapRunFailedEventDetails", error.details().into())),
            );
            // MapStateFailed is recorded by the retry loop, once no retry follows.
            return Err(error);
        }
        self.close_map_run(&run_entry, MapRunStatus::Succeeded);
        self.event("MapRunSucceeded", None)?;
        self.event("MapStateSucceeded", None)?;
        if let Some(Ok(details)) = written {
            return Ok(details);
        }
        let m = run_entry.lock();
        Ok(Value::Array(
            m.items
                .iter()
                .map(|item| match (&item.output, &item.error) {
                    (Some(v), _) => v.clone(),
                    (None, Some(e)) => e.to_output(),
                    (None, None) => Value::Null,
                })
                .collect(),
        ))
    }
}

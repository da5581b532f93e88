//! One execution from its start to its final status: the state machine's timeout, StopExecution,
//! a panic in the host's Resources and the host's shutdown each end it in their own way.

use super::history::push_event;
use super::run::Run;
use super::{Engine, Outcome, StartMode, iso, now};
use crate::definition::Machine;
use crate::error::StatesError;
use crate::store::{ExecEntry, ExecutionStatus, ItemStatus, MapRunStatus, lock};
use futures::FutureExt as _;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest an Express execution runs (five minutes), as on AWS.
const EXPRESS_MAX_DURATION: Duration = Duration::from_secs(300);

impl Engine {
    /// Runs an execution to its end and records the outcome.
    pub(crate) async fn run_execution(
        self: Arc<Self>,
        entry: Arc<ExecEntry>,
        machine: Arc<Machine>,
        mode: StartMode,
        cancel: CancellationToken,
    ) -> Outcome {
        *lock(&entry.cancel) = cancel.clone();
        let (start_state, input, vars, base_context, sm_arn, sm_name) = {
            let r = entry.lock();
            // A resume or redrive starts with the variables the checkpoint state saw.
            let (state, input, vars) = match (&r.checkpoint, mode) {
                (Some(c), StartMode::Resume | StartMode::Redrive) => {
                    (c.state.clone(), c.input.clone(), c.variables.clone())
                }
                _ => (
                    machine.start_at.clone(),
                    r.input.clone(),
                    Default::default(),
                ),
            };
            let mut execution = json!({
                "Id": r.arn,
                "Input": r.input,
                "Name": r.name,
                "RoleArn": r.role_arn,
                "StartTime": iso(r.start_date),
                "RedriveCount": r.redrive_count,
            });
            if let Some(d) = r.redrive_date {
                execution["RedriveTime"] = Value::String(iso(d));
            }
            let context = json!({
                "Execution": execution,
                "StateMachine": {"Id": r.state_machine_arn, "Name": r.state_machine_name},
            });
            (
                state,
                input,
                vars,
                context,
                r.state_machine_arn.clone(),
                r.state_machine_name.clone(),
            )
        };
        let run = Run {
            engine: self.clone(),
            entry: entry.clone(),
            cancel: cancel.clone(),
            base_context,
            sm_arn,
            sm_name,
            mode: Mutex::new(Some(mode)),
        };
        let mut timeout = machine
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let express = entry.lock().express;
        if express {
            // An Express execution runs for at most five minutes.
            timeout = timeout.min(EXPRESS_MAX_DURATION);
        }
        let outcome = tokio::select! {
            // A panic in a host's Resources must fail this execution, not leave it RUNNING.
            result = std::panic::AssertUnwindSafe(run.run_states(&machine, start_state, input, true, vars)).catch_unwind() => match result {
                Ok(Ok(output)) => Outcome::Succeeded(output),
                Ok(Err(error)) => Outcome::Failed(error),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(%message, "an execution panicked");
                    Outcome::Failed(StatesError::runtime(format!("Internal error in the local executor: {message}")))
                }
            },
            _ = cancel.cancelled() => Outcome::Aborted,
            _ = tokio::time::sleep(timeout) => Outcome::TimedOut,
            _ = self.shutdown.cancelled() => Outcome::Interrupted,
        };
        if matches!(outcome, Outcome::Interrupted) {
            if !express {
                self.store.flush_execution(&entry);
            }
            return outcome;
        }
        // Children of a Map Run in flight must stop with their parent, and the Map Run with them.
        cancel.cancel();
        if matches!(outcome, Outcome::Aborted | Outcome::TimedOut) {
            let open = entry.lock().open_map_run.clone();
            if let Some(map_run) = open.and_then(|arn| self.store.map_run(&arn)) {
                {
                    let mut m = map_run.lock();
                    if m.status == MapRunStatus::Running {
                        let mut r = entry.lock();
                        push_event(&mut r, "MapRunAborted", None);
                        drop(r);
                        m.status = MapRunStatus::Aborted;
                        m.stop_date = Some(now());
                        for item in m
                            .items
                            .iter_mut()
                            .filter(|i| i.status == ItemStatus::Running)
                        {
                            item.status = ItemStatus::Aborted;
                        }
                    }
                }
                self.store.flush_map_run(&map_run);
            }
        }
        self.finish(&entry, &outcome);
        outcome
    }

    /// Records how the execution ended: its status, output or error and the closing event.
    fn finish(&self, entry: &ExecEntry, outcome: &Outcome) {
        let mut r = entry.lock();
        r.stop_date = Some(now());
        let status = match outcome {
            Outcome::Succeeded(output) => {
                r.output = Some(output.clone());
                r.checkpoint = None;
                push_event(
                    &mut r,
                    "ExecutionSucceeded",
                    Some((
                        "executionSucceededEventDetails",
                        json!({"output": output.to_string(), "outputDetails": {"truncated": false}}),
                    )),
                );
                ExecutionStatus::Succeeded
            }
            Outcome::Failed(error) => {
                r.error = Some(error.clone());
                push_event(
                    &mut r,
                    "ExecutionFailed",
                    Some(("executionFailedEventDetails", error.details().into())),
                );
                ExecutionStatus::Failed
            }
            Outcome::TimedOut => {
                let error = StatesError::new(
                    "States.Timeout",
                    "The execution exceeded the state machine's TimeoutSeconds",
                );
                r.error = Some(error.clone());
                push_event(
                    &mut r,
                    "ExecutionTimedOut",
                    Some(("executionTimedOutEventDetails", error.details().into())),
                );
                ExecutionStatus::TimedOut
            }
            Outcome::Interrupted => return,
            Outcome::Aborted => {
                let details = r
                    .error
                    .as_ref()
                    .map(|e| ("executionAbortedEventDetails", e.details().into()));
                push_event(&mut r, "ExecutionAborted", details);
                ExecutionStatus::Aborted
            }
        };
        r.status = status;
        tracing::info!(execution = %r.arn, status = status.as_str(), "execution stopped");
        let express = r.express;
        drop(r);
        if !express {
            self.store.flush_execution(entry);
        }
        entry.status.send_replace(status);
    }
}

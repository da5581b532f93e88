//! The interpreter: the [`Engine`] the API server and the in-process handle share, and the
//! modules that run executions state by state, one module per state type and per concern.

mod assign;
mod batching;
mod choice;
mod distributed_map;
mod execution;
mod express;
mod history;
mod integrations;
mod iterations;
mod lifecycle;
mod map;
mod map_run;
mod parallel;
mod result_writer;
mod retry;
mod run;
mod succeed_fail;
mod task;
mod wait;

use crate::definition::{Definition, Machine, parse_processor};
use crate::error::{Error, StatesError};
use crate::resources::Resources;
use crate::store::{ExecutionRecord, Store};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The largest state input or output Step Functions accepts (256 KiB).
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// How an execution (re)starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartMode {
    /// A new execution.
    Fresh,
    /// Continuing after a restart of the host.
    Resume,
    /// RedriveExecution.
    Redrive,
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Succeeded(Value),
    Failed(StatesError),
    TimedOut,
    Aborted,
    /// The host shut down: the execution stays RUNNING on disk and resumes at the next start.
    Interrupted,
}

/// The executor shared by the API server and the in-process handle.
pub(crate) struct Engine {
    pub region: String,
    pub account_id: String,
    pub time_scale: f64,
    pub resources: Arc<dyn Resources>,
    pub store: Arc<Store>,
    /// Cancelled when the host shuts down: executions stop where they are, still RUNNING.
    pub shutdown: CancellationToken,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether a value is over the 256 KiB Step Functions accepts for inputs and outputs.
fn exceeds_payload_limit(value: &Value) -> bool {
    value.to_string().len() > MAX_PAYLOAD_BYTES
}

/// Fails with States.DataLimitExceeded (and the message `describe` gives) when `value` is over
/// the payload limit.
fn check_payload(value: &Value, describe: impl FnOnce() -> String) -> Result<(), StatesError> {
    if exceeds_payload_limit(value) {
        return Err(StatesError::new("States.DataLimitExceeded", describe()));
    }
    Ok(())
}

impl Engine {
    /// `arn:aws:states:REGION:ACCOUNT:KIND:REST`, the form of every ARN this engine hands out.
    fn arn(&self, kind: &str, rest: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:{kind}:{rest}",
            self.region, self.account_id
        )
    }

    /// The ARN a state machine of this name has.
    pub fn state_machine_arn(&self, name: &str) -> String {
        self.arn("stateMachine", name)
    }

    /// Waits `seconds` of state machine time (scaled by `time_scale`), or until `cancel`.
    async fn sleep(&self, seconds: f64, cancel: &CancellationToken) {
        let scaled = (seconds * self.time_scale).max(0.0);
        if scaled > 0.0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(scaled.min(1e9))) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }
}

/// Parses the definition a stored execution runs.
pub(crate) fn machine_of(record: &ExecutionRecord) -> Result<Arc<Machine>, Error> {
    if record.is_processor {
        let json: Value = serde_json::from_str(&record.definition)?;
        parse_processor(&json)
    } else {
        Ok(Definition::parse(&record.definition)?.machine)
    }
}

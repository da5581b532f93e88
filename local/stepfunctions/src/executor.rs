//! The interpreter: runs executions state by state, records their history as Step Functions
//! does, retries and catches errors, runs Map (inline and distributed) and Parallel states,
//! and implements StartExecution, StopExecution and RedriveExecution.

use crate::dataflow::{apply_result_path, evaluate, render, select_path};
use crate::definition::{
    Definition, Kind, Machine, MapSpec, NumberOr, Resource, State, WaitFor, parse_processor,
    parse_timestamp,
};
use crate::error::{Error, StatesError};
use crate::resources::{LambdaError, Resources};
use crate::store::{
    Checkpoint, ExecEntry, ExecutionRecord, ExecutionStatus, HistoryEvent, ItemStatus, Iterations,
    MAX_HISTORY_EVENTS, MapItem, MapRunEntry, MapRunRecord, MapRunStatus, StateMachineRecord,
    Store,
};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
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

/// Validates an execution or state machine name as the API does.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let bad = name.is_empty()
        || name.chars().count() > 80
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c));
    if bad {
        return Err(Error::InvalidName(format!(
            "{name:?}: names are 1 to 80 characters without whitespace, brackets, wildcards or punctuation such as : / ,"
        )));
    }
    Ok(())
}

impl Engine {
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

    /// Creates (or, when `update` is set, replaces) a state machine.
    pub fn put_state_machine(
        &self,
        name: &str,
        definition: &Definition,
        role_arn: &str,
        update: bool,
    ) -> Result<StateMachineRecord, Error> {
        check_name(name)?;
        let arn = self.state_machine_arn(name);
        let mut machines = self
            .store
            .state_machines
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = machines.get(&arn) {
            if existing.definition == definition.text() && existing.role_arn == role_arn {
                return Ok(existing.clone());
            }
            if !update {
                return Err(Error::StateMachineAlreadyExists(arn));
            }
        }
        let record = StateMachineRecord {
            arn: arn.clone(),
            name: name.to_string(),
            definition: definition.text().to_string(),
            role_arn: role_arn.to_string(),
            creation_date: machines
                .get(&arn)
                .map(|m| m.creation_date)
                .unwrap_or_else(now),
        };
        self.store.save_state_machine(&record)?;
        machines.insert(arn, record.clone());
        Ok(record)
    }

    /// Starts an execution of a registered state machine.
    pub fn start_execution(
        self: &Arc<Self>,
        state_machine_arn: &str,
        name: Option<&str>,
        input: Value,
    ) -> Result<ExecutionRecord, Error> {
        let machine_record = self
            .store
            .state_machines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(state_machine_arn)
            .cloned()
            .ok_or_else(|| Error::StateMachineDoesNotExist(state_machine_arn.to_string()))?;
        let definition = Definition::parse(&machine_record.definition)?;
        let name = match name {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let arn = self.arn("execution", &format!("{}:{name}", machine_record.name));
        if let Some(existing) = self.store.execution(&arn) {
            let r = existing.lock();
            // As AWS: the same name and input while running is idempotent, anything else is a conflict.
            if r.status == ExecutionStatus::Running && r.input == input {
                return Ok(r.clone());
            }
            return Err(Error::ExecutionAlreadyExists(arn));
        }
        if input.to_string().len() > MAX_PAYLOAD_BYTES {
            return Err(Error::InvalidExecutionInput(
                "the input is larger than 256 KiB".into(),
            ));
        }
        let record = self.new_record(
            arn,
            machine_record.arn.clone(),
            machine_record.name.clone(),
            name,
            input,
            machine_record.role_arn.clone(),
            machine_record.definition.clone(),
            None,
        );
        let entry = ExecEntry::new(record.clone());
        self.store.insert_execution(entry.clone());
        tracing::info!(execution = %record.arn, "execution started");
        let engine = self.clone();
        tokio::spawn(async move {
            engine
                .run_execution(
                    entry,
                    definition.machine,
                    StartMode::Fresh,
                    CancellationToken::new(),
                )
                .await;
        });
        Ok(record)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_record(
        &self,
        arn: String,
        state_machine_arn: String,
        state_machine_name: String,
        name: String,
        input: Value,
        role_arn: String,
        definition: String,
        map_run_arn: Option<String>,
    ) -> ExecutionRecord {
        let start = now();
        let is_processor = map_run_arn.is_some();
        ExecutionRecord {
            events: vec![HistoryEvent {
                id: 1,
                previous_event_id: 0,
                timestamp: start,
                kind: "ExecutionStarted".into(),
                details: Some((
                    "executionStartedEventDetails".into(),
                    json!({"input": input.to_string(), "inputDetails": {"truncated": false}, "roleArn": role_arn}),
                )),
            }],
            arn,
            state_machine_arn,
            state_machine_name,
            name,
            status: ExecutionStatus::Running,
            input,
            output: None,
            error: None,
            start_date: start,
            stop_date: None,
            redrive_count: 0,
            redrive_date: None,
            role_arn,
            definition,
            is_processor,
            map_run_arn,
            checkpoint: None,
            open_map_run: None,
            not_redrivable: None,
        }
    }

    /// Stops a running execution (and with it its Map Run children).
    pub async fn stop_execution(
        &self,
        arn: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<DateTime<Utc>, Error> {
        let entry = self
            .store
            .execution(arn)
            .ok_or_else(|| Error::ExecutionDoesNotExist(arn.to_string()))?;
        let mut status = entry.status.subscribe();
        {
            let mut r = entry.lock();
            if r.status != ExecutionStatus::Running {
                return Ok(r.stop_date.unwrap_or_else(now));
            }
            if error.is_some() || cause.is_some() {
                r.error = Some(StatesError::new(
                    error.unwrap_or_default(),
                    cause.unwrap_or_default(),
                ));
            }
        }
        entry
            .cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cancel();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.is_final())).await;
        let stopped = entry.lock().stop_date.unwrap_or_else(now);
        Ok(stopped)
    }

    /// Why an execution cannot be redriven, or `None` if it can.
    pub fn not_redrivable_reason(&self, r: &ExecutionRecord) -> Option<String> {
        match r.status {
            ExecutionStatus::Running | ExecutionStatus::PendingRedrive => {
                return Some("Execution is RUNNING and cannot be redriven".into());
            }
            ExecutionStatus::Succeeded => {
                return Some("Execution is SUCCEEDED and cannot be redriven".into());
            }
            _ => {}
        }
        if let Some(reason) = &r.not_redrivable {
            return Some(reason.clone());
        }
        if r.map_run_arn.is_some() {
            return Some(
                "A Map Run child execution is redriven through its parent execution".into(),
            );
        }
        if r.redrive_count >= 1000 {
            return Some("Execution has been redriven the maximum number of times (1000)".into());
        }
        if r.stop_date
            .is_some_and(|d| now() - d > chrono::Duration::days(14))
        {
            return Some("Execution redrivable period exceeded".into());
        }
        if r.events.len() >= MAX_HISTORY_EVENTS - 1 {
            return Some("Execution history event limit exceeded".into());
        }
        None
    }

    /// RedriveExecution: resumes a failed, timed out or aborted execution from the state it
    /// stopped in, with the input that state had.
    pub fn redrive_execution(self: &Arc<Self>, arn: &str) -> Result<DateTime<Utc>, Error> {
        let entry = self
            .store
            .execution(arn)
            .ok_or_else(|| Error::ExecutionDoesNotExist(arn.to_string()))?;
        if let Some(reason) = self.not_redrivable_reason(&entry.lock()) {
            return Err(Error::ExecutionNotRedrivable(reason));
        }
        let machine = machine_of(&entry.lock())?;
        let date = Self::mark_redriven(&entry);
        self.store.flush_execution(&entry);
        tracing::info!(execution = %arn, "execution redriven");
        let engine = self.clone();
        tokio::spawn(async move {
            engine
                .run_execution(entry, machine, StartMode::Redrive, CancellationToken::new())
                .await;
        });
        Ok(date)
    }

    fn mark_redriven(entry: &ExecEntry) -> DateTime<Utc> {
        let date = now();
        let mut r = entry.lock();
        r.status = ExecutionStatus::Running;
        r.redrive_count += 1;
        r.redrive_date = Some(date);
        r.stop_date = None;
        r.error = None;
        r.output = None;
        let count = r.redrive_count;
        push_event(
            &mut r,
            "ExecutionRedriven",
            Some((
                "executionRedrivenEventDetails",
                json!({"redriveCount": count}),
            )),
        );
        drop(r);
        entry.status.send_replace(ExecutionStatus::Running);
        entry.touch();
        date
    }

    /// Continues every top-level execution that was running when the host stopped.
    pub fn resume_all(self: &Arc<Self>) {
        let entries: Vec<Arc<ExecEntry>> = self
            .store
            .executions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| {
                let r = e.lock();
                r.status == ExecutionStatus::Running && r.map_run_arn.is_none()
            })
            .cloned()
            .collect();
        for entry in entries {
            let definition = entry.lock().definition.clone();
            match Definition::parse(&definition) {
                Ok(d) => {
                    tracing::info!(execution = %entry.lock().arn, "resuming an execution after restart");
                    let engine = self.clone();
                    tokio::spawn(async move {
                        engine
                            .run_execution(
                                entry,
                                d.machine,
                                StartMode::Resume,
                                CancellationToken::new(),
                            )
                            .await;
                    });
                }
                Err(e) => tracing::error!(error = %e, "cannot resume an execution"),
            }
        }
    }

    /// Runs an execution to its end and records the outcome.
    pub(crate) async fn run_execution(
        self: Arc<Self>,
        entry: Arc<ExecEntry>,
        machine: Arc<Machine>,
        mode: StartMode,
        cancel: CancellationToken,
    ) -> Outcome {
        *entry.cancel.lock().unwrap_or_else(|p| p.into_inner()) = cancel.clone();
        let (start_state, input, base_context, sm_arn, sm_name) = {
            let r = entry.lock();
            let (state, input) = match (&r.checkpoint, mode) {
                (Some(c), StartMode::Resume | StartMode::Redrive) => {
                    (c.state.clone(), c.input.clone())
                }
                _ => (machine.start_at.clone(), r.input.clone()),
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
        let timeout = machine
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let outcome = tokio::select! {
            // A panic in a host's Resources must fail this execution, not leave it RUNNING.
            result = std::panic::AssertUnwindSafe(run.run_states(&machine, start_state, input, true)).catch_unwind() => match result {
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
            self.store.flush_execution(&entry);
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
                    Some(("executionFailedEventDetails", error_details(error))),
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
                    Some(("executionTimedOutEventDetails", error_details(&error))),
                );
                ExecutionStatus::TimedOut
            }
            Outcome::Interrupted => return,
            Outcome::Aborted => {
                let details = r
                    .error
                    .as_ref()
                    .map(|e| ("executionAbortedEventDetails", error_details(e)));
                push_event(&mut r, "ExecutionAborted", details);
                ExecutionStatus::Aborted
            }
        };
        r.status = status;
        tracing::info!(execution = %r.arn, status = status.as_str(), "execution stopped");
        drop(r);
        self.store.flush_execution(entry);
        entry.status.send_replace(status);
    }

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

fn error_details(error: &StatesError) -> Value {
    let mut details = serde_json::Map::new();
    if !error.error.is_empty() {
        details.insert("error".into(), Value::String(error.error.clone()));
    }
    if !error.cause.is_empty() {
        details.insert("cause".into(), Value::String(error.cause.clone()));
    }
    Value::Object(details)
}

fn push_event(r: &mut ExecutionRecord, kind: &str, details: Option<(&str, Value)>) {
    let id = r.events.len() as u64 + 1;
    r.events.push(HistoryEvent {
        id,
        previous_event_id: id - 1,
        timestamp: now(),
        kind: kind.to_string(),
        details: details.map(|(k, v)| (k.to_string(), v)),
    });
}

enum Transition {
    Next(String, Value),
    End(Value),
}

/// One running execution.
struct Run {
    engine: Arc<Engine>,
    entry: Arc<ExecEntry>,
    cancel: CancellationToken,
    base_context: Value,
    sm_arn: String,
    sm_name: String,
    /// Taken by the first state that runs, so only it reuses what a resume or redrive kept.
    mode: Mutex<Option<StartMode>>,
}

impl Run {
    /// Appends a history event; fails with States.Runtime once the 25,000-event limit is reached
    /// (one event is kept for ExecutionFailed).
    fn event(&self, kind: &str, details: Option<(&str, Value)>) -> Result<(), StatesError> {
        let mut r = self.entry.lock();
        if r.events.len() >= MAX_HISTORY_EVENTS - 1 {
            r.not_redrivable = Some("Execution history event limit exceeded".into());
            return Err(StatesError::runtime(format!(
                "The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
            )));
        }
        push_event(&mut r, kind, details);
        drop(r);
        self.entry.touch();
        Ok(())
    }

    fn context(&self, state: &str, entered: DateTime<Utc>, retry_count: u32) -> Value {
        let mut context = self.base_context.clone();
        context["State"] =
            json!({"Name": state, "EnteredTime": iso(entered), "RetryCount": retry_count});
        context
    }

    fn take_mode(&self) -> Option<StartMode> {
        self.mode.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn run_states<'a>(
        &'a self,
        machine: &'a Arc<Machine>,
        start: String,
        input: Value,
        top: bool,
    ) -> BoxFuture<'a, Result<Value, StatesError>> {
        Box::pin(async move {
            let mut name = start;
            let mut input = input;
            loop {
                let Some(state) = machine.states.get(&name).cloned() else {
                    return Err(StatesError::runtime(format!(
                        "The state {name:?} does not exist"
                    )));
                };
                if top {
                    let mut r = self.entry.lock();
                    match r.checkpoint.as_mut() {
                        // Re-entering the checkpoint state (resume, redrive) keeps what it left.
                        Some(c) if c.state == name => c.input = input.clone(),
                        _ => {
                            r.open_map_run = None;
                            r.checkpoint = Some(Checkpoint {
                                state: name.clone(),
                                input: input.clone(),
                                iterations: None,
                            });
                        }
                    }
                    drop(r);
                    self.entry.touch();
                }
                let entered = now();
                self.event(
                    &format!("{}StateEntered", state.event_prefix()),
                    Some((
                        "stateEnteredEventDetails",
                        json!({"name": name, "input": input.to_string(), "inputDetails": {"truncated": false}}),
                    )),
                )?;
                if input.to_string().len() > MAX_PAYLOAD_BYTES {
                    return Err(StatesError::new(
                        "States.DataLimitExceeded",
                        format!("The state/task input of {name:?} exceeds the 256 KiB limit"),
                    ));
                }
                let top_mode = if top { self.take_mode() } else { None };
                match self
                    .run_state(&state, input, entered, top, top_mode)
                    .await?
                {
                    Transition::Next(next, output) => {
                        name = next;
                        input = output;
                    }
                    Transition::End(output) => return Ok(output),
                }
            }
        })
    }

    fn set_iterations(&self, iterations: Iterations) {
        let mut r = self.entry.lock();
        if let Some(c) = r.checkpoint.as_mut() {
            c.iterations = Some(iterations);
        }
        drop(r);
        self.entry.touch();
    }

    fn exited(&self, state: &State, output: &Value) -> Result<(), StatesError> {
        if output.to_string().len() > MAX_PAYLOAD_BYTES {
            return Err(StatesError::new(
                "States.DataLimitExceeded",
                format!(
                    "The state/task output of {:?} exceeds the 256 KiB limit",
                    state.name
                ),
            ));
        }
        self.event(
            &format!("{}StateExited", state.event_prefix()),
            Some((
                "stateExitedEventDetails",
                json!({"name": state.name, "output": output.to_string(), "outputDetails": {"truncated": false}}),
            )),
        )
    }

    fn transition(state: &State, output: Value) -> Transition {
        match &state.next {
            Some(next) => Transition::Next(next.clone(), output),
            None => Transition::End(output),
        }
    }

    async fn run_state(
        &self,
        state: &State,
        raw: Value,
        entered: DateTime<Utc>,
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<Transition, StatesError> {
        let context = self.context(&state.name, entered, 0);
        match &state.kind {
            Kind::Choice { choices, default } => {
                let effective =
                    select_path(state.input_path.as_ref(), &raw, &context, "InputPath")?;
                let mut chosen = None;
                for (rule, next) in choices {
                    if evaluate(rule, &effective, &context)? {
                        chosen = Some(next.clone());
                        break;
                    }
                }
                let next = chosen.or_else(|| default.clone()).ok_or_else(|| {
                    StatesError::new(
                        "States.NoChoiceMatched",
                        format!(
                            "No Choice Rule matched and no Default was specified in state {:?}",
                            state.name
                        ),
                    )
                })?;
                let output = select_path(
                    state.output_path.as_ref(),
                    &effective,
                    &context,
                    "OutputPath",
                )?;
                self.exited(state, &output)?;
                Ok(Transition::Next(next, output))
            }
            Kind::Succeed => {
                let effective =
                    select_path(state.input_path.as_ref(), &raw, &context, "InputPath")?;
                let output = select_path(
                    state.output_path.as_ref(),
                    &effective,
                    &context,
                    "OutputPath",
                )?;
                self.exited(state, &output)?;
                Ok(Transition::End(output))
            }
            Kind::Fail { error, cause } => {
                let text = |expr: &Option<crate::definition::Expr>,
                            field: &str|
                 -> Result<String, StatesError> {
                    Ok(match expr {
                        None => String::new(),
                        Some(crate::definition::Expr::Static(s)) => s.clone(),
                        Some(crate::definition::Expr::Path(p)) => match p.select(&raw, &context) {
                            Some(Value::String(s)) => s,
                            _ => {
                                return Err(StatesError::runtime(format!(
                                    "The {field} '{}' does not resolve to a string in the input",
                                    p.as_str()
                                )));
                            }
                        },
                        Some(crate::definition::Expr::Call(c)) => match c.eval(&raw, &context)? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                    })
                };
                Err(StatesError::new(
                    text(error, "ErrorPath")?,
                    text(cause, "CausePath")?,
                ))
            }
            Kind::Wait(wait) => {
                let effective =
                    select_path(state.input_path.as_ref(), &raw, &context, "InputPath")?;
                let seconds = match wait {
                    WaitFor::Seconds(n) => *n as f64,
                    WaitFor::SecondsPath(p) => {
                        match p.select(&effective, &context).and_then(|v| v.as_u64()) {
                            Some(n) => n as f64,
                            None => {
                                return Err(StatesError::runtime(format!(
                                    "The SecondsPath parameter '{}' does not reference a non-negative integer",
                                    p.as_str()
                                )));
                            }
                        }
                    }
                    WaitFor::Timestamp(t) => until(t),
                    WaitFor::TimestampPath(p) => {
                        match p
                            .select(&effective, &context)
                            .and_then(|v| v.as_str().and_then(parse_timestamp))
                        {
                            Some(t) => until(&t),
                            None => {
                                return Err(StatesError::runtime(format!(
                                    "The TimestampPath parameter '{}' does not reference a valid ISO-8601 timestamp",
                                    p.as_str()
                                )));
                            }
                        }
                    }
                };
                self.engine.sleep(seconds, &self.cancel).await;
                let output = select_path(
                    state.output_path.as_ref(),
                    &effective,
                    &context,
                    "OutputPath",
                )?;
                self.exited(state, &output)?;
                Ok(Self::transition(state, output))
            }
            _ => self.run_with_retry(state, raw, entered, top, mode).await,
        }
    }

    async fn run_with_retry(
        &self,
        state: &State,
        raw: Value,
        entered: DateTime<Utc>,
        top: bool,
        mut mode: Option<StartMode>,
    ) -> Result<Transition, StatesError> {
        let mut attempts = vec![0u32; state.retry.len()];
        let mut retry_count = 0;
        loop {
            let context = self.context(&state.name, entered, retry_count);
            let error = match self.attempt(state, &raw, &context, top, mode.take()).await {
                Ok(output) => {
                    self.exited(state, &output)?;
                    return Ok(Self::transition(state, output));
                }
                Err(error) => error,
            };
            if error.is_terminal() {
                return Err(error);
            }
            if let Some(i) = state
                .retry
                .iter()
                .position(|r| error.matches(&r.error_equals))
            {
                let retrier = &state.retry[i];
                if attempts[i] < retrier.max_attempts {
                    let mut delay =
                        retrier.interval_seconds * retrier.backoff_rate.powi(attempts[i] as i32);
                    if let Some(max) = retrier.max_delay_seconds {
                        delay = delay.min(max);
                    }
                    if retrier.full_jitter {
                        use rand::Rng as _;
                        delay = rand::rng().random_range(0.0..=delay);
                    }
                    attempts[i] += 1;
                    retry_count += 1;
                    tracing::debug!(state = %state.name, error = %error.error, delay, "retrying");
                    self.engine.sleep(delay, &self.cancel).await;
                    continue;
                }
            }
            if let Some(catcher) = state.catch.iter().find(|c| error.matches(&c.error_equals)) {
                let output =
                    apply_result_path(catcher.result_path.as_ref(), &raw, error.to_output())?;
                self.exited(state, &output)?;
                return Ok(Transition::Next(catcher.next.clone(), output));
            }
            return Err(error);
        }
    }

    /// One attempt at a Pass, Task, Map or Parallel state: input processing, the work, and
    /// output processing. Its errors are what Retry and Catch see.
    async fn attempt(
        &self,
        state: &State,
        raw: &Value,
        context: &Value,
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<Value, StatesError> {
        let effective = select_path(state.input_path.as_ref(), raw, context, "InputPath")?;
        let params = match &state.parameters {
            Some(t) => render(t, &effective, context, "Parameters")?,
            None => effective.clone(),
        };
        let result = match &state.kind {
            Kind::Pass { result } => result.clone().unwrap_or(params),
            Kind::Task {
                resource,
                timeout_seconds,
                timeout_seconds_path,
            } => {
                let timeout = match (timeout_seconds, timeout_seconds_path) {
                    (Some(t), _) => Some(*t),
                    (None, Some(p)) => Some(p.select(&effective, context).and_then(|v| v.as_u64()).filter(|n| *n > 0).ok_or_else(|| {
                        StatesError::runtime(format!("The TimeoutSecondsPath '{}' does not reference a positive integer", p.as_str()))
                    })?),
                    (None, None) => None,
                };
                self.task(resource, params, timeout).await?
            }
            Kind::Parallel { branches } => {
                self.parallel(state, branches, params, top, mode).await?
            }
            Kind::Map(spec) if spec.distributed => {
                self.distributed_map(state, spec, &effective, context, top, mode)
                    .await?
            }
            Kind::Map(spec) => {
                self.inline_map(state, spec, &effective, context, top, mode)
                    .await?
            }
            _ => unreachable!("only Pass, Task, Map and Parallel are attempted"),
        };
        let selected = match &state.result_selector {
            Some(t) => render(t, &result, context, "ResultSelector")?,
            None => result,
        };
        let combined = apply_result_path(state.result_path.as_ref(), raw, selected)?;
        select_path(state.output_path.as_ref(), &combined, context, "OutputPath")
    }

    async fn task(
        &self,
        resource: &Resource,
        params: Value,
        timeout: Option<u64>,
    ) -> Result<Value, StatesError> {
        let (resource_type, resource_name) = match resource {
            Resource::LambdaInvoke => ("lambda", "invoke"),
            Resource::StartExecution => ("states", "startExecution"),
            Resource::LambdaArn(_) => ("lambda", ""),
        };
        let legacy = matches!(resource, Resource::LambdaArn(_));
        if let Resource::LambdaArn(arn) = resource {
            let mut details = json!({"resource": arn, "input": params.to_string(), "inputDetails": {"truncated": false}});
            if let Some(t) = timeout {
                details["timeoutInSeconds"] = json!(t);
            }
            self.event(
                "LambdaFunctionScheduled",
                Some(("lambdaFunctionScheduledEventDetails", details)),
            )?;
            self.event("LambdaFunctionStarted", None)?;
        } else {
            let mut details = json!({
                "resourceType": resource_type,
                "resource": resource_name,
                "region": self.engine.region,
                "parameters": params.to_string(),
            });
            if let Some(t) = timeout {
                details["timeoutInSeconds"] = json!(t);
            }
            self.event(
                "TaskScheduled",
                Some(("taskScheduledEventDetails", details)),
            )?;
            self.event(
                "TaskStarted",
                Some((
                    "taskStartedEventDetails",
                    json!({"resourceType": resource_type, "resource": resource_name}),
                )),
            )?;
        }
        let work = self.call_resource(resource, params);
        let result = match timeout {
            Some(t) => match tokio::time::timeout(Duration::from_secs(t), work).await {
                Ok(r) => r,
                Err(_) => {
                    let error = StatesError::new(
                        "States.Timeout",
                        format!("The task did not finish within {t} seconds"),
                    );
                    let (kind, key) = if legacy {
                        (
                            "LambdaFunctionTimedOut",
                            "lambdaFunctionTimedOutEventDetails",
                        )
                    } else {
                        ("TaskTimedOut", "taskTimedOutEventDetails")
                    };
                    let mut details = error_details(&error);
                    if !legacy {
                        details["resourceType"] = json!(resource_type);
                        details["resource"] = json!(resource_name);
                    }
                    let _ = self.event(kind, Some((key, details)));
                    return Err(error);
                }
            },
            None => work.await,
        };
        match result {
            Ok(output) => {
                if output.to_string().len() > MAX_PAYLOAD_BYTES {
                    return Err(StatesError::new(
                        "States.DataLimitExceeded",
                        "The task result exceeds the 256 KiB limit",
                    ));
                }
                if legacy {
                    self.event(
                        "LambdaFunctionSucceeded",
                        Some((
                            "lambdaFunctionSucceededEventDetails",
                            json!({"output": output.to_string(), "outputDetails": {"truncated": false}}),
                        )),
                    )?;
                } else {
                    self.event(
                        "TaskSucceeded",
                        Some((
                            "taskSucceededEventDetails",
                            json!({"resourceType": resource_type, "resource": resource_name,
                                   "output": output.to_string(), "outputDetails": {"truncated": false}}),
                        )),
                    )?;
                }
                Ok(output)
            }
            Err(error) => {
                let mut details = error_details(&error);
                if legacy {
                    self.event(
                        "LambdaFunctionFailed",
                        Some(("lambdaFunctionFailedEventDetails", details)),
                    )?;
                } else {
                    details["resourceType"] = json!(resource_type);
                    details["resource"] = json!(resource_name);
                    self.event("TaskFailed", Some(("taskFailedEventDetails", details)))?;
                }
                Err(error)
            }
        }
    }

    async fn call_resource(
        &self,
        resource: &Resource,
        params: Value,
    ) -> Result<Value, StatesError> {
        match resource {
            Resource::LambdaInvoke => {
                let Some(function) = params.get("FunctionName").and_then(Value::as_str) else {
                    return Err(StatesError::runtime(
                        "The lambda:invoke parameter FunctionName must be a string",
                    ));
                };
                let payload = params.get("Payload").cloned().unwrap_or_else(|| json!({}));
                let payload_value = self.invoke(function, payload).await?;
                let (metadata, request_id) =
                    sdk_http_metadata(payload_value.to_string().len(), "application/json", true);
                Ok(json!({
                    "ExecutedVersion": "$LATEST",
                    "Payload": payload_value,
                    "SdkHttpMetadata": metadata,
                    "SdkResponseMetadata": {"RequestId": request_id},
                    "StatusCode": 200
                }))
            }
            Resource::LambdaArn(arn) => self.invoke(arn, params).await,
            Resource::StartExecution => {
                let Some(sm_arn) = params.get("StateMachineArn").and_then(Value::as_str) else {
                    return Err(StatesError::runtime(
                        "The startExecution parameter StateMachineArn must be a string",
                    ));
                };
                let input = match params.get("Input") {
                    None | Some(Value::Null) => json!({}),
                    Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| {
                        StatesError::new(
                            "StepFunctions.InvalidExecutionInputException",
                            format!("Input is not valid JSON: {e}"),
                        )
                    })?,
                    Some(other) => other.clone(),
                };
                let name = params.get("Name").and_then(Value::as_str);
                let started = self
                    .engine
                    .start_execution(sm_arn, name, input)
                    .map_err(|e| {
                        let kind = e.aws_type();
                        let error = if kind.ends_with("Exception") {
                            format!("StepFunctions.{kind}")
                        } else {
                            format!("StepFunctions.{kind}Exception")
                        };
                        StatesError::new(error, e.to_string())
                    })?;
                let body = json!({
                    "executionArn": started.arn,
                    "startDate": started.start_date.timestamp_millis() as f64 / 1000.0,
                });
                let (metadata, request_id) =
                    sdk_http_metadata(body.to_string().len(), "application/x-amz-json-1.0", false);
                Ok(json!({
                    "ExecutionArn": started.arn,
                    "StartDate": started.start_date.timestamp_millis(),
                    "SdkHttpMetadata": metadata,
                    "SdkResponseMetadata": {"RequestId": request_id}
                }))
            }
        }
    }

    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, StatesError> {
        match self.engine.resources.invoke_lambda(function, payload).await {
            Ok(v) => Ok(v),
            Err(LambdaError::Function {
                error_type,
                error_message,
            }) => {
                let cause =
                    json!({"errorType": error_type, "errorMessage": error_message}).to_string();
                let name = if error_type.is_empty() {
                    "Lambda.Unknown".to_string()
                } else {
                    error_type
                };
                Err(StatesError::new(name, cause))
            }
            Err(LambdaError::Service { error, message }) => Err(StatesError::new(error, message)),
        }
    }

    fn resolve_number(
        &self,
        value: &Option<NumberOr>,
        input: &Value,
        context: &Value,
        field: &str,
    ) -> Result<Option<f64>, StatesError> {
        match value {
            None => Ok(None),
            Some(NumberOr::Value(v)) => Ok(Some(*v)),
            Some(NumberOr::Path(p)) => match p.select(input, context).and_then(|v| v.as_f64()) {
                Some(v) if v >= 0.0 => Ok(Some(v)),
                _ => Err(StatesError::runtime(format!(
                    "The {field}Path '{}' does not reference a non-negative number",
                    p.as_str()
                ))),
            },
        }
    }

    fn item_input(
        &self,
        spec: &MapSpec,
        effective: &Value,
        context: &Value,
        index: usize,
        item: &Value,
    ) -> Result<Value, StatesError> {
        match &spec.item_selector {
            None => Ok(item.clone()),
            Some(t) => {
                let mut context = context.clone();
                context["Map"] = json!({"Item": {"Index": index, "Value": item}});
                render(t, effective, &context, "ItemSelector")
            }
        }
    }

    fn items_from_path(
        &self,
        spec: &MapSpec,
        effective: &Value,
        context: &Value,
    ) -> Result<Vec<Value>, StatesError> {
        let items = select_path(spec.items_path.as_ref(), effective, context, "ItemsPath")?;
        match items {
            Value::Array(items) => Ok(items),
            other => Err(StatesError::runtime(format!(
                "Items of the Map state must be an array; ItemsPath selected {}",
                if other.is_object() {
                    "an object"
                } else {
                    "a non-array value"
                }
            ))),
        }
    }

    /// Results kept from the previous attempt of the top-level inline Map or Parallel state
    /// at the checkpoint, when this attempt redrives it.
    fn kept_iterations(
        &self,
        state: &State,
        len: usize,
        mode: Option<StartMode>,
    ) -> Vec<Option<Value>> {
        let kept = match mode {
            Some(StartMode::Redrive | StartMode::Resume) => self
                .entry
                .lock()
                .checkpoint
                .as_ref()
                .and_then(|c| c.iterations.clone())
                .filter(|it| it.state == state.name && it.results.len() == len)
                .map(|it| it.results),
            _ => None,
        };
        kept.unwrap_or_else(|| vec![None; len])
    }

    fn record_iteration(&self, top: bool, state: &State, results: &[Option<Value>]) {
        if top {
            self.set_iterations(Iterations {
                state: state.name.clone(),
                results: results.to_vec(),
            });
        }
    }

    async fn parallel(
        &self,
        state: &State,
        branches: &[Arc<Machine>],
        input: Value,
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<Value, StatesError> {
        self.event("ParallelStateStarted", None)?;
        let mut results = self.kept_iterations(state, branches.len(), mode);
        let mut running: FuturesUnordered<_> = branches
            .iter()
            .enumerate()
            .filter(|(i, _)| results[*i].is_none())
            .map(|(i, branch)| {
                let input = input.clone();
                async move {
                    (
                        i,
                        self.run_states(branch, branch.start_at.clone(), input, false)
                            .await,
                    )
                }
            })
            .collect();
        while let Some((i, result)) = running.next().await {
            match result {
                Ok(v) => {
                    results[i] = Some(v);
                    self.record_iteration(top, state, &results);
                }
                Err(e) => {
                    drop(running);
                    let _ = self.event("ParallelStateFailed", None);
                    return Err(e);
                }
            }
        }
        self.event("ParallelStateSucceeded", None)?;
        Ok(Value::Array(
            results
                .into_iter()
                .map(|r| r.unwrap_or(Value::Null))
                .collect(),
        ))
    }

    async fn inline_map(
        &self,
        state: &State,
        spec: &MapSpec,
        effective: &Value,
        context: &Value,
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<Value, StatesError> {
        let items = self.items_from_path(spec, effective, context)?;
        let limit = self
            .resolve_number(&spec.max_concurrency, effective, context, "MaxConcurrency")?
            .unwrap_or(0.0) as usize;
        let inputs = items
            .iter()
            .enumerate()
            .map(|(i, item)| self.item_input(spec, effective, context, i, item))
            .collect::<Result<Vec<_>, _>>()?;
        self.event(
            "MapStateStarted",
            Some((
                "mapStateStartedEventDetails",
                json!({"length": inputs.len()}),
            )),
        )?;
        let mut results = self.kept_iterations(state, inputs.len(), mode);
        let pending: Vec<(usize, Value)> = inputs
            .into_iter()
            .enumerate()
            .filter(|(i, _)| results[*i].is_none())
            .collect();
        let limit = if limit == 0 {
            pending.len().max(1)
        } else {
            limit
        };
        let name = state.name.clone();
        // Iterations started and not finished: aborted when another one fails.
        let in_flight: Mutex<std::collections::BTreeSet<usize>> = Mutex::default();
        let in_flight = &in_flight;
        let mut stream = futures::stream::iter(pending.into_iter().map(|(i, input)| {
            let name = name.clone();
            async move {
                let details = json!({"name": name, "index": i});
                if let Err(e) = self.event(
                    "MapIterationStarted",
                    Some(("mapIterationStartedEventDetails", details.clone())),
                ) {
                    return (i, Err(e));
                }
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(i);
                match self
                    .run_states(
                        &spec.processor,
                        spec.processor.start_at.clone(),
                        input,
                        false,
                    )
                    .await
                {
                    Ok(v) => match self.event(
                        "MapIterationSucceeded",
                        Some(("mapIterationSucceededEventDetails", details)),
                    ) {
                        Ok(()) => (i, Ok(v)),
                        Err(e) => (i, Err(e)),
                    },
                    Err(e) => {
                        let _ = self.event(
                            "MapIterationFailed",
                            Some(("mapIterationFailedEventDetails", details)),
                        );
                        (i, Err(e))
                    }
                }
            }
        }))
        .buffer_unordered(limit);
        while let Some((i, result)) = stream.next().await {
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&i);
            match result {
                Ok(v) => {
                    results[i] = Some(v);
                    self.record_iteration(top, state, &results);
                }
                Err(e) => {
                    drop(stream);
                    let aborted: Vec<usize> =
                        std::mem::take(&mut *in_flight.lock().unwrap_or_else(|p| p.into_inner()))
                            .into_iter()
                            .collect();
                    for index in aborted {
                        let _ = self.event(
                            "MapIterationAborted",
                            Some((
                                "mapIterationAbortedEventDetails",
                                json!({"name": state.name, "index": index}),
                            )),
                        );
                    }
                    let _ = self.event("MapStateFailed", None);
                    return Err(e);
                }
            }
        }
        self.event("MapStateSucceeded", None)?;
        Ok(Value::Array(
            results
                .into_iter()
                .map(|r| r.unwrap_or(Value::Null))
                .collect(),
        ))
    }

    async fn read_items(
        &self,
        spec: &MapSpec,
        effective: &Value,
        context: &Value,
    ) -> Result<Vec<Value>, StatesError> {
        let Some(reader) = &spec.item_reader else {
            return self.items_from_path(spec, effective, context);
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
        if let Some(max) = self.resolve_number(&reader.max_items, effective, context, "MaxItems")? {
            items.truncate(max as usize);
        }
        Ok(items)
    }

    async fn distributed_map(
        &self,
        state: &State,
        spec: &MapSpec,
        effective: &Value,
        context: &Value,
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<Value, StatesError> {
        let engine = &self.engine;
        let max_concurrency = self
            .resolve_number(&spec.max_concurrency, effective, context, "MaxConcurrency")?
            .unwrap_or(0.0) as u32;
        let tolerated_pct = self.resolve_number(
            &spec.tolerated_percentage,
            effective,
            context,
            "ToleratedFailurePercentage",
        )?;
        let tolerated_count = self.resolve_number(
            &spec.tolerated_count,
            effective,
            context,
            "ToleratedFailureCount",
        )?;
        // Reuse the Map Run this state left behind when resuming or redriving from it.
        let reused = match mode {
            Some(StartMode::Resume | StartMode::Redrive) if top => {
                let open = self.entry.lock().open_map_run.clone();
                open.and_then(|arn| engine.store.map_run(&arn)).filter(|m| {
                    let m = m.lock();
                    m.state_name == state.name && m.status != MapRunStatus::Succeeded
                })
            }
            _ => None,
        };
        let redriving = reused.is_some() && mode == Some(StartMode::Redrive);
        // A Map Run continued after a restart already has its MapRunStarted event.
        let continued = reused.is_some() && mode == Some(StartMode::Resume);
        let run_entry: Arc<MapRunEntry> = match reused {
            Some(entry) => entry,
            None => {
                let items = self.read_items(spec, effective, context).await?;
                tracing::debug!(state = %state.name, items = items.len(), "map run items read");
                let mut inputs = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    inputs.push(self.item_input(spec, effective, context, i, item)?);
                }
                if let Some(batcher) = &spec.batcher {
                    let size = match &batcher.max_items {
                        NumberOr::Value(v) => *v,
                        NumberOr::Path(_) => self
                            .resolve_number(
                                &Some(batcher.max_items.clone()),
                                effective,
                                context,
                                "MaxItemsPerBatch",
                            )?
                            .unwrap_or(1.0),
                    }
                    .max(1.0) as usize;
                    let batch_input = batcher
                        .batch_input
                        .as_ref()
                        .map(|t| render(t, effective, context, "ItemBatcher.BatchInput"))
                        .transpose()?;
                    inputs = inputs
                        .chunks(size)
                        .map(|chunk| {
                            let mut batch = json!({"Items": chunk});
                            if let Some(b) = &batch_input {
                                batch["BatchInput"] = b.clone();
                            }
                            batch
                        })
                        .collect();
                }
                let label = spec.label.clone().unwrap_or_else(|| label_for(&state.name));
                let arn = format!(
                    "arn:aws:states:{}:{}:mapRun:{}/{label}:{}",
                    engine.region,
                    engine.account_id,
                    self.sm_name,
                    uuid::Uuid::new_v4()
                );
                engine.store.insert_map_run(MapRunRecord {
                    arn,
                    execution_arn: self.entry.lock().arn.clone(),
                    state_name: state.name.clone(),
                    status: MapRunStatus::Running,
                    start_date: now(),
                    stop_date: None,
                    max_concurrency,
                    tolerated_failure_percentage: tolerated_pct.unwrap_or(0.0),
                    tolerated_failure_count: tolerated_count.unwrap_or(0.0) as u64,
                    redrive_count: 0,
                    redrive_date: None,
                    items: inputs
                        .into_iter()
                        .map(|input| MapItem {
                            input,
                            status: ItemStatus::Pending,
                            execution_arn: None,
                            output: None,
                            error: None,
                        })
                        .collect(),
                })
            }
        };
        let (map_run_arn, total) = {
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
        engine.store.flush_map_run(&run_entry);
        tracing::debug!(map_run = %map_run_arn, items = total, "map run started");

        let to_run: Vec<usize> = {
            let mut m = run_entry.lock();
            if redriving {
                // Unsuccessful items start over as pending (they keep their child execution,
                // which is redriven), so the failure threshold counts only this attempt.
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
        };
        let exceeded = |m: &MapRunRecord| {
            let c = m.counts();
            let failed = c.failed + c.timed_out;
            if failed == 0 {
                return false;
            }
            match (tolerated_count, tolerated_pct) {
                (None, None) => true,
                (count, pct) => {
                    count.is_some_and(|n| failed as f64 > n)
                        || pct
                            .is_some_and(|p| (failed as f64) * 100.0 / (c.total.max(1) as f64) > p)
                }
            }
        };
        let map_cancel = self.cancel.child_token();
        let limit = if max_concurrency == 0 {
            usize::MAX
        } else {
            max_concurrency as usize
        };
        let mut queue = to_run.into_iter();
        let mut running = FuturesUnordered::new();
        let mut over_threshold = exceeded(&run_entry.lock());
        loop {
            while running.len() < limit && !over_threshold && !map_cancel.is_cancelled() {
                let Some(i) = queue.next() else { break };
                running.push(self.spawn_item(&run_entry, i, spec, &map_cancel, redriving));
            }
            let Some(joined) = running.next().await else {
                break;
            };
            let (i, outcome) = match joined {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(error = %e, "a map run child task panicked");
                    continue;
                }
            };
            {
                let mut m = run_entry.lock();
                let item = &mut m.items[i];
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
                if !over_threshold && exceeded(&m) {
                    over_threshold = true;
                    // Stop the children still running: the Map Run has failed.
                    map_cancel.cancel();
                }
            }
            run_entry.touch();
        }
        if over_threshold {
            let error = StatesError::new(
                "States.ExceedToleratedFailureThreshold",
                "The specified tolerated failure threshold was exceeded",
            );
            self.close_map_run(&run_entry, MapRunStatus::Failed);
            let _ = self.event(
                "MapRunFailed",
                Some(("mapRunFailedEventDetails", error_details(&error))),
            );
            let _ = self.event("MapStateFailed", None);
            Err(error)
        } else if self.cancel.is_cancelled() {
            self.close_map_run(&run_entry, MapRunStatus::Aborted);
            let _ = self.event("MapRunAborted", None);
            Err(StatesError::new(
                "States.Aborted",
                "The execution was stopped",
            ))
        } else {
            self.close_map_run(&run_entry, MapRunStatus::Succeeded);
            self.event("MapRunSucceeded", None)?;
            self.event("MapStateSucceeded", None)?;
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

    fn close_map_run(&self, entry: &MapRunEntry, status: MapRunStatus) {
        {
            let mut m = entry.lock();
            m.status = status;
            m.stop_date = Some(now());
        }
        self.engine.store.flush_map_run(entry);
    }

    /// Starts (or redrives, or resumes) the child execution of one Map Run item.
    fn spawn_item(
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
        let existing = item
            .execution_arn
            .as_deref()
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
                let arn = format!(
                    "arn:aws:states:{}:{}:execution:{}/{label}:{name}",
                    engine.region, engine.account_id, self.sm_name
                );
                let role = self.entry.lock().role_arn.clone();
                let record = engine.new_record(
                    arn,
                    format!("{}/{label}", self.sm_arn),
                    format!("{}/{label}", self.sm_name),
                    name,
                    item.input.clone(),
                    role,
                    spec.processor_json.to_string(),
                    Some(map_run_arn),
                );
                let entry = ExecEntry::new(record);
                engine.store.insert_execution(entry.clone());
                (entry, StartMode::Fresh)
            }
        };
        {
            let mut m = run_entry.lock();
            m.items[index].status = ItemStatus::Running;
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

/// The `SdkHttpMetadata` AWS integrations add to a service response, and its request id.
fn sdk_http_metadata(length: usize, content_type: &str, lambda: bool) -> (Value, String) {
    let request_id = uuid::Uuid::new_v4().to_string();
    let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let length = length.to_string();
    let mut single = json!({
        "Connection": "keep-alive",
        "Content-Length": length,
        "Content-Type": content_type,
        "Date": date,
        "x-amzn-RequestId": request_id,
    });
    if lambda {
        single["X-Amz-Executed-Version"] = json!("$LATEST");
        single["x-amzn-Remapped-Content-Length"] = json!("0");
    }
    let all: serde_json::Map<String, Value> = single
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    (
        json!({"AllHttpHeaders": all, "HttpHeaders": single, "HttpStatusCode": 200}),
        request_id,
    )
}

/// A Map Run label derived from a state name (labels allow no ':' '/' or whitespace, 40 chars).
fn label_for(state: &str) -> String {
    let label: String = state
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if label.is_empty() {
        "Map".into()
    } else {
        label
    }
}

fn until(t: &chrono::DateTime<chrono::FixedOffset>) -> f64 {
    let delta = t.with_timezone(&Utc) - now();
    (delta.num_milliseconds().max(0) as f64) / 1000.0
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

//! The engine's verbs: registering state machines, and starting, stopping, redriving and
//! resuming executions (StartExecution, StopExecution, RedriveExecution, restart).

use super::history::push_event;
use super::{Engine, StartMode, exceeds_payload_limit, machine_of, now};
use crate::definition::{Definition, Machine};
use crate::error::{Error, StatesError};
use crate::store::{
    ExecEntry, ExecutionRecord, ExecutionStatus, HistoryEvent, MAX_HISTORY_EVENTS,
    StateMachineRecord, lock,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Validates an execution or state machine name as the API does.
pub(super) fn check_name(name: &str) -> Result<(), Error> {
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
    /// Creates (or, when `update` is set, replaces) a state machine; `express` is its type
    /// (EXPRESS or STANDARD), which an update keeps, as on AWS.
    pub fn put_state_machine(
        &self,
        name: &str,
        definition: &Definition,
        role_arn: &str,
        update: bool,
        express: bool,
    ) -> Result<StateMachineRecord, Error> {
        check_name(name)?;
        let arn = self.state_machine_arn(name);
        let mut machines = lock(&self.store.state_machines);
        if let Some(existing) = machines.get(&arn) {
            if existing.definition == definition.text()
                && existing.role_arn == role_arn
                && existing.express == express
            {
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
            express: machines.get(&arn).map(|m| m.express).unwrap_or(express),
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
        let machine_record = self.store.state_machine(state_machine_arn)?;
        let definition = Definition::parse(&machine_record.definition)?;
        if machine_record.express {
            let entry = self.start_express(&machine_record, definition.machine, name, input)?;
            let record = entry.lock().clone();
            return Ok(record);
        }
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
        if exceeds_payload_limit(&input) {
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
        self.spawn_run(entry, definition.machine, StartMode::Fresh);
        Ok(record)
    }

    /// A new RUNNING execution record with its ExecutionStarted event.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_record(
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
            express: false,
        }
    }

    /// Stops a running execution (and with it its Map Run children).
    pub async fn stop_execution(
        &self,
        arn: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<DateTime<Utc>, Error> {
        let entry = self.store.existing_execution(arn)?;
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
        lock(&entry.cancel).cancel();
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
        let entry = self.store.existing_execution(arn)?;
        if let Some(reason) = self.not_redrivable_reason(&entry.lock()) {
            return Err(Error::ExecutionNotRedrivable(reason));
        }
        let machine = machine_of(&entry.lock())?;
        let date = Self::mark_redriven(&entry);
        self.store.flush_execution(&entry);
        tracing::info!(execution = %arn, "execution redriven");
        self.spawn_run(entry, machine, StartMode::Redrive);
        Ok(date)
    }

    /// Runs an execution in the background, cancellable only through its entry.
    pub(super) fn spawn_run(
        self: &Arc<Self>,
        entry: Arc<ExecEntry>,
        machine: Arc<Machine>,
        mode: StartMode,
    ) {
        let engine = self.clone();
        tokio::spawn(async move {
            engine
                .run_execution(entry, machine, mode, CancellationToken::new())
                .await;
        });
    }

    /// Marks a stopped execution as running again and records ExecutionRedriven.
    pub(super) fn mark_redriven(entry: &ExecEntry) -> DateTime<Utc> {
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
        let entries: Vec<Arc<ExecEntry>> = lock(&self.store.executions)
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
                    self.spawn_run(entry, d.machine, StartMode::Resume);
                }
                Err(e) => tracing::error!(error = %e, "cannot resume an execution"),
            }
        }
    }
}

//! Executions of EXPRESS state machines: started asynchronously (StartExecution) or
//! synchronously (StartSyncExecution), they are never stored, record no history and cannot be
//! described, listed, stopped or redriven, as on AWS, where their record goes to CloudWatch
//! Logs only.

use super::lifecycle::check_name;
use super::{Engine, StartMode, exceeds_payload_limit};
use crate::definition::Machine;
use crate::error::Error;
use crate::store::{ExecEntry, ExecutionRecord, StateMachineRecord};
use serde_json::Value;
use std::sync::Arc;

impl Engine {
    /// Starts an Express execution in the background and returns its live entry. Its ARN is
    /// `arn:aws:states:REGION:ACCOUNT:express:MACHINE:NAME:ID`; names need not be unique.
    pub(crate) fn start_express(
        self: &Arc<Self>,
        sm: &StateMachineRecord,
        machine: Arc<Machine>,
        name: Option<&str>,
        input: Value,
    ) -> Result<Arc<ExecEntry>, Error> {
        let name = match name {
            Some(n) => {
                check_name(n)?;
                n.to_string()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        if exceeds_payload_limit(&input) {
            return Err(Error::InvalidExecutionInput(
                "the input is larger than 256 KiB".into(),
            ));
        }
        let arn = self.arn(
            "express",
            &format!("{}:{name}:{}", sm.name, uuid::Uuid::new_v4()),
        );
        let mut record: ExecutionRecord = self.new_record(
            arn,
            sm.arn.clone(),
            sm.name.clone(),
            name,
            input,
            sm.role_arn.clone(),
            sm.definition.clone(),
            None,
        );
        record.express = true;
        record.events.clear();
        let entry = ExecEntry::new(record);
        tracing::debug!(execution = %entry.lock().arn, "express execution started");
        self.spawn_run(entry.clone(), machine, StartMode::Fresh);
        Ok(entry)
    }
}

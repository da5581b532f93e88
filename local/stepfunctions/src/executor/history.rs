//! The history of an execution: appending events, within the 25,000-event limit.

use super::now;
use super::run::Run;
use crate::error::StatesError;
use crate::store::{ExecutionRecord, HistoryEvent, MAX_HISTORY_EVENTS};
use serde_json::Value;

/// Appends an event to a record, numbered after the last one. An Express execution keeps no
/// history (AWS records none; its logs go to CloudWatch Logs).
pub(super) fn push_event(r: &mut ExecutionRecord, kind: &str, details: Option<(&str, Value)>) {
    if r.express {
        return;
    }
    let id = r.events.len() as u64 + 1;
    r.events.push(HistoryEvent {
        id,
        previous_event_id: id - 1,
        timestamp: now(),
        kind: kind.to_string(),
        details: details.map(|(k, v)| (k.to_string(), v)),
    });
}

impl Run {
    /// Appends a history event; fails with States.Runtime once the 25,000-event limit is reached
    /// (one event is kept for ExecutionFailed).
    pub(super) fn event(
        &self,
        kind: &str,
        details: Option<(&str, Value)>,
    ) -> Result<(), StatesError> {
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
}

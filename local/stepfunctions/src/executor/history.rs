//! The history of an execution: appending events, within the 25,000-event limit, and noting
//! whether the Map or Parallel attempt that is running has recorded its Started event.

use super::now;
use super::run::Run;
use crate::error::StatesError;
use crate::store::{ExecutionRecord, HistoryEvent, MAX_HISTORY_EVENTS};
use serde_json::Value;

tokio::task_local! {
    /// Set while a Map or Parallel state makes one attempt; its Started event marks it, so the
    /// retry loop knows whether to record the matching Failed event once no retry follows.
    static STARTED: std::cell::Cell<bool>;
}

/// Runs one attempt of a state, answering its result and whether it recorded a
/// `MapStateStarted` or `ParallelStateStarted` event.
pub(super) async fn tracking_start<T>(attempt: impl std::future::Future<Output = T>) -> (T, bool) {
    STARTED
        .scope(std::cell::Cell::new(false), async move {
            let out = attempt.await;
            (out, STARTED.with(|s| s.get()))
        })
        .await
}

/// Appends an event to a record, numbered after the last one, and answers its id. As on AWS,
/// the first state's entered event points back to 0, not to ExecutionStarted. An Express
/// execution keeps no history (AWS records none; its logs go to CloudWatch Logs): nothing is
/// appended and the id is 0.
pub(super) fn push_event(
    r: &mut ExecutionRecord,
    kind: &str,
    details: Option<(&str, Value)>,
) -> u64 {
    if r.express {
        return 0;
    }
    let id = r.events.len() as u64 + 1;
    let first_state = id == 2
        && kind.ends_with("StateEntered")
        && r.events
            .first()
            .is_some_and(|e| e.kind == "ExecutionStarted");
    r.events.push(HistoryEvent {
        id,
        previous_event_id: if first_state { 0 } else { id - 1 },
        timestamp: now(),
        kind: kind.to_string(),
        details: details.map(|(k, v)| (k.to_string(), v)),
    });
    id
}

impl Run {
    /// Appends a history event; fails with States.Runtime once the 25,000-event limit is reached
    /// (one event is kept for ExecutionFailed).
    pub(super) fn event(
        &self,
        kind: &str,
        details: Option<(&str, Value)>,
    ) -> Result<(), StatesError> {
        self.event_with_id(kind, details).map(drop)
    }

    /// Appends a history event and answers its id.
    pub(super) fn event_with_id(
        &self,
        kind: &str,
        details: Option<(&str, Value)>,
    ) -> Result<u64, StatesError> {
        let mut r = self.entry.lock();
        if r.events.len() >= MAX_HISTORY_EVENTS - 1 {
            r.not_redrivable = Some("Execution history event limit exceeded".into());
            return Err(StatesError::runtime(format!(
                "The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."
            )));
        }
        let id = push_event(&mut r, kind, details);
        drop(r);
        self.entry.touch();
        if kind == "MapStateStarted" || kind == "ParallelStateStarted" {
            let _ = STARTED.try_with(|s| s.set(true));
        }
        Ok(id)
    }
}

//! The Parallel state: every branch runs on the same input at once; the result is the array
//! of their outputs, and the first branch to fail fails the state (the others are dropped).

use super::StartMode;
use super::iterations::IterationResults;
use super::run::Run;
use crate::definition::{Machine, State};
use crate::error::StatesError;
use crate::variables;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;
use std::sync::Arc;

impl Run {
    /// Runs the branches that have no result yet and returns all results in branch order.
    pub(super) async fn parallel(
        &self,
        state: &State,
        branches: &[Arc<Machine>],
        input: Value,
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<Value, StatesError> {
        self.event("ParallelStateStarted", None)?;
        let mut results = IterationResults::new(self, state, branches.len(), top, mode);
        let mut running: FuturesUnordered<_> = branches
            .iter()
            .enumerate()
            .filter(|(i, _)| results.is_pending(*i))
            .map(|(i, branch)| {
                let input = input.clone();
                // A branch reads the outer variables; what it assigns stays inside it.
                let vars = (*variables::current()).clone();
                async move {
                    (
                        i,
                        self.run_states(branch, branch.start_at.clone(), input, false, vars)
                            .await,
                    )
                }
            })
            .collect();
        while let Some((i, result)) = running.next().await {
            match result {
                Ok(v) => results.fill(i, v),
                Err(e) => {
                    drop(running);
                    return Err(e);
                }
            }
        }
        self.event("ParallelStateSucceeded", None)?;
        Ok(results.into_output())
    }
}

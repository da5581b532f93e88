//! The Choice state: the first rule that matches names the next state, else the Default.

use super::run::{Run, Transition, input_path};
use crate::dataflow::evaluate;
use crate::definition::{Rule, State};
use crate::error::StatesError;
use serde_json::Value;

impl Run {
    /// Chooses the next state; States.NoChoiceMatched when no rule matches and there is no
    /// Default.
    pub(super) fn choice(
        &self,
        state: &State,
        choices: &[(Rule, String)],
        default: Option<&String>,
        raw: &Value,
        context: &Value,
    ) -> Result<Transition, StatesError> {
        let effective = input_path(state, raw, context)?;
        let mut chosen = None;
        for (rule, next) in choices {
            if evaluate(rule, &effective, context)? {
                chosen = Some(next.clone());
                break;
            }
        }
        let next = chosen.or_else(|| default.cloned()).ok_or_else(|| {
            StatesError::new(
                "States.NoChoiceMatched",
                format!(
                    "No Choice Rule matched and no Default was specified in state {:?}",
                    state.name
                ),
            )
        })?;
        let output = self.leave(state, &effective, context)?;
        Ok(Transition::Next(next, output))
    }
}

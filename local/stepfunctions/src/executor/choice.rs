//! The Choice state: the first rule that matches names the next state (with its Assign and,
//! in a JSONata state, its Output), else the Default (with the state's own Assign and Output).

use super::assign::{self, Assigned, Source};
use super::run::{Run, Transition, input_path};
use crate::dataflow::evaluate;
use crate::definition::{Choice, Rule, State};
use crate::error::StatesError;
use crate::jsonata::{self, wrong_type};
use serde_json::Value;

impl Run {
    /// Chooses the next state; States.NoChoiceMatched when no rule matches and there is no
    /// Default.
    pub(super) fn choice(
        &self,
        state: &State,
        choices: &[Choice],
        default: Option<&String>,
        raw: &Value,
        context: &Value,
    ) -> Result<(Transition, Assigned), StatesError> {
        let effective = input_path(state, raw, context)?;
        let states = state
            .jsonata
            .then(|| jsonata::states(raw, context, None, None));
        let mut chosen = None;
        for choice in choices {
            let matched = match (&choice.rule, &states) {
                (Rule::Condition(q), Some(states)) => {
                    let v = q.value(states, "Condition")?;
                    v.as_bool()
                        .ok_or_else(|| wrong_type(Some(q), "Condition", "boolean", &v))?
                }
                _ => evaluate(&choice.rule, &effective, context)?,
            };
            if matched {
                chosen = Some(choice);
                break;
            }
        }
        let (next, assign, output) = match (chosen, default) {
            (Some(c), _) => (&c.next, c.assign.as_ref(), c.output.as_ref()),
            (None, Some(d)) => (d, state.assign.as_ref(), state.output.as_ref()),
            (None, None) => {
                return Err(StatesError::new(
                    "States.NoChoiceMatched",
                    format!(
                        "No Choice Rule matched and no Default was specified in state {:?}",
                        state.name
                    ),
                ));
            }
        };
        let (output, assigned) = match &states {
            Some(states) => (
                assign::output_of(output, states, || raw.clone())?,
                assign::evaluate(assign, Source::Jsonata(states))?,
            ),
            None => (
                effective.clone(),
                assign::evaluate(
                    assign,
                    Source::Path {
                        value: &effective,
                        context,
                    },
                )?,
            ),
        };
        let output = self.leave(state, &output, context, &assigned)?;
        Ok((Transition::Next(next.clone(), output), assigned))
    }
}

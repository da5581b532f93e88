//! The states that end an execution: Succeed passes its input on as the output, Fail ends it
//! with an error and cause, given literally, by a path or by an intrinsic function.

use super::assign;
use super::run::{Run, Transition, input_path};
use crate::definition::{Expr, State};
use crate::error::StatesError;
use crate::jsonata::{self, wrong_type};
use serde_json::Value;

impl Run {
    /// Ends the machine successfully with the (path-filtered) input.
    pub(super) fn succeed(
        &self,
        state: &State,
        raw: &Value,
        context: &Value,
    ) -> Result<Transition, StatesError> {
        let effective = input_path(state, raw, context)?;
        let effective = match state.jsonata {
            true => assign::output(state, &jsonata::states(raw, context, None, None), || {
                raw.clone()
            })?,
            false => effective,
        };
        let output = self.leave(state, &effective, context, &None)?;
        Ok(Transition::End(output))
    }
}

/// The error a Fail state ends with (its Error and Cause, or ErrorPath and CausePath read from
/// the raw input), or the runtime error of a path that does not resolve to a string.
pub(super) fn fail_error(
    error: Option<&Expr>,
    cause: Option<&Expr>,
    raw: &Value,
    context: &Value,
) -> Result<StatesError, StatesError> {
    let text = |expr: Option<&Expr>, field: &str| -> Result<String, StatesError> {
        Ok(match expr {
            None => String::new(),
            Some(Expr::Static(s)) => s.clone(),
            Some(Expr::Path(p)) => match p.select(raw, context) {
                Some(Value::String(s)) => s,
                _ => {
                    return Err(StatesError::runtime(format!(
                        "The {field} '{}' does not resolve to a string in the input",
                        p.as_str()
                    )));
                }
            },
            Some(Expr::Call(c)) => match c.eval(raw, context)? {
                Value::String(s) => s,
                other => other.to_string(),
            },
            Some(Expr::Query(q)) => {
                let field = if field == "ErrorPath" {
                    "Error"
                } else {
                    "Cause"
                };
                match q.value(&jsonata::states(raw, context, None, None), field)? {
                    Value::String(s) => s,
                    other => return Err(wrong_type(Some(q), field, "string", &other)),
                }
            }
        })
    };
    Ok(StatesError::new(
        text(error, "ErrorPath")?,
        text(cause, "CausePath")?,
    ))
}

//! What a state hands on besides its output: the variables its Assign sets, and in a JSONata
//! state the Output field, both evaluated with the variables as they were when the state was
//! entered.

use crate::dataflow::{render, render_query};
use crate::definition::{State, Template};
use crate::error::StatesError;
use crate::jsonata::{QUERY_ERROR, wrong_type};
use crate::variables;
use serde_json::{Map, Value};

/// The variables a state assigns, if it has an Assign.
pub(super) type Assigned = Option<Map<String, Value>>;

/// Where an Assign reads from: in a JSONata state the `$states` variable, in a JSONPath state
/// `$` (the state's result, or its input for a state without work) and `$$`.
pub(super) enum Source<'a> {
    Jsonata(&'a Value),
    Path {
        value: &'a Value,
        context: &'a Value,
    },
}

/// Evaluates `assign` (an Assign field) and checks its names and sizes.
pub(super) fn evaluate(
    assign: Option<&Template>,
    source: Source<'_>,
) -> Result<Assigned, StatesError> {
    let Some(template) = assign else {
        return Ok(None);
    };
    let value = match source {
        Source::Jsonata(states) => render_query(template, states, "Assign")?,
        Source::Path { value, context } => render(template, value, context, "Assign")?,
    };
    let Value::Object(assigned) = value else {
        return Err(wrong_type(None, "Assign", "object", &value));
    };
    if let Some(name) = assigned.keys().find(|k| !variables::valid_name(k)) {
        return Err(StatesError::new(
            QUERY_ERROR,
            format!("The Assign field names an invalid variable '{name}'"),
        ));
    }
    variables::check_assignment(&assigned)?;
    Ok(Some(assigned))
}

/// A JSONata state's output: its Output field evaluated with `states`, or `default`.
pub(super) fn output(
    state: &State,
    states: &Value,
    default: impl FnOnce() -> Value,
) -> Result<Value, StatesError> {
    output_of(state.output.as_ref(), states, default)
}

/// An Output field (of a state, a choice rule or a catcher) evaluated with `states`, or
/// `default` when there is none.
pub(super) fn output_of(
    output: Option<&Template>,
    states: &Value,
    default: impl FnOnce() -> Value,
) -> Result<Value, StatesError> {
    match output {
        Some(template) => render_query(template, states, "Output"),
        None => Ok(default()),
    }
}

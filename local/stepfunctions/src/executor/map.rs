//! The inline Map state, and what both Map modes share: the items (ItemsPath), each item's
//! input (ItemSelector) and numbers given literally or by a path (MaxConcurrency and friends).

use super::StartMode;
use super::iterations::IterationResults;
use super::run::Run;
use crate::dataflow::{render, select_path};
use crate::definition::{MapSpec, NumberOr, State};
use crate::error::StatesError;
use crate::jsonata::{self, wrong_type};
use crate::store::lock;
use crate::variables;
use futures::stream::StreamExt;
use serde_json::{Value, json};
use std::sync::Mutex;

/// A number field given literally or by a path (`<field>Path`) to a non-negative number.
pub(super) fn resolve_number(
    value: Option<&NumberOr>,
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
        Some(NumberOr::Query(q)) => {
            let v = q.value(&jsonata::states(input, context, None, None), field)?;
            match v.as_f64() {
                Some(n) if n >= 0.0 => Ok(Some(n)),
                _ => Err(wrong_type(Some(q), field, "number", &v)),
            }
        }
    }
}

/// One item's input: the item itself, or ItemSelector rendered with `$$.Map.Item`.
fn item_input(
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

/// The items ItemsPath selects (or, in a JSONata state, Items gives), which must be an array.
pub(super) fn items_from_path(
    spec: &MapSpec,
    effective: &Value,
    context: &Value,
) -> Result<Vec<Value>, StatesError> {
    if let Some(template) = &spec.items {
        return match render(template, effective, context, "Items")? {
            Value::Array(items) => Ok(items),
            other => Err(wrong_type(None, "Items", "array", &other)),
        };
    }
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

/// Every item's input, in item order.
pub(super) fn item_inputs(
    spec: &MapSpec,
    effective: &Value,
    context: &Value,
    items: &[Value],
) -> Result<Vec<Value>, StatesError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| item_input(spec, effective, context, i, item))
        .collect()
}

impl Run {
    /// Runs the processor once per item, at most MaxConcurrency at a time; the first failed
    /// iteration fails the state and aborts the iterations in flight.
    pub(super) async fn inline_map(
        &self,
        state: &State,
        spec: &MapSpec,
        effective: &Value,
        context: &Value,
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<Value, StatesError> {
        let items = items_from_path(spec, effective, context)?;
        let limit = resolve_number(
            spec.max_concurrency.as_ref(),
            effective,
            context,
            "MaxConcurrency",
        )?
        .unwrap_or(0.0) as usize;
        let inputs = item_inputs(spec, effective, context, &items)?;
        self.event(
            "MapStateStarted",
            Some((
                "mapStateStartedEventDetails",
                json!({"length": inputs.len()}),
            )),
        )?;
        let mut results = IterationResults::new(self, state, inputs.len(), top, mode);
        let pending: Vec<(usize, Value)> = inputs
            .into_iter()
            .enumerate()
            .filter(|(i, _)| results.is_pending(*i))
            .collect();
        let limit = if limit == 0 {
            pending.len().max(1)
        } else {
            limit
        };
        let name = state.name.clone();
        // Each iteration reads the outer variables; what it assigns stays inside it.
        let outer_vars = variables::current();
        let outer_vars = &outer_vars;
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
                lock(in_flight).insert(i);
                match self
                    .run_states(
                        &spec.processor,
                        spec.processor.start_at.clone(),
                        input,
                        false,
                        (**outer_vars).clone(),
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
            lock(in_flight).remove(&i);
            match result {
                Ok(v) => results.fill(i, v),
                Err(e) => {
                    drop(stream);
                    let aborted: Vec<usize> =
                        std::mem::take(&mut *lock(in_flight)).into_iter().collect();
                    for index in aborted {
                        let _ = self.event(
                            "MapIterationAborted",
                            Some((
                                "mapIterationAbortedEventDetails",
                                json!({"name": state.name, "index": index}),
                            )),
                        );
                    }
                    return Err(e);
                }
            }
        }
        self.event("MapStateSucceeded", None)?;
        Ok(results.into_output())
    }
}

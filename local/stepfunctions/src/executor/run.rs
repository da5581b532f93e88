//! Running the states of a machine (the top level, a Parallel branch or an inline Map
//! iteration) one after another: entering and leaving each state, sending it to the module of
//! its type, and the input and output processing of the states that do work.

use super::assign::{self, Assigned, Source};
use super::task::task_timeout;
use super::{Engine, StartMode, check_payload, iso, now};
use crate::dataflow::{apply_result_path, render, render_query, select_path};
use crate::definition::{Kind, Machine, State};
use crate::error::StatesError;
use crate::jsonata::{self, wrong_type};
use crate::store::{Checkpoint, ExecEntry, lock};
use crate::variables;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Where a state sends the execution.
pub(super) enum Transition {
    Next(String, Value),
    End(Value),
}

/// One running execution.
pub(super) struct Run {
    pub(super) engine: Arc<Engine>,
    pub(super) entry: Arc<ExecEntry>,
    pub(super) cancel: CancellationToken,
    pub(super) base_context: Value,
    pub(super) sm_arn: String,
    pub(super) sm_name: String,
    /// Taken by the first state that runs, so only it reuses what a resume or redrive kept.
    pub(super) mode: Mutex<Option<StartMode>>,
}

impl Run {
    /// The context object (`$$`) of a state: the execution's, plus the state's name and entry
    /// time, and for a Task its retry count (AWS gives other states no `RetryCount`).
    pub(super) fn context(
        &self,
        state: &str,
        entered: DateTime<Utc>,
        retry_count: Option<u32>,
    ) -> Value {
        let mut context = self.base_context.clone();
        context["State"] = json!({"Name": state, "EnteredTime": iso(entered)});
        if let Some(count) = retry_count {
            context["State"]["RetryCount"] = count.into();
        }
        context
    }

    /// How the execution (re)started, for the first state that asks.
    fn take_mode(&self) -> Option<StartMode> {
        lock(&self.mode).take()
    }

    /// Runs states from `start` until one ends the machine; `top` marks the execution's own
    /// states, whose entry is checkpointed for a resume or redrive.
    /// `vars` are the variables the first state sees: none at the start of an execution, the
    /// outer scope's for a Parallel branch or an inline Map iteration.
    pub(super) fn run_states<'a>(
        &'a self,
        machine: &'a Arc<Machine>,
        start: String,
        input: Value,
        top: bool,
        vars: Map<String, Value>,
    ) -> BoxFuture<'a, Result<Value, StatesError>> {
        Box::pin(async move {
            let mut name = start;
            let mut input = input;
            // Shared with each state's scope without a copy; copied only when a state assigns.
            let mut vars = Arc::new(vars);
            loop {
                let Some(state) = machine.states.get(&name).cloned() else {
                    return Err(StatesError::runtime(format!(
                        "The state {name:?} does not exist"
                    )));
                };
                if top {
                    let mut r = self.entry.lock();
                    match r.checkpoint.as_mut() {
                        // Re-entering the checkpoint state (resume, redrive) keeps what it left.
                        Some(c) if c.state == name => {
                            c.input = input.clone();
                            c.variables = (*vars).clone();
                        }
                        _ => {
                            r.open_map_run = None;
                            r.checkpoint = Some(Checkpoint {
                                state: name.clone(),
                                input: input.clone(),
                                iterations: None,
                                variables: (*vars).clone(),
                            });
                        }
                    }
                    drop(r);
                    self.entry.touch();
                }
                let entered = now();
                let entered_id = self.event_with_id(
                    &format!("{}StateEntered", state.event_prefix()),
                    Some((
                        "stateEnteredEventDetails",
                        json!({"name": name, "input": input.to_string(), "inputDetails": {"truncated": false}}),
                    )),
                )?;
                check_payload(&input, || {
                    format!("The state/task input of {name:?} exceeds the 256 KiB limit")
                })?;
                let top_mode = if top { self.take_mode() } else { None };
                let (transition, assigned) = variables::scoped(
                    Arc::clone(&vars),
                    self.run_state(&state, input, (entered, entered_id), top, top_mode),
                )
                .await
                .map_err(|e| e.located(&name, entered_id))?;
                if let Some(assigned) = assigned {
                    variables::apply(Arc::make_mut(&mut vars), assigned)
                        .map_err(|e| e.located(&name, entered_id))?;
                }
                match transition {
                    Transition::Next(next, output) => {
                        name = next;
                        input = output;
                    }
                    Transition::End(output) => return Ok(output),
                }
            }
        })
    }

    /// Records StateExited, once the output is known to fit the payload limit, with the
    /// variables the state assigned (each as JSON text, as AWS records them).
    pub(super) fn exited(
        &self,
        state: &State,
        output: &Value,
        assigned: &Assigned,
    ) -> Result<(), StatesError> {
        check_payload(output, || {
            format!(
                "The state/task output of {:?} exceeds the 256 KiB limit",
                state.name
            )
        })?;
        let mut details = json!({"name": state.name, "output": output.to_string(), "outputDetails": {"truncated": false}});
        if let Some(assigned) = assigned {
            let texts: Map<String, Value> = assigned
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
                .collect();
            details["assignedVariables"] = Value::Object(texts);
            details["assignedVariablesDetails"] = json!({"truncated": false});
        }
        self.event(
            &format!("{}StateExited", state.event_prefix()),
            Some(("stateExitedEventDetails", details)),
        )
    }

    /// Where a state that did not fail goes next: its Next, or the end.
    pub(super) fn transition(state: &State, output: Value) -> Transition {
        match &state.next {
            Some(next) => Transition::Next(next.clone(), output),
            None => Transition::End(output),
        }
    }

    /// Runs one state: the flow states here, the states that do work through Retry and Catch.
    async fn run_state(
        &self,
        state: &State,
        raw: Value,
        entered: (DateTime<Utc>, u64),
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<(Transition, Assigned), StatesError> {
        let context = self.context(&state.name, entered.0, None);
        match &state.kind {
            Kind::Choice { choices, default } => {
                self.choice(state, choices, default.as_ref(), &raw, &context)
            }
            Kind::Succeed => Ok((self.succeed(state, &raw, &context)?, None)),
            Kind::Fail { error, cause } => Err(super::succeed_fail::fail_error(
                error.as_ref(),
                cause.as_ref(),
                &raw,
                &context,
            )?),
            Kind::Wait(wait) => self.wait(state, wait, &raw, &context).await,
            _ => self.run_with_retry(state, raw, entered, top, mode).await,
        }
    }

    /// Applies OutputPath to what a state passes on and records that the state exited.
    pub(super) fn leave(
        &self,
        state: &State,
        effective: &Value,
        context: &Value,
        assigned: &Assigned,
    ) -> Result<Value, StatesError> {
        let output = output_path(state, effective, context)?;
        self.exited(state, &output, assigned)?;
        Ok(output)
    }

    /// One attempt at a Pass, Task, Map or Parallel state: input processing, the work, and
    /// output processing, and the variables it assigns. Its errors are what Retry and Catch
    /// see.
    pub(super) async fn attempt(
        &self,
        state: &State,
        raw: &Value,
        context: &Value,
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<(Value, Assigned), StatesError> {
        if state.jsonata {
            return self.attempt_jsonata(state, raw, context, top, mode).await;
        }
        let effective = input_path(state, raw, context)?;
        let params = match &state.parameters {
            Some(t) => render(t, &effective, context, "Parameters")?,
            None => effective.clone(),
        };
        let result = match &state.kind {
            Kind::Pass { result } => result.clone().unwrap_or(params),
            Kind::Task {
                resource,
                timeout_seconds,
                timeout_seconds_path,
                ..
            } => {
                let timeout = task_timeout(
                    *timeout_seconds,
                    timeout_seconds_path.as_ref(),
                    &effective,
                    context,
                )?;
                self.task(resource, params, timeout).await?
            }
            Kind::Parallel { branches } => {
                self.parallel(state, branches, params, top, mode).await?
            }
            Kind::Map(spec) if spec.distributed => {
                self.distributed_map(state, spec, &effective, context, top, mode)
                    .await?
            }
            Kind::Map(spec) => {
                self.inline_map(state, spec, &effective, context, top, mode)
                    .await?
            }
            _ => unreachable!("only Pass, Task, Map and Parallel are attempted"),
        };
        let selected = match &state.result_selector {
            Some(t) => render(t, &result, context, "ResultSelector")?,
            None => result,
        };
        let assigned = assign::evaluate(
            state.assign.as_ref(),
            Source::Path {
                value: &selected,
                context,
            },
        )?;
        let combined = apply_result_path(state.result_path.as_ref(), raw, selected)?;
        Ok((output_path(state, &combined, context)?, assigned))
    }

    /// One attempt at a JSONata Pass, Task, Map or Parallel state: Arguments, the work, then
    /// Output and Assign, which read the result as `$states.result`.
    async fn attempt_jsonata(
        &self,
        state: &State,
        raw: &Value,
        context: &Value,
        top: bool,
        mode: Option<StartMode>,
    ) -> Result<(Value, Assigned), StatesError> {
        let states_in = jsonata::states(raw, context, None, None);
        let arguments = match &state.arguments {
            Some(t) => render_query(t, &states_in, "Arguments")?,
            None => raw.clone(),
        };
        let result = match &state.kind {
            Kind::Pass { .. } => None,
            Kind::Task {
                resource,
                timeout_seconds,
                timeout_query,
                ..
            } => {
                let timeout =
                    match timeout_query {
                        Some(q) => {
                            let v = q.value(&states_in, "TimeoutSeconds")?;
                            Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                                wrong_type(Some(q), "TimeoutSeconds", "integer", &v)
                            })?)
                        }
                        None => *timeout_seconds,
                    };
                Some(self.task(resource, arguments, timeout).await?)
            }
            Kind::Parallel { branches } => {
                Some(self.parallel(state, branches, arguments, top, mode).await?)
            }
            Kind::Map(spec) if spec.distributed => Some(
                self.distributed_map(state, spec, raw, context, top, mode)
                    .await?,
            ),
            Kind::Map(spec) => Some(
                self.inline_map(state, spec, raw, context, top, mode)
                    .await?,
            ),
            _ => unreachable!("only Pass, Task, Map and Parallel are attempted"),
        };
        let states_out = jsonata::states(raw, context, result.as_ref(), None);
        let assigned = assign::evaluate(state.assign.as_ref(), Source::Jsonata(&states_out))?;
        let output = assign::output(state, &states_out, || result.unwrap_or_else(|| raw.clone()))?;
        Ok((output, assigned))
    }
}

/// Applies a state's InputPath to its raw input.
pub(super) fn input_path(
    state: &State,
    raw: &Value,
    context: &Value,
) -> Result<Value, StatesError> {
    select_path(state.input_path.as_ref(), raw, context, "InputPath")
}

/// Applies a state's OutputPath.
fn output_path(state: &State, value: &Value, context: &Value) -> Result<Value, StatesError> {
    select_path(state.output_path.as_ref(), value, context, "OutputPath")
}

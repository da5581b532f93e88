//! The Wait state: a number of seconds or a timestamp, given literally or by a path; the delay
//! is scaled by the engine's `time_scale`.

use super::assign::{self, Assigned, Source};
use super::now;
use super::run::{Run, Transition, input_path};
use crate::definition::{State, WaitFor, parse_timestamp};
use crate::error::StatesError;
use crate::jsonata::{self, wrong_type};
use chrono::Utc;
use serde_json::Value;

impl Run {
    /// Waits, then passes its (path-filtered) input on.
    pub(super) async fn wait(
        &self,
        state: &State,
        wait: &WaitFor,
        raw: &Value,
        context: &Value,
    ) -> Result<(Transition, Assigned), StatesError> {
        let effective = input_path(state, raw, context)?;
        let states = state
            .jsonata
            .then(|| jsonata::states(raw, context, None, None));
        let seconds = match wait {
            WaitFor::SecondsQuery(q) => {
                let v = q.value(states.as_ref().unwrap_or(&Value::Null), "Seconds")?;
                v.as_u64()
                    .ok_or_else(|| wrong_type(Some(q), "Seconds", "integer", &v))?
                    as f64
            }
            WaitFor::TimestampQuery(q) => {
                let v = q.value(states.as_ref().unwrap_or(&Value::Null), "Timestamp")?;
                match v.as_str().and_then(parse_timestamp) {
                    Some(t) => until(&t),
                    None => return Err(wrong_type(Some(q), "Timestamp", "timestamp", &v)),
                }
            }
            WaitFor::Seconds(n) => *n as f64,
            WaitFor::SecondsPath(p) => match p.select(&effective, context).and_then(|v| v.as_u64())
            {
                Some(n) => n as f64,
                None => {
                    return Err(StatesError::runtime(format!(
                        "The SecondsPath parameter '{}' does not reference a non-negative integer",
                        p.as_str()
                    )));
                }
            },
            WaitFor::Timestamp(t) => until(t),
            WaitFor::TimestampPath(p) => {
                match p
                    .select(&effective, context)
                    .and_then(|v| v.as_str().and_then(parse_timestamp))
                {
                    Some(t) => until(&t),
                    None => {
                        return Err(StatesError::runtime(format!(
                            "The TimestampPath parameter '{}' does not reference a valid ISO-8601 timestamp",
                            p.as_str()
                        )));
                    }
                }
            }
        };
        self.engine.sleep(seconds, &self.cancel).await;
        let (output, assigned) = match &states {
            Some(states) => (
                assign::output(state, states, || raw.clone())?,
                assign::evaluate(state.assign.as_ref(), Source::Jsonata(states))?,
            ),
            None => (
                effective.clone(),
                assign::evaluate(
                    state.assign.as_ref(),
                    Source::Path {
                        value: &effective,
                        context,
                    },
                )?,
            ),
        };
        let output = self.leave(state, &output, context, &assigned)?;
        Ok((Self::transition(state, output), assigned))
    }
}

/// Seconds from now until `t` (0 when it has passed).
fn until(t: &chrono::DateTime<chrono::FixedOffset>) -> f64 {
    let delta = t.with_timezone(&Utc) - now();
    (delta.num_milliseconds().max(0) as f64) / 1000.0
}

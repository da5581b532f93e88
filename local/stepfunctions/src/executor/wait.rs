//! The Wait state: a number of seconds or a timestamp, given literally or by a path; the delay
//! is scaled by the engine's `time_scale`.

use super::now;
use super::run::{Run, Transition, input_path};
use crate::definition::{State, WaitFor, parse_timestamp};
use crate::error::StatesError;
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
    ) -> Result<Transition, StatesError> {
        let effective = input_path(state, raw, context)?;
        let seconds = match wait {
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
        let output = self.leave(state, &effective, context)?;
        Ok(Self::transition(state, output))
    }
}

/// Seconds from now until `t` (0 when it has passed).
fn until(t: &chrono::DateTime<chrono::FixedOffset>) -> f64 {
    let delta = t.with_timezone(&Utc) - now();
    (delta.num_milliseconds().max(0) as f64) / 1000.0
}

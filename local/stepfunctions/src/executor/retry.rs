//! Retry and Catch around the states that do work (Pass, Task, Map, Parallel): the first
//! retrier whose ErrorEquals matches retries with exponential backoff until its MaxAttempts,
//! then the first matching catcher sends the error output to its Next.

use super::StartMode;
use super::assign::{self, Assigned, Source};
use super::history::tracking_start;
use super::run::{Run, Transition};
use crate::dataflow::apply_result_path;
use crate::definition::{Kind, Retrier, State};
use crate::error::StatesError;
use crate::jsonata;
use chrono::{DateTime, Utc};
use serde_json::Value;

impl Run {
    /// Attempts the state until it succeeds, its error is caught, or no retrier is left. A Map
    /// or Parallel records its Failed event once, when no retry follows, as AWS does.
    pub(super) async fn run_with_retry(
        &self,
        state: &State,
        raw: Value,
        entered: (DateTime<Utc>, u64),
        top: bool,
        mut mode: Option<StartMode>,
    ) -> Result<(Transition, Assigned), StatesError> {
        let mut attempts = vec![0u32; state.retry.len()];
        let mut retry_count = 0;
        let is_task = matches!(state.kind, Kind::Task { .. });
        loop {
            let context = self.context(&state.name, entered.0, is_task.then_some(retry_count));
            let (result, started) =
                tracking_start(self.attempt(state, &raw, &context, top, mode.take())).await;
            let error = match result {
                Ok((output, assigned)) => {
                    self.exited(state, &output, &assigned)?;
                    return Ok((Self::transition(state, output), assigned));
                }
                Err(error) => error.located(&state.name, entered.1),
            };
            let retrier = match error.is_terminal() {
                true => None,
                false => state
                    .retry
                    .iter()
                    .position(|r| error.matches(&r.error_equals))
                    .filter(|i| attempts[*i] < state.retry[*i].max_attempts),
            };
            if let Some(i) = retrier {
                let delay = backoff(&state.retry[i], attempts[i]);
                attempts[i] += 1;
                retry_count += 1;
                tracing::debug!(state = %state.name, error = %error.error, delay, "retrying");
                self.engine.sleep(delay, &self.cancel).await;
                continue;
            }
            if started && !self.cancel.is_cancelled() {
                let _ = self.event(&format!("{}StateFailed", state.event_prefix()), None);
            }
            if error.is_terminal() {
                return Err(error);
            }
            if let Some(catcher) = state.catch.iter().find(|c| error.matches(&c.error_equals)) {
                // A caught error sets the catcher's variables, not the state's.
                let error_output = error.to_output();
                let (output, assigned) = if state.jsonata {
                    let states = jsonata::states(&raw, &context, None, Some(&error_output));
                    (
                        assign::output_of(catcher.output.as_ref(), &states, || {
                            error_output.clone()
                        })?,
                        assign::evaluate(catcher.assign.as_ref(), Source::Jsonata(&states))?,
                    )
                } else {
                    let assigned = assign::evaluate(
                        catcher.assign.as_ref(),
                        Source::Path {
                            value: &error_output,
                            context: &context,
                        },
                    )?;
                    let output =
                        apply_result_path(catcher.result_path.as_ref(), &raw, error_output)?;
                    (output, assigned)
                };
                self.exited(state, &output, &assigned)?;
                return Ok((Transition::Next(catcher.next.clone(), output), assigned));
            }
            return Err(error);
        }
    }
}

/// The delay in seconds before retry number `attempt` (0-based) of a retrier:
/// IntervalSeconds × BackoffRate^attempt, capped at MaxDelaySeconds, drawn uniformly below
/// that with the FULL jitter strategy.
fn backoff(retrier: &Retrier, attempt: u32) -> f64 {
    let mut delay = retrier.interval_seconds * retrier.backoff_rate.powi(attempt as i32);
    if let Some(max) = retrier.max_delay_seconds {
        delay = delay.min(max);
    }
    if retrier.full_jitter {
        use rand::Rng as _;
        delay = rand::rng().random_range(0.0..=delay);
    }
    delay
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retrier(max_delay_seconds: Option<f64>, full_jitter: bool) -> Retrier {
        Retrier {
            error_equals: vec!["States.ALL".into()],
            interval_seconds: 2.0,
            max_attempts: 5,
            backoff_rate: 3.0,
            max_delay_seconds,
            full_jitter,
        }
    }

    #[test]
    fn delays_grow_by_the_backoff_rate_up_to_max_delay_seconds() {
        let r = retrier(Some(20.0), false);
        let delays: Vec<f64> = (0..4).map(|attempt| backoff(&r, attempt)).collect();
        assert_eq!(delays, [2.0, 6.0, 18.0, 20.0]);
    }

    #[test]
    fn full_jitter_draws_a_delay_no_longer_than_the_backoff() {
        let r = retrier(None, true);
        for _ in 0..100 {
            let delay = backoff(&r, 2);
            assert!((0.0..=18.0).contains(&delay), "{delay}");
        }
    }
}

//! Dataset `triggers`: checking them at CreateDataset/UpdateDataset, and the local host's
//! scheduler that creates a content of each dataset whose schedule came due (the content's
//! `scheduleTime` is the scheduled instant). Triggering datasets are followed where a content
//! succeeds (`api::runs`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::catalog::DatasetDef;
use crate::config::ScheduleClock;
use crate::cron::ScheduleExpr;
use crate::error::Error;
use crate::validate::check_resource_name;

/// Most triggers one dataset may have (the service model's limit).
pub const MAX_TRIGGERS: usize = 5;

/// A missed schedule fires at most once when the service sees it again; it looks back no
/// further than this many seconds (of the schedule's clock), so that a long stop does not
/// make it walk a year of minutes.
const LOOK_BACK_SECONDS: f64 = 2.0 * 86400.0;

fn invalid(message: String) -> Error {
    Error::InvalidRequest(message)
}

/// Checks `triggers`: at most five, each a `schedule` with a valid expression or a `dataset`
/// with a valid name other than `dataset` itself.
pub fn check_triggers(triggers: &Value, dataset: &str) -> Result<(), Error> {
    if triggers.is_null() {
        return Ok(());
    }
    let list = triggers
        .as_array()
        .ok_or_else(|| invalid("triggers must be a list".into()))?;
    if list.len() > MAX_TRIGGERS {
        return Err(invalid(format!(
            "triggers takes at most {MAX_TRIGGERS} triggers, got {}",
            list.len()
        )));
    }
    for (i, trigger) in list.iter().enumerate() {
        let field = |f: &str| trigger.get(f).filter(|v| !v.is_null());
        match (field("schedule"), field("dataset")) {
            (Some(schedule), None) => {
                let expression = schedule
                    .get("expression")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(format!("triggers[{i}].schedule.expression is required"))
                    })?;
                ScheduleExpr::parse(expression).map_err(|e| {
                    invalid(format!(
                        "triggers[{i}].schedule.expression '{expression}' is not a valid \
                         schedule expression: {e}"
                    ))
                })?;
            }
            (None, Some(other)) => {
                let name = other
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("triggers[{i}].dataset.name is required")))?;
                check_resource_name(&format!("triggers[{i}].dataset.name"), name)?;
                if name == dataset {
                    return Err(invalid(format!(
                        "triggers[{i}].dataset.name: the dataset {dataset} cannot trigger itself"
                    )));
                }
            }
            _ => {
                return Err(invalid(format!(
                    "triggers[{i}] takes exactly one of schedule and dataset"
                )));
            }
        }
    }
    Ok(())
}

/// The names of the datasets whose succeeded contents trigger this one.
pub fn triggered_by(triggers: &Value) -> impl Iterator<Item = &str> {
    triggers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("dataset")?.get("name")?.as_str())
}

/// The schedules of stored (already checked) triggers.
pub fn schedules(triggers: &Value) -> Vec<ScheduleExpr> {
    triggers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("schedule")?.get("expression")?.as_str())
        .filter_map(|e| ScheduleExpr::parse(e).ok())
        .collect()
}

/// Whether setting `triggers` on `dataset` would close a loop of triggering datasets (`A`
/// triggers `B` triggers `A`), given every stored dataset.
pub fn closes_a_loop(dataset: &str, triggers: &Value, all: &[DatasetDef]) -> bool {
    let mut seen: Vec<String> = Vec::new();
    let mut pending: Vec<String> = triggered_by(triggers).map(str::to_owned).collect();
    while let Some(name) = pending.pop() {
        if name == dataset {
            return true;
        }
        if seen.contains(&name) {
            continue;
        }
        if let Some(def) = all.iter().find(|d| d.name == name) {
            pending.extend(triggered_by(&def.triggers).map(str::to_owned));
        }
        seen.push(name);
    }
    false
}

/// The newest instant of `schedules` after `after` and at or before `now`, if any.
pub fn due(schedules: &[ScheduleExpr], after: f64, now: f64, anchor: f64) -> Option<f64> {
    let mut latest = None;
    for schedule in schedules {
        let mut t = after.max(now - LOOK_BACK_SECONDS);
        while let Some(next) = schedule.next_after(t, anchor).filter(|n| *n <= now) {
            latest = Some(latest.map_or(next, |l: f64| l.max(next)));
            t = next;
        }
    }
    latest
}

fn real_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The schedules' clock: real time, or real time sped up from `origin` so that one minute of
/// schedule lasts `clock.minute`.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    origin: f64,
    speed: f64,
}

impl Timeline {
    /// A timeline running `clock`'s speed from now.
    pub fn new(clock: ScheduleClock) -> Self {
        let minute = clock.minute.as_secs_f64().max(0.001);
        Self {
            origin: real_now(),
            speed: 60.0 / minute,
        }
    }

    /// A real instant on this timeline.
    pub fn at(&self, real: f64) -> f64 {
        self.origin + (real - self.origin) * self.speed
    }

    /// Now, on this timeline.
    pub fn now(&self) -> f64 {
        self.at(real_now())
    }
}

/// Runs `tick` every `clock.check_every` until aborted.
pub(crate) fn spawn<F, Fut>(clock: ScheduleClock, mut tick: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<usize, Error>> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(clock.check_every.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = tick().await {
                tracing::warn!(error = %e, "running dataset schedules failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn triggers_name_a_bad_expression_and_refuse_a_dataset_triggering_itself() {
        let bad = json!([{ "schedule": { "expression": "cron(0 12 * * * *)" } }]);
        let e = check_triggers(&bad, "d").unwrap_err().to_string();
        assert!(e.contains("'cron(0 12 * * * *)'"), "{e}");
        let own = json!([{ "dataset": { "name": "d" } }]);
        assert!(check_triggers(&own, "d").is_err());
        let good = json!([{ "schedule": { "expression": "rate(1 day)" } }, { "dataset": { "name": "e" } }]);
        assert!(check_triggers(&good, "d").is_ok());
        assert_eq!(triggered_by(&good).collect::<Vec<_>>(), ["e"]);
        assert_eq!(schedules(&good).len(), 1);
    }

    #[test]
    fn a_loop_of_triggering_datasets_is_found_through_the_stored_ones() {
        let stored = |name: &str, trigger: &str| DatasetDef {
            name: name.into(),
            actions: json!([]),
            triggers: json!([{ "dataset": { "name": trigger } }]),
            content_delivery_rules: json!([]),
            retention_period: json!({}),
            versioning_configuration: json!({}),
            late_data_rules: json!([]),
            creation_time: 0.0,
            last_update_time: 0.0,
            tags: Vec::new(),
            contents: Vec::new(),
            delta_end: None,
            last_scheduled: None,
        };
        // b runs after a, c after b: a running after c closes the loop, after b does not.
        let all = [stored("b", "a"), stored("c", "b")];
        let after = |t: &str| json!([{ "dataset": { "name": t } }]);
        assert!(closes_a_loop("a", &after("c"), &all));
        assert!(!closes_a_loop("a", &after("x"), &all));
        assert!(!closes_a_loop("d", &after("c"), &all));
    }

    #[test]
    fn only_the_newest_missed_instant_is_due() {
        let every_minute = [ScheduleExpr::parse("cron(* * * * ? *)").unwrap()];
        assert_eq!(due(&every_minute, 0.0, 59.0, 0.0), None);
        assert_eq!(due(&every_minute, 0.0, 200.0, 0.0), Some(180.0));
        assert_eq!(due(&every_minute, 180.0, 200.0, 0.0), None);
    }

    #[test]
    fn a_sped_up_timeline_runs_a_minute_in_the_given_time() {
        let t = Timeline::new(ScheduleClock {
            minute: Duration::from_secs(1),
            check_every: Duration::from_millis(100),
        });
        assert_eq!(t.at(t.origin + 2.0) - t.origin, 120.0);
    }
}

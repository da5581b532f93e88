//! The Task state: its timeout (TimeoutSeconds or TimeoutSecondsPath) and the history events
//! around the call, named as AWS names them for service integrations (`Task*`) and for the
//! legacy Lambda integration (`LambdaFunction*`). The calls themselves are in `integrations`.

use super::check_payload;
use super::run::Run;
use crate::definition::Resource;
use crate::error::StatesError;
use crate::jsonpath::Path;
use serde_json::{Value, json};
use std::time::Duration;

/// A Task's timeout in seconds: TimeoutSeconds, or the positive integer TimeoutSecondsPath
/// selects from the effective input.
pub(super) fn task_timeout(
    seconds: Option<u64>,
    path: Option<&Path>,
    effective: &Value,
    context: &Value,
) -> Result<Option<u64>, StatesError> {
    Ok(match (seconds, path) {
        (Some(t), _) => Some(t),
        (None, Some(p)) => Some(
            p.select(effective, context)
                .and_then(|v| v.as_u64())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    StatesError::runtime(format!(
                        "The TimeoutSecondsPath '{}' does not reference a positive integer",
                        p.as_str()
                    ))
                })?,
        ),
        (None, None) => None,
    })
}

/// How a Task's history events are named and what they carry: `TaskScheduled` and friends
/// name the integration's resource type and resource; the legacy Lambda integration (a
/// function ARN as Resource) records `LambdaFunctionScheduled` and friends without them.
struct TaskEvents {
    legacy: bool,
    resource_type: &'static str,
    resource_name: &'static str,
}

impl TaskEvents {
    fn of(resource: &Resource) -> TaskEvents {
        let (resource_type, resource_name) = match resource {
            Resource::LambdaInvoke => ("lambda", "invoke"),
            Resource::StartExecution => ("states", "startExecution"),
            Resource::LambdaArn(_) => ("lambda", ""),
        };
        TaskEvents {
            legacy: matches!(resource, Resource::LambdaArn(_)),
            resource_type,
            resource_name,
        }
    }

    /// Records `<Task|LambdaFunction><phase>` with `<task|lambdaFunction><phase>EventDetails`,
    /// adding the resource fields to service-integration details.
    fn record(&self, run: &Run, phase: &str, details: Option<Value>) -> Result<(), StatesError> {
        let (kind, key) = if self.legacy {
            ("LambdaFunction", "lambdaFunction")
        } else {
            ("Task", "task")
        };
        let key = format!("{key}{phase}EventDetails");
        let details = details.map(|mut d| {
            if !self.legacy {
                d["resourceType"] = json!(self.resource_type);
                d["resource"] = json!(self.resource_name);
            }
            d
        });
        run.event(
            &format!("{kind}{phase}"),
            details.map(|d| (key.as_str(), d)),
        )
    }
}

impl Run {
    /// Calls the Task's resource with `params`, within `timeout` seconds if given.
    pub(super) async fn task(
        &self,
        resource: &Resource,
        params: Value,
        timeout: Option<u64>,
    ) -> Result<Value, StatesError> {
        let events = TaskEvents::of(resource);
        let mut scheduled = match resource {
            Resource::LambdaArn(arn) => {
                json!({"resource": arn, "input": params.to_string(), "inputDetails": {"truncated": false}})
            }
            _ => json!({"region": self.engine.region, "parameters": params.to_string()}),
        };
        if let Some(t) = timeout {
            scheduled["timeoutInSeconds"] = json!(t);
        }
        events.record(self, "Scheduled", Some(scheduled))?;
        // The legacy integration's LambdaFunctionStarted has no details.
        events.record(self, "Started", (!events.legacy).then(|| json!({})))?;
        let work = self.call_resource(resource, params);
        let result = match timeout {
            Some(t) => match tokio::time::timeout(Duration::from_secs(t), work).await {
                Ok(r) => r,
                Err(_) => {
                    let error = StatesError::new(
                        "States.Timeout",
                        format!("The task did not finish within {t} seconds"),
                    );
                    let _ = events.record(self, "TimedOut", Some(error.details().into()));
                    return Err(error);
                }
            },
            None => work.await,
        };
        match result {
            Ok(output) => {
                check_payload(&output, || {
                    "The task result exceeds the 256 KiB limit".to_string()
                })?;
                events.record(
                    self,
                    "Succeeded",
                    Some(json!({"output": output.to_string(), "outputDetails": {"truncated": false}})),
                )?;
                Ok(output)
            }
            Err(error) => {
                events.record(self, "Failed", Some(error.details().into()))?;
                Err(error)
            }
        }
    }
}

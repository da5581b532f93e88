//! A Distributed Map's ResultWriter: when the Map Run ends, its children's results go to S3 as
//! `<Prefix>/<map run id>/SUCCEEDED_0.json`, `FAILED_0.json` and `PENDING_0.json` (each
//! written only when it has entries) plus a `manifest.json` listing them, and the state's
//! result becomes `{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}` of the manifest.

use super::iso;
use super::run::Run;
use crate::dataflow::render;
use crate::definition::{MapSpec, Transformation};
use crate::error::StatesError;
use crate::store::{ItemStatus, MapItem, MapRunEntry, MapRunRecord};
use serde_json::{Value, json};

/// The result files in the order the manifest lists them.
const FILES: [&str; 3] = ["FAILED", "PENDING", "SUCCEEDED"];

impl Run {
    /// Writes the Map Run's results and manifest; the state's result on success. A write that
    /// fails is `States.ResultWriterFailed`.
    pub(super) async fn write_results(
        &self,
        spec: &MapSpec,
        run_entry: &MapRunEntry,
        effective: &Value,
        context: &Value,
    ) -> Result<Value, StatesError> {
        let Some(writer) = &spec.result_writer else {
            return Err(StatesError::runtime("the Map state has no ResultWriter"));
        };
        let params = render(
            &writer.parameters,
            effective,
            context,
            "ResultWriter.Parameters",
        )?;
        let Some(bucket) = params.get("Bucket").and_then(Value::as_str) else {
            return Err(StatesError::runtime(
                "ResultWriter.Parameters Bucket must be a string",
            ));
        };
        let prefix = match params.get("Prefix") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(p)) if p.is_empty() || p.ends_with('/') => p.clone(),
            Some(Value::String(p)) => format!("{p}/"),
            Some(_) => {
                return Err(StatesError::runtime(
                    "ResultWriter.Parameters Prefix must be a string",
                ));
            }
        };
        let record = run_entry.lock().clone();
        let run_id = record.arn.rsplit(':').next().unwrap_or_default();
        let folder = format!("{prefix}{run_id}/");
        let mut listed = serde_json::Map::new();
        for status in FILES {
            let entries: Vec<Value> = record
                .items
                .iter()
                .filter(|item| file_of(item.status) == status)
                .flat_map(|item| self.result_entries(&record, item, writer.transformation))
                .collect();
            let mut files = Vec::new();
            if !entries.is_empty() {
                let key = format!("{folder}{status}_0.json");
                let body = if writer.json_lines {
                    let mut lines = String::new();
                    for entry in &entries {
                        lines.push_str(&entry.to_string());
                        lines.push('\n');
                    }
                    lines.into_bytes()
                } else {
                    Value::Array(entries).to_string().into_bytes()
                };
                let size = body.len();
                self.put(bucket, &key, body).await?;
                files.push(json!({"Key": key, "Size": size}));
            }
            listed.insert(status.to_string(), Value::Array(files));
        }
        let manifest = json!({
            "DestinationBucket": bucket,
            "MapRunArn": record.arn,
            "ResultFiles": listed,
        });
        let key = format!("{folder}manifest.json");
        self.put(bucket, &key, manifest.to_string().into_bytes())
            .await?;
        Ok(json!({
            "MapRunArn": record.arn,
            "ResultWriterDetails": {"Bucket": bucket, "Key": key},
        }))
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), StatesError> {
        self.engine
            .resources
            .put_object(bucket, key, body)
            .await
            .map_err(|e| {
                StatesError::new(
                    "States.ResultWriterFailed",
                    format!(
                        "Unable to write s3://{bucket}/{key}: {}: {}",
                        e.code, e.message
                    ),
                )
            })
    }

    /// One child's entries in a result file: its execution's metadata with input and output
    /// (NONE), or its output alone (COMPACT), or the elements of an output array (FLATTEN).
    /// A child that did not succeed is always written in full, as AWS does.
    fn result_entries(
        &self,
        m: &MapRunRecord,
        item: &MapItem,
        transformation: Transformation,
    ) -> Vec<Value> {
        if item.status == ItemStatus::Succeeded {
            let output = item.output.clone().unwrap_or(Value::Null);
            match (transformation, output) {
                (Transformation::Compact, output) => return vec![output],
                (Transformation::Flatten, Value::Array(items)) => return items,
                (Transformation::Flatten, output) => return vec![output],
                (Transformation::None, _) => {}
            }
        }
        vec![self.execution_entry(m, item)]
    }

    /// A child execution as the result files describe it.
    fn execution_entry(&self, m: &MapRunRecord, item: &MapItem) -> Value {
        let mut entry = json!({
            "Input": item.input.to_string(),
            "InputDetails": {"Included": true},
            "Status": status_name(item.status),
        });
        if let Some(arn) = &item.execution_arn {
            entry["ExecutionArn"] = json!(arn);
            let name = arn.rsplit(':').next().unwrap_or_default();
            entry["Name"] = json!(name);
            entry["StateMachineArn"] = json!(child_machine_arn(&self.sm_arn, m));
        }
        if let Some(d) = item.start_date {
            entry["StartDate"] = json!(iso(d));
        }
        if let Some(d) = item.stop_date.filter(|_| file_of(item.status) != "PENDING") {
            entry["StopDate"] = json!(iso(d));
        }
        if let Some(output) = item
            .output
            .as_ref()
            .filter(|_| item.status == ItemStatus::Succeeded)
        {
            entry["Output"] = json!(output.to_string());
            entry["OutputDetails"] = json!({"Included": true});
        }
        if let Some(e) = item
            .error
            .as_ref()
            .filter(|_| item.status != ItemStatus::Succeeded)
        {
            entry["Error"] = json!(e.error);
            entry["Cause"] = json!(e.cause);
        }
        if let Some(child) = item
            .execution_arn
            .as_deref()
            .and_then(|a| self.engine.store.execution(a))
        {
            let r = child.lock();
            entry["RedriveCount"] = json!(r.redrive_count);
            if r.status.is_final() && r.status != crate::store::ExecutionStatus::Succeeded {
                entry["RedriveStatus"] = json!("REDRIVABLE_BY_MAP_RUN");
            } else {
                entry["RedriveStatus"] = json!("NOT_REDRIVABLE");
            }
        }
        entry
    }
}

/// The result file an item's status goes to.
fn file_of(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::Succeeded => "SUCCEEDED",
        ItemStatus::Failed | ItemStatus::TimedOut | ItemStatus::Aborted => "FAILED",
        ItemStatus::Pending | ItemStatus::Running => "PENDING",
    }
}

fn status_name(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::Succeeded => "SUCCEEDED",
        ItemStatus::Failed => "FAILED",
        ItemStatus::TimedOut => "TIMED_OUT",
        ItemStatus::Aborted => "ABORTED",
        ItemStatus::Pending | ItemStatus::Running => "PENDING",
    }
}

/// The child's state machine ARN: `<parent machine>/<label>`, the label taken from the Map
/// Run's ARN (`...:mapRun:MACHINE/LABEL:ID`).
fn child_machine_arn(parent: &str, m: &MapRunRecord) -> String {
    let label = m
        .arn
        .rsplit_once(':')
        .and_then(|(head, _)| head.rsplit_once('/'))
        .map(|(_, label)| label)
        .unwrap_or("Map");
    format!("{parent}/{label}")
}

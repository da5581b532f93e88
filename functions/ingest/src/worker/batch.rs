//! A worker invocation on a batch of small objects, as a Distributed Map's `ItemBatcher`
//! hands them out: several objects at once, each with its own ledger claim, summed into one
//! result, and the unfinished ones handed back when the time budget runs out.
//!
//! Retrying a whole batch is safe and cheap: the ledger answers "already ingested" for the
//! objects an earlier attempt of the same run finished (counted as this run's rows again, since
//! the failed attempt's output was lost), and resumes the others from their checkpoints. The
//! same holds when an Express child workflow runs a batch twice (at-least-once): the second
//! claim waits on the conditional write of the first, and validation counts distinct rows.
//!
//! An object that fails leaves a failure note in the ledger ([`crate::failures`]): Step
//! Functions keeps no Express child's error where `s3-ingest status` or a user can read it.

use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::claim::{Claimed, Session};
use super::ingest::{end_session, ingest_claimed, lease_until_ms, stop_instant};
use super::io::{WorkerInput, WorkerOutput};
use crate::clients::Clients;
use crate::error::IngestError;
use crate::failures::ObjectFailure;
use crate::launcher::ObjectCounts;
use crate::ledger::Ledger;
use crate::pacing::Pacing;

/// Objects of one batch read and sent at once. Small objects spend most of their time on
/// fixed round trips (ledger claim, GET, ledger write), which overlap well.
pub const OBJECTS_IN_FLIGHT: usize = 8;

/// Input of a worker invocation on a batch (`events/worker-batch.json`): the ItemBatcher's
/// `BatchInput` (every [`WorkerInput`] field but the object's own) and `Items` (bucket, key,
/// ETag and size of each object, as the launcher's batched manifest lists them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct WorkerBatch {
    /// Settings shared by every object of the batch.
    #[serde(default)]
    pub batch_input: Map<String, Value>,
    /// The objects still to do.
    pub items: Vec<Map<String, Value>>,
    /// What earlier invocations on this batch finished, carried by the state machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted: Option<BatchCounts>,
}

/// Objects finished and their counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchCounts {
    /// Objects finished (ingested, skipped or set aside).
    pub objects: u64,
    /// Their counts, summed.
    #[serde(flatten)]
    pub counts: ObjectCounts,
}

/// Output of a worker invocation on a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchOutput {
    /// Whether every object of the batch is finished.
    pub done: bool,
    /// The finished objects' counts, over every invocation on this batch.
    pub counted: BatchCounts,
    /// The objects to pass back as `Items` when `done` is false, each with its checkpoint.
    pub remaining: Vec<Map<String, Value>>,
}

impl WorkerBatch {
    /// Each item as a [`WorkerInput`]: the batch's settings, then the item's own fields.
    fn inputs(&self) -> Result<Vec<WorkerInput>, IngestError> {
        self.items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let mut merged = self.batch_input.clone();
                merged.extend(item.iter().map(|(k, v)| (k.clone(), v.clone())));
                serde_json::from_value(Value::Object(merged)).map_err(|e| {
                    let key = item.get("key").and_then(Value::as_str).unwrap_or("?");
                    IngestError::invalid_input(&format!("Items[{index}] ({key})"), e)
                })
            })
            .collect()
    }
}

impl BatchCounts {
    fn add(&mut self, output: &WorkerOutput) {
        self.objects += 1;
        self.counts.rows += output.rows;
        self.counts.retries += output.retries;
        self.counts.bad_rows += output.bad_rows;
        self.counts.skipped += output.skipped;
        self.counts.skipped_rows += output.skipped_rows;
        self.counts.set_aside += output.set_aside;
    }
}

/// Ingests every object of `batch`, [`OBJECTS_IN_FLIGHT`] at a time, until each is done or
/// `deadline` (minus each input's time margin) comes. The first error (in item order) fails
/// the invocation after every other object has had its turn, so a retry finds them finished.
pub async fn ingest_batch_in(
    clients: &Clients,
    pacing: &Pacing,
    batch: &WorkerBatch,
    deadline: SystemTime,
) -> Result<BatchOutput, IngestError> {
    let inputs = batch.inputs()?;
    let objects: Vec<(String, String, String)> = inputs
        .iter()
        .map(|input| (input.bucket.clone(), input.key.clone(), input.etag.clone()))
        .collect();
    // Shared by the batch's items (they come from its BatchInput).
    let ledger = inputs
        .first()
        .and_then(|input| input.ledger.clone().map(|l| (l, input.run_id.clone())));
    let mut ordered: Vec<Option<Result<WorkerOutput, IngestError>>> =
        (0..inputs.len()).map(|_| None).collect();
    // An object whose input is invalid fails alone; the others are claimed together.
    let mut valid = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        match input.validate() {
            Ok(()) => valid.push((index, input)),
            Err(error) => ordered[index] = Some(Err(error)),
        }
    }
    let session = ledger.as_ref().map(|(location, _)| {
        let every = valid.first().map_or(1, |(_, input)| input.checkpoint_every);
        Session::new(Ledger::new(&clients.s3, location), every, valid.len())
    });
    let mut claims: Vec<Option<Claimed<'_>>> = match &session {
        Some(session) => {
            let refs: Vec<&WorkerInput> = valid.iter().map(|(_, input)| input).collect();
            session
                .claim(&refs, lease_until_ms(deadline))
                .await?
                .into_iter()
                .map(Some)
                .collect()
        }
        None => valid.iter().map(|_| None).collect(),
    };
    // Futures made up front from an `async fn`: stream combinators over closures with
    // borrowed arguments cannot be proven `Send`.
    let work: Vec<_> = valid
        .iter()
        .zip(claims.iter_mut().map(Option::take))
        .map(|((index, input), claimed)| {
            run_item(clients, pacing, *index, input, claimed, deadline)
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(work)
        .buffer_unordered(OBJECTS_IN_FLIGHT)
        .collect()
        .await;
    for (index, result) in results {
        ordered[index] = result;
    }
    if let Some(session) = &session {
        end_session(session, Ok(())).await?;
    }

    let mut counted = batch.counted.unwrap_or_default();
    let mut remaining = Vec::new();
    let mut first_error = None;
    for (index, result) in ordered.into_iter().enumerate() {
        match result {
            // Not started: handed back as it came, with any checkpoint it already had.
            None => remaining.push(batch.items[index].clone()),
            Some(Ok(output)) if output.done => counted.add(&output),
            Some(Ok(output)) => {
                let mut item = batch.items[index].clone();
                item.insert(
                    "checkpoint".to_owned(),
                    serde_json::to_value(&output.checkpoint).expect("checkpoints serialise"),
                );
                remaining.push(item);
            }
            Some(Err(error)) => {
                let (bucket, key, etag) = &objects[index];
                tracing::warn!(key = %key, error = %error, "object of the batch failed");
                if let Some((location, run_id)) = &ledger {
                    let note = ObjectFailure::new(bucket, key, etag, &error);
                    // The error itself is what matters; a note that cannot be written (the
                    // ledger bucket refusing too) must not replace it.
                    if let Err(e) = Ledger::new(&clients.s3, location)
                        .write_failure(run_id, &note)
                        .await
                    {
                        tracing::warn!(key = %key, error = %e, "the failure note could not be written");
                    }
                }
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    tracing::info!(
        objects = counted.objects,
        rows = counted.counts.rows,
        remaining = remaining.len(),
        "batch invocation finished"
    );
    Ok(BatchOutput {
        done: remaining.is_empty(),
        counted,
        remaining,
    })
}

/// One object of a batch, under its claim: `None` when it was not started. An object
/// started this late could not finish before the deadline, and would keep the invocation past
/// it; it waits for the next invocation instead (its claim is this run's, so that invocation
/// resumes it). The first one always starts, so every invocation makes progress.
async fn run_item(
    clients: &Clients,
    pacing: &Pacing,
    index: usize,
    input: &WorkerInput,
    claimed: Option<Claimed<'_>>,
    deadline: SystemTime,
) -> (usize, Option<Result<WorkerOutput, IngestError>>) {
    let stop_at = stop_instant(deadline, Duration::from_secs(input.time_margin_seconds));
    if index > 0 && Instant::now() >= stop_at {
        return (index, None);
    }
    let result = ingest_claimed(clients, pacing, input, deadline, claimed).await;
    (index, Some(result))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{clients, later};
    use super::*;

    fn batch(keys: &[&str], margin_seconds: u64) -> WorkerBatch {
        serde_json::from_value(serde_json::json!({
            "BatchInput": {"channelName": "ch", "timeMarginSeconds": margin_seconds},
            "Items": keys
                .iter()
                .map(|key| serde_json::json!({"bucket": "src", "key": key, "etag": "\"e1\""}))
                .collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_batch_with_time_left_finishes_every_object() {
        let (c, sent) = clients(b"a,b\n1,2\n3,4\n");
        let out = ingest_batch_in(
            &c,
            &Pacing::new(),
            &batch(&["1.csv", "2.csv", "3.csv"], 30),
            later(),
        )
        .await
        .unwrap();
        assert!(out.done);
        assert_eq!((out.counted.objects, out.counted.counts.rows), (3, 6));
        assert_eq!(sent.lock().unwrap().len(), 6);
    }

    #[tokio::test]
    async fn objects_not_started_by_the_stop_point_are_handed_back_untouched() {
        let (c, sent) = clients(b"a,b\n1,2\n3,4\n");
        // The deadline is one margin away: past the stop point from the start.
        let deadline = SystemTime::now() + Duration::from_secs(60);
        let keys = ["1.csv", "2.csv", "3.csv", "4.csv"];
        let out = ingest_batch_in(&c, &Pacing::new(), &batch(&keys, 60), deadline)
            .await
            .unwrap();
        assert!(!out.done);
        // The first object still runs, so every invocation makes progress.
        assert_eq!(out.counted.objects, 1);
        assert_eq!(sent.lock().unwrap().len(), 2);
        let handed_back: Vec<&str> = out
            .remaining
            .iter()
            .map(|item| item["key"].as_str().unwrap())
            .collect();
        assert_eq!(handed_back, ["2.csv", "3.csv", "4.csv"]);
        assert!(
            out.remaining
                .iter()
                .all(|item| !item.contains_key("checkpoint"))
        );
    }
}

//! JSON-in, JSON-out entry points, one per Lambda function: what each function's `main.rs`
//! and the local Step Functions executor call, so both run the same code.

use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::clients::Clients;
use crate::error::IngestError;
use crate::pacing::Pacing;
use crate::{launcher, validator, worker};

/// Reads an event into a function's input type; a mismatch names the field at fault.
pub fn parse_input<T: DeserializeOwned>(event: Value) -> Result<T, IngestError> {
    serde_json::from_value(event).map_err(|e| IngestError::InvalidInput {
        field: "event".to_owned(),
        reason: e.to_string(),
    })
}

fn to_json<T: Serialize>(output: &T) -> Value {
    serde_json::to_value(output).expect("outputs always serialise")
}

/// The launcher function: one ListObjectsV2 page.
pub async fn launcher(clients: &Clients, event: Value) -> Result<Value, IngestError> {
    let input: launcher::LauncherInput = parse_input(event)?;
    launcher::list_page(&clients.s3, &input)
        .await
        .map(|o| to_json(&o))
}

/// The worker function: one object, or the rest of one from a checkpoint, or a batch of small
/// objects (an input with `Items`, as a Distributed Map's ItemBatcher gives), until
/// `deadline`, paced by the execution environment's `pacing`.
pub async fn worker(
    clients: &Clients,
    pacing: &Pacing,
    event: Value,
    deadline: SystemTime,
) -> Result<Value, IngestError> {
    if event.get("Items").is_some() {
        let batch: worker::WorkerBatch = parse_input(event)?;
        return worker::ingest_batch_in(clients, pacing, &batch, deadline)
            .await
            .map(|o| to_json(&o));
    }
    let input: worker::WorkerInput = parse_input(event)?;
    worker::ingest_object_in(clients, pacing, &input, deadline)
        .await
        .map(|o| to_json(&o))
}

/// The validator function: `prepare`, `start` or `check`, within `deadline`.
pub async fn validator(
    clients: &Clients,
    event: Value,
    deadline: SystemTime,
) -> Result<Value, IngestError> {
    let input: validator::ValidatorInput = parse_input(event)?;
    validator::handle(clients, &input, deadline)
        .await
        .map(|o| to_json(&o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_field_is_named_in_the_error() {
        let error = parse_input::<launcher::LauncherInput>(
            serde_json::json!({"bucket": "b", "pagesize": 5}),
        )
        .unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("pagesize"), "{error}");
    }
}

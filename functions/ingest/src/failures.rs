//! Failure notes: the error that stopped an object of a batch, kept beside the ledger, because
//! Step Functions keeps no Express child workflow where a user can read it back (a failed
//! batch shows only as a count in its Map Run, under `States.ExceedToleratedFailureThreshold`).
//!
//! Layout under the ledger prefix: `failures/<runId>/<bucket>/<key>.json`, one
//! [`ObjectFailure`] per object, the latest failure of the run winning. A note is written only
//! when an object fails, so a run that succeeds pays nothing for them; readers leave out the
//! notes of objects that a later attempt ingested.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorReport, IngestError};
use crate::ledger::{Ledger, now_ms};

/// What stopped one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFailure {
    /// Source bucket.
    pub bucket: String,
    /// Source key.
    pub key: String,
    /// The source object's ETag when it failed.
    pub etag: String,
    /// The error's stable name, as the state machine's Retry and Catch match it.
    pub error: String,
    /// Its message, naming the input at fault.
    pub cause: String,
    /// When it failed (ms since the epoch).
    pub failed_ms: u64,
}

impl ObjectFailure {
    /// The note for `error` on the object `key` of `bucket` at `etag`, now.
    pub fn new(bucket: &str, key: &str, etag: &str, error: &IngestError) -> Self {
        let report = ErrorReport::from(error);
        Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            etag: etag.to_owned(),
            error: report.error_type,
            cause: report.error_message,
            failed_ms: now_ms(),
        }
    }
}

impl Ledger<'_> {
    /// Writes `failure` as `run_id`'s note on its object, replacing an earlier one.
    pub async fn write_failure(
        &self,
        run_id: &str,
        failure: &ObjectFailure,
    ) -> Result<(), IngestError> {
        let key = self
            .location()
            .failure_key(run_id, &failure.bucket, &failure.key);
        self.put_json(&key, failure).await
    }

    /// Up to `limit` of `run_id`'s failure notes, in key order, leaving out objects that the
    /// ledger now records as ingested with the ETag that failed.
    pub async fn failures(
        &self,
        run_id: &str,
        limit: usize,
    ) -> Result<Vec<ObjectFailure>, IngestError> {
        let mut out = Vec::new();
        for note_key in self.list(&self.location().failures_prefix(run_id)).await? {
            if out.len() >= limit {
                break;
            }
            let Some((_, body)) = self.get_bytes(&note_key).await? else {
                continue;
            };
            let failure: ObjectFailure =
                serde_json::from_slice(&body).map_err(|e| IngestError::ServiceError {
                    service: "S3",
                    operation: "GetObject".to_owned(),
                    message: format!(
                        "s3://{}/{note_key} is not a failure note: {e}",
                        self.location().bucket
                    ),
                })?;
            let cured = self
                .read(&failure.bucket, &failure.key)
                .await?
                .is_some_and(|stored| stored.entry.is_ingested(&failure.etag));
            if !cured {
                out.push(failure);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerLocation;

    #[test]
    fn a_note_names_the_error_as_the_state_machine_matches_it() {
        let error = IngestError::ChannelNotFound {
            channel: "missing".to_owned(),
        };
        let note = ObjectFailure::new("b", "dir/k.csv", "\"e\"", &error);
        assert_eq!(note.error, "ChannelNotFound");
        assert!(note.cause.contains("missing"), "{}", note.cause);
        assert_eq!(note.key, "dir/k.csv");
    }

    #[test]
    fn notes_live_under_the_run_beside_the_ledger() {
        let location = LedgerLocation {
            bucket: "ledger".to_owned(),
            prefix: "ingest-ledger/".to_owned(),
        };
        assert_eq!(
            location.failure_key("run-1", "src", "a/b.csv"),
            "ingest-ledger/failures/run-1/src/a/b.csv.json"
        );
        assert!(
            location
                .failure_key("run-1", "src", "a/b.csv")
                .starts_with(&location.failures_prefix("run-1"))
        );
        let long = "k".repeat(1100);
        let hashed = location.failure_key("run-1", "src", &long);
        assert!(
            hashed.len() <= 1024 && hashed.contains("#hashed/"),
            "{hashed}"
        );
    }
}

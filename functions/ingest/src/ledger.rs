//! The ledger: one small JSON record per source object in S3, written only with conditional
//! writes, that says whether the object was ingested (and with which ETag), which run is
//! ingesting it and where its last checkpoint is; and the bad-input reports beside it.
//!
//! Layout under the ledger prefix (default [`DEFAULT_LEDGER_PREFIX`]):
//! - `objects/<bucket>/<key>.json`: the object's [`LedgerEntry`];
//! - `reports/<runId>/<bucket>/<key>/lines-<first line>.json`: rows or objects set aside.
//!
//! Every write carries `If-None-Match: *` (first claim) or `If-Match: <ledger ETag>` (every
//! later one), so two workers can never both believe they own an object: the loser of a race
//! gets `412 Precondition Failed` and reads again.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{BadRowPolicy, BadRowReport, Checkpoint};
use crate::error::IngestError;
use crate::retry::{Backoff, retry};
use crate::service_errors::{CallFailure, s3_error};

/// Where the ledger lives when the input names only its bucket.
pub const DEFAULT_LEDGER_PREFIX: &str = "ingest-ledger/";

/// Bad rows per report object, so a report stays small whatever the object holds.
pub const REPORT_PART_ROWS: usize = 1000;

/// How long a claim outlives its invocation's deadline before another run may take it over.
pub const LEASE_MARGIN_MS: u64 = 60_000;

/// Ledger entries read at once when a whole prefix is read.
const ENTRY_READS_AT_ONCE: usize = 32;

/// S3's limit on key length, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// Attempts to read one entry: a read that broke off or met a transient error is made again.
const READ_ATTEMPTS: u32 = 4;

fn default_prefix() -> String {
    DEFAULT_LEDGER_PREFIX.to_owned()
}

/// Where a listing of ledger entries continues: in the folder of the objects' own keys, or in
/// `#hashed/` (long keys) after it, after the ledger key `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryCursor {
    /// Whether the listing is in `#hashed/`.
    #[serde(default)]
    pub hashed: bool,
    /// The last ledger key read (`None`: the folder's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A bucket and prefix holding the ledger and the reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LedgerLocation {
    /// Ledger bucket.
    pub bucket: String,
    /// Key prefix (default `ingest-ledger/`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

impl LedgerLocation {
    /// The ledger entry's key for an object.
    pub fn entry_key(&self, bucket: &str, key: &str) -> String {
        bounded_key(&format!("{}objects/{bucket}/", self.prefix), key, ".json")
    }

    /// The folder holding one run's reports.
    pub fn reports_prefix(&self, run_id: &str) -> String {
        format!("{}reports/{run_id}/", self.prefix)
    }

    /// The key of the report part that starts at `first_line` of an object.
    pub fn report_key(&self, run_id: &str, bucket: &str, key: &str, first_line: u64) -> String {
        bounded_key(
            &format!("{}{bucket}/", self.reports_prefix(run_id)),
            key,
            &format!("/lines-{first_line:012}.json"),
        )
    }

    /// The folder holding one run's failure notes ([`crate::failures`]).
    pub fn failures_prefix(&self, run_id: &str) -> String {
        format!("{}failures/{run_id}/", self.prefix)
    }

    /// The key of `run_id`'s failure note on an object.
    pub fn failure_key(&self, run_id: &str, bucket: &str, key: &str) -> String {
        bounded_key(
            &format!("{}{bucket}/", self.failures_prefix(run_id)),
            key,
            ".json",
        )
    }

    /// Whether `key` in `bucket` belongs to this ledger (never work for the launcher).
    pub fn holds(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket && key.starts_with(&self.prefix)
    }
}

/// `folder + key + suffix`, or, when that exceeds S3's key limit, the key replaced by a hash
/// of it (the entry itself still names the key).
fn bounded_key(folder: &str, key: &str, suffix: &str) -> String {
    let full = format!("{folder}{key}{suffix}");
    if full.len() <= MAX_KEY_BYTES {
        full
    } else {
        format!("{folder}#hashed/{:032x}{suffix}", key_hash(key))
    }
}

/// FNV-1a over 128 bits: stable across builds and platforms, unlike the std hasher.
fn key_hash(key: &str) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    key.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u128::from(byte)).wrapping_mul(PRIME)
    })
}

/// Where an object stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryState {
    /// A run is ingesting it; `checkpoint` says how far it got.
    InProgress,
    /// Every row is in the channel (or set aside in a report).
    Ingested,
    /// Stopped at a bad row or a bad header under the `fail` policy; `checkpoint` says
    /// where, and the run's report names the line.
    SetAside,
}

/// The ledger's record of one source object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// Source bucket.
    pub bucket: String,
    /// Source key.
    pub key: String,
    /// The source object's ETag this record is about.
    pub etag: String,
    /// Where the object stands.
    pub state: EntryState,
    /// The run that wrote this record.
    pub run_id: String,
    /// Until when (ms since the epoch) an in-progress claim holds against other runs.
    pub lease_until_ms: u64,
    /// When this record was written (ms since the epoch).
    pub updated_ms: u64,
    /// Where to resume (in progress or set aside); `null` once ingested.
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
    /// Rows acknowledged, over every invocation on this ETag.
    pub rows: u64,
    /// Batches acknowledged.
    pub batches: u64,
    /// Re-sends.
    pub retries: u64,
    /// Rows set aside.
    pub bad_rows: u64,
    /// Why the object was set aside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The folder of the run's reports on this object, when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl LedgerEntry {
    /// Whether the entry records the object as ingested with `etag`.
    pub fn is_ingested(&self, etag: &str) -> bool {
        self.state == EntryState::Ingested && same_etag(&self.etag, etag)
    }
}

/// A ledger entry with the ETag of the ledger object itself, for the next conditional write.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The record.
    pub entry: LedgerEntry,
    /// ETag of the ledger object.
    pub version: String,
}

/// What a worker should do with an object, given its ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ingest from the start (no entry, or the object changed since it was recorded).
    Start,
    /// Resume this run's (or an abandoned run's) work from the checkpoint, if any.
    Resume(Option<Checkpoint>),
    /// Already ingested with this ETag.
    AlreadyIngested,
    /// Set aside before with this ETag, and the policy would set it aside again.
    AlreadySetAside,
    /// Another run holds a live claim.
    HeldElsewhere {
        /// That run.
        run_id: String,
    },
}

/// Decides what a worker of `run_id` does with an object of `etag`, at `now_ms`.
pub fn decide(
    existing: Option<&LedgerEntry>,
    etag: &str,
    run_id: &str,
    policy: BadRowPolicy,
    now_ms: u64,
) -> Decision {
    let Some(entry) = existing else {
        return Decision::Start;
    };
    if !same_etag(&entry.etag, etag) {
        return Decision::Start;
    }
    match entry.state {
        EntryState::Ingested => Decision::AlreadyIngested,
        // Under `skip` the rest of a set-aside object can go in: resume where it stopped.
        EntryState::SetAside if policy == BadRowPolicy::Skip => {
            Decision::Resume(entry.checkpoint.clone())
        }
        EntryState::SetAside => Decision::AlreadySetAside,
        EntryState::InProgress if entry.run_id == run_id || entry.lease_until_ms <= now_ms => {
            Decision::Resume(entry.checkpoint.clone())
        }
        EntryState::InProgress => Decision::HeldElsewhere {
            run_id: entry.run_id.clone(),
        },
    }
}

/// How a conditional write of an entry ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Stored; the entry's new version (its ETag).
    Stored(String),
    /// Another writer got there first: nothing was stored.
    Conflict,
}

/// The ledger over one S3 client.
#[derive(Debug, Clone, Copy)]
pub struct Ledger<'a> {
    s3: &'a aws_sdk_s3::Client,
    location: &'a LedgerLocation,
}

impl<'a> Ledger<'a> {
    /// The ledger at `location`.
    pub fn new(s3: &'a aws_sdk_s3::Client, location: &'a LedgerLocation) -> Self {
        Self { s3, location }
    }

    /// Where it lives.
    pub fn location(&self) -> &LedgerLocation {
        self.location
    }

    /// The entry of an object, `None` when the object was never claimed.
    // Not an `async fn` wrapping another: one state machine less in the worker's future,
    // whose nesting is near the compiler's query depth limit.
    pub fn read(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Stored>, IngestError>> + Send + '_ {
        self.read_key(self.location.entry_key(bucket, key))
    }

    /// The entry stored at `ledger_key`, `None` when there is none.
    async fn read_key(&self, ledger_key: String) -> Result<Option<Stored>, IngestError> {
        // A body cut off mid-way is read again: entries are small, and one broken connection
        // must not fail a whole page's check.
        retry(
            "ledger GetObject",
            READ_ATTEMPTS,
            Backoff::SHORT,
            |e| {
                matches!(
                    e,
                    IngestError::ServiceUnavailable { .. } | IngestError::Throttled { .. }
                )
            },
            || self.read_once(&ledger_key),
        )
        .await
    }

    async fn read_once(&self, ledger_key: &str) -> Result<Option<Stored>, IngestError> {
        let Some((version, body)) = self.get_bytes(ledger_key).await? else {
            return Ok(None);
        };
        let entry = serde_json::from_slice(&body).map_err(|e| IngestError::ServiceError {
            service: "S3",
            operation: "GetObject".to_owned(),
            message: format!(
                "ledger entry s3://{}/{ledger_key} is not a ledger record: {e}",
                self.location.bucket
            ),
        })?;
        Ok(Some(Stored { entry, version }))
    }

    /// The ETag and body of the ledger object at `ledger_key`, `None` when there is none.
    pub(crate) async fn get_bytes(
        &self,
        ledger_key: &str,
    ) -> Result<Option<(String, Vec<u8>)>, IngestError> {
        let response = match self
            .s3
            .get_object()
            .bucket(&self.location.bucket)
            .key(ledger_key)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                let failure = CallFailure::from_sdk(&e);
                if failure.has_code("NoSuchKey") {
                    return Ok(None);
                }
                return Err(self.error("GetObject", ledger_key, failure));
            }
        };
        let version = response.e_tag().unwrap_or_default().to_owned();
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| IngestError::ServiceUnavailable {
                service: "S3",
                operation: "GetObject".to_owned(),
                message: format!(
                    "reading ledger object {ledger_key}: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                ),
            })?
            .into_bytes();
        Ok(Some((version, body.to_vec())))
    }

    /// Writes `entry`: only if no entry exists (`previous` `None`) or only over the entry
    /// read as `previous`. [`Write::Conflict`] when another writer got there first.
    pub async fn write(
        &self,
        entry: &LedgerEntry,
        previous: Option<&str>,
    ) -> Result<Write, IngestError> {
        let ledger_key = self.location.entry_key(&entry.bucket, &entry.key);
        let body = serde_json::to_vec_pretty(entry).expect("ledger entries always serialise");
        let request = self
            .s3
            .put_object()
            .bucket(&self.location.bucket)
            .key(&ledger_key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let request = match previous {
            None => request.if_none_match("*"),
            Some(version) => request.if_match(version),
        };
        match request.send().await {
            Ok(output) => Ok(Write::Stored(output.e_tag().unwrap_or_default().to_owned())),
            Err(e) => {
                let failure = CallFailure::from_sdk(&e);
                // 412: the condition failed; 409: a concurrent conditional write won.
                if matches!(failure.status, Some(412 | 409))
                    || failure.has_code("PreconditionFailed")
                    || failure.has_code("ConditionalRequestConflict")
                {
                    Ok(Write::Conflict)
                } else {
                    Err(self.error("PutObject", &ledger_key, failure))
                }
            }
        }
    }

    /// Every entry of objects under `prefix` in `bucket`, in key order, read concurrently.
    pub async fn entries(&self, bucket: &str, prefix: &str) -> Result<Vec<Stored>, IngestError> {
        let mut out: Vec<Stored> = Vec::new();
        let mut cursor = Some(EntryCursor::default());
        while let Some(at) = cursor {
            let (page, next) = self.entries_page(bucket, prefix, &at).await?;
            out.extend(page);
            cursor = next;
        }
        out.sort_by(|a, b| a.entry.key.cmp(&b.entry.key));
        Ok(out)
    }

    /// The entries of objects under `prefix` in `bucket` from one ListObjectsV2 page of the
    /// ledger (at most 1,000), read concurrently, and where the listing continues (`None`:
    /// done). A ledger of any size can so be read over several calls, each within its time.
    pub async fn entries_page(
        &self,
        bucket: &str,
        prefix: &str,
        cursor: &EntryCursor,
    ) -> Result<(Vec<Stored>, Option<EntryCursor>), IngestError> {
        use futures::StreamExt as _;
        let folder = format!("{}objects/{bucket}/", self.location.prefix);
        // Long keys live under `#hashed/`, outside the prefix's folder; their entries name them.
        let listed = if cursor.hashed {
            format!("{folder}#hashed/")
        } else {
            format!("{folder}{prefix}")
        };
        let page = self
            .s3
            .list_objects_v2()
            .bucket(&self.location.bucket)
            .prefix(&listed)
            .set_start_after(cursor.after.clone())
            .send()
            .await
            .map_err(|e| self.error("ListObjectsV2", &listed, CallFailure::from_sdk(&e)))?;
        let last = page
            .contents()
            .last()
            .and_then(|o| o.key())
            .map(str::to_owned);
        let next = match (page.is_truncated().unwrap_or(false), last) {
            (true, Some(after)) => Some(EntryCursor {
                hashed: cursor.hashed,
                after: Some(after),
            }),
            _ if !cursor.hashed => Some(EntryCursor {
                hashed: true,
                after: None,
            }),
            _ => None,
        };
        let ledger_keys = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter(|k| k.ends_with(".json"))
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let reads = futures::stream::iter(ledger_keys)
            .map(|ledger_key| self.read_key(ledger_key))
            .buffer_unordered(ENTRY_READS_AT_ONCE);
        let mut out: Vec<Stored> = Vec::new();
        let mut reads = std::pin::pin!(reads);
        while let Some(read) = reads.next().await {
            if let Some(stored) = read?
                && stored.entry.bucket == bucket
                && stored.entry.key.starts_with(prefix)
            {
                out.push(stored);
            }
        }
        Ok((out, next))
    }

    /// Ends the claims `run_id` holds on objects under `prefix` in `bucket`: their leases
    /// end now, so any run resumes them from their checkpoints at once instead of waiting
    /// for the lease. For a run known to be stopped (crashed, interrupted, superseded).
    /// Returns the objects released.
    pub async fn release(
        &self,
        run_id: &str,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<String>, IngestError> {
        let mut released = Vec::new();
        for stored in self.entries(bucket, prefix).await? {
            let mut entry = stored.entry;
            let now = now_ms();
            if entry.state != EntryState::InProgress
                || entry.run_id != run_id
                || entry.lease_until_ms <= now
            {
                continue;
            }
            entry.lease_until_ms = now;
            entry.updated_ms = now;
            // A conflict means someone else wrote the entry meanwhile: it is no longer this
            // run's to release.
            if let Write::Stored(_) = self.write(&entry, Some(&stored.version)).await? {
                released.push(entry.key);
            }
        }
        Ok(released)
    }

    /// Ledger object keys under `prefix`.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<String>, IngestError> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.location.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| self.error("ListObjectsV2", prefix, CallFailure::from_sdk(&e)))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| k.ends_with(".json"))
                    .map(str::to_owned),
            );
        }
        Ok(keys)
    }

    /// Writes one report part (a JSON document) and returns its key.
    pub async fn write_report(
        &self,
        run_id: &str,
        report: &ObjectReport,
    ) -> Result<String, IngestError> {
        let key = self
            .location
            .report_key(run_id, &report.bucket, &report.key, report.first_line);
        self.put_json(&key, report).await?;
        Ok(key)
    }

    /// Writes `document` as JSON at `key` in the ledger bucket, unconditionally (reports and
    /// notes, which only their own run writes).
    pub(crate) async fn put_json(
        &self,
        key: &str,
        document: &impl Serialize,
    ) -> Result<(), IngestError> {
        let body = serde_json::to_vec_pretty(document).expect("ledger documents always serialise");
        self.s3
            .put_object()
            .bucket(&self.location.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, CallFailure::from_sdk(&e)))?;
        Ok(())
    }

    pub(crate) fn error(&self, operation: &str, key: &str, failure: CallFailure) -> IngestError {
        s3_error(
            operation,
            &self.location.bucket,
            &format!("{}/{key}", self.location.bucket),
            failure,
        )
    }
}

/// One report part: rows (or the whole rest of an object) set aside, each named by line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    /// Source bucket.
    pub bucket: String,
    /// Source key.
    pub key: String,
    /// Source ETag.
    pub etag: String,
    /// The bad-row policy in force.
    pub policy: BadRowPolicy,
    /// First line this part covers (the part's name).
    pub first_line: u64,
    /// Under `fail`: where the object stopped and why; nothing from this line on was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<BadRowReport>,
    /// Rows set aside (under `skip`), or refused by the service.
    pub bad_rows: Vec<BadRowReport>,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    to_ms(SystemTime::now())
}

/// A time as milliseconds since the epoch.
pub fn to_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether two ETags are the same, quoted (as S3 sends them) or not.
pub(crate) fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An entry of `s3://src/a.csv` with 10 rows in one batch.
    pub(crate) fn entry(state: EntryState, run_id: &str, lease_until_ms: u64) -> LedgerEntry {
        LedgerEntry {
            bucket: "src".into(),
            key: "a.csv".into(),
            etag: "\"e1\"".into(),
            state,
            run_id: run_id.into(),
            lease_until_ms,
            updated_ms: 0,
            checkpoint: None,
            rows: 10,
            batches: 1,
            retries: 0,
            bad_rows: 0,
            reason: None,
            report: None,
        }
    }

    #[test]
    fn an_object_never_seen_is_started() {
        assert_eq!(
            decide(None, "e1", "run", BadRowPolicy::Fail, 0),
            Decision::Start
        );
    }

    #[test]
    fn an_ingested_object_with_the_same_etag_is_skipped_and_a_changed_one_started_again() {
        let done = entry(EntryState::Ingested, "old", 0);
        assert_eq!(
            decide(Some(&done), "\"e1\"", "run", BadRowPolicy::Fail, 5),
            Decision::AlreadyIngested
        );
        assert_eq!(
            decide(Some(&done), "e1", "run", BadRowPolicy::Fail, 5),
            Decision::AlreadyIngested,
            "quoted and bare ETags are the same ETag"
        );
        assert_eq!(
            decide(Some(&done), "\"e2\"", "run", BadRowPolicy::Fail, 5),
            Decision::Start
        );
    }

    #[test]
    fn a_live_claim_of_another_run_is_left_alone_until_its_lease_ends() {
        let claimed = entry(EntryState::InProgress, "other", 1_000);
        assert_eq!(
            decide(Some(&claimed), "e1", "run", BadRowPolicy::Fail, 999),
            Decision::HeldElsewhere {
                run_id: "other".into()
            }
        );
        assert_eq!(
            decide(Some(&claimed), "e1", "run", BadRowPolicy::Fail, 1_000),
            Decision::Resume(None)
        );
        assert_eq!(
            decide(Some(&claimed), "e1", "other", BadRowPolicy::Fail, 10),
            Decision::Resume(None),
            "a run always resumes its own claim"
        );
    }

    #[test]
    fn a_set_aside_object_resumes_only_when_bad_rows_may_now_be_skipped() {
        let aside = entry(EntryState::SetAside, "old", 0);
        assert_eq!(
            decide(Some(&aside), "e1", "run", BadRowPolicy::Fail, 5),
            Decision::AlreadySetAside
        );
        assert_eq!(
            decide(Some(&aside), "e1", "run", BadRowPolicy::Skip, 5),
            Decision::Resume(None)
        );
    }

    #[test]
    fn keys_too_long_for_s3_are_hashed_and_others_kept_readable() {
        let location = LedgerLocation {
            bucket: "l".into(),
            prefix: DEFAULT_LEDGER_PREFIX.into(),
        };
        assert_eq!(
            location.entry_key("src", "1/a b+ü.csv"),
            "ingest-ledger/objects/src/1/a b+ü.csv.json"
        );
        let long = "k".repeat(1024);
        let hashed = location.entry_key("src", &long);
        assert!(hashed.len() <= MAX_KEY_BYTES);
        assert!(hashed.starts_with("ingest-ledger/objects/src/#hashed/"));
        assert_ne!(hashed, location.entry_key("src", &"k".repeat(1023)));
        assert_eq!(
            location.report_key("run-1", "src", "a.csv", 7),
            "ingest-ledger/reports/run-1/src/a.csv/lines-000000000007.json"
        );
        assert!(location.holds("l", "ingest-ledger/objects/x"));
        assert!(!location.holds("other", "ingest-ledger/objects/x"));
    }
}

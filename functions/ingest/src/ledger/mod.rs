//! The ledger: one [`LedgerEntry`] per source object in S3, written only with conditional
//! writes, that says whether the object was ingested (and with which ETag), which run is
//! ingesting it and where its last checkpoint is; and the bad-input reports beside it.
//!
//! Layout under the ledger prefix (default [`DEFAULT_LEDGER_PREFIX`]):
//! - `records/<bucket>/…`: the entries, kept together in range records ([`records`]);
//! - `reports/<runId>/<bucket>/<key>/lines-<first line>.json`: rows or objects set aside.
//!
//! Every write carries `If-None-Match: *` (a new record) or `If-Match: <record ETag>` (every
//! later one), and changes an entry only if it is still as the writer read it, so two workers
//! can never both believe they own an object: the loser of a race reads again.

pub mod records;

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

/// S3's limit on key length, in bytes.
const MAX_KEY_BYTES: usize = 1024;

/// Attempts to read one entry: a read that broke off or met a transient error is made again.
const READ_ATTEMPTS: u32 = 4;

fn default_prefix() -> String {
    DEFAULT_LEDGER_PREFIX.to_owned()
}

/// Where a listing of ledger entries continues: after the record named `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryCursor {
    /// The last record read (`None`: the range's start).
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
    /// The folder of the range records of a source bucket's objects.
    pub fn records_folder(&self, bucket: &str) -> String {
        format!("{}records/{bucket}/", self.prefix)
    }

    /// The name of the record of `bucket` whose keys end before `hi` (`None`: the last one).
    /// The bound is written in hex, which sorts as the key does and holds no `/`, so no
    /// record's name is the folder of another's.
    pub fn record_key(&self, bucket: &str, hi: Option<&str>) -> String {
        match hi {
            Some(hi) => format!("{}r/{}", self.records_folder(bucket), to_hex(hi)),
            None => format!("{}z", self.records_folder(bucket)),
        }
    }

    /// Where a listing of `bucket`'s records starts so that the first record listed is the
    /// one holding `key`.
    pub fn records_after(&self, bucket: &str, key: &str) -> String {
        self.record_key(bucket, Some(key))
    }

    /// The upper bound a record name of `bucket` carries: `Some(None)` for the last record,
    /// `None` for a name that is not a record's.
    pub fn record_bound(&self, bucket: &str, name: &str) -> Option<Option<String>> {
        let rest = name.strip_prefix(&self.records_folder(bucket))?;
        if rest == "z" {
            return Some(None);
        }
        from_hex(rest.strip_prefix("r/")?).map(Some)
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
/// of it (the document itself still names the key).
fn bounded_key(folder: &str, key: &str, suffix: &str) -> String {
    let full = format!("{folder}{key}{suffix}");
    if full.len() <= MAX_KEY_BYTES {
        full
    } else {
        format!("{folder}#hashed/{:032x}{suffix}", key_hash(key))
    }
}

/// The bytes of `text` as lowercase hex: the order of two texts is the order of their hex.
fn to_hex(text: &str) -> String {
    use std::fmt::Write as _;
    text.bytes()
        .fold(String::with_capacity(text.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The text [`to_hex`] wrote, `None` when `hex` is not such.
fn from_hex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
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

/// A ledger entry with its version, for the next conditional write of it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The entry.
    pub entry: LedgerEntry,
    /// A digest of the entry as read ([`Ledger::write`] stores over it only while it is so).
    pub version: String,
}

impl Stored {
    fn of(entry: LedgerEntry) -> Self {
        let version = entry_version(&entry);
        Self { entry, version }
    }
}

/// A digest of an entry's contents: two reads give the same version exactly when the entry
/// did not change between them.
fn entry_version(entry: &LedgerEntry) -> String {
    let json = serde_json::to_string(entry).expect("ledger entries always serialise");
    format!("{:032x}", key_hash(&json))
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
    pub async fn read(&self, bucket: &str, key: &str) -> Result<Option<Stored>, IngestError> {
        let loaded = self.locate(bucket, key).await?;
        Ok(loaded.record.get(key).cloned().map(Stored::of))
    }

    /// [`Ledger::get_bytes`], made again when the body broke off or S3 answered with a
    /// transient error: ledger documents are small, and one broken connection must not fail
    /// a whole page's check.
    async fn get_retried(&self, key: &str) -> Result<Option<(String, Vec<u8>)>, IngestError> {
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
            || self.get_bytes(key),
        )
        .await
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

    /// Writes `body` at `ledger_key`: only if nothing is there (`previous` `None`) or only
    /// over the object whose ETag is `previous`. [`Write::Conflict`] when another writer got
    /// there first.
    async fn put_conditional(
        &self,
        ledger_key: &str,
        body: Vec<u8>,
        previous: Option<&str>,
    ) -> Result<Write, IngestError> {
        let request = self
            .s3
            .put_object()
            .bucket(&self.location.bucket)
            .key(ledger_key)
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
                    Err(self.error("PutObject", ledger_key, failure))
                }
            }
        }
    }

    /// Writes `entry`: only if the object has no entry (`previous` `None`) or only over the
    /// entry read as version `previous`. [`Write::Conflict`] when another writer got there
    /// first; [`Write::Stored`] carries the entry's new version.
    pub async fn write(
        &self,
        entry: &LedgerEntry,
        previous: Option<&str>,
    ) -> Result<Write, IngestError> {
        let mut answers = self
            .modify(
                &entry.bucket,
                &[entry.key.as_str()],
                &mut Vec::new(),
                |_, current| {
                    if current.map(entry_version).as_deref() == previous {
                        (Some(entry.clone()), Write::Stored(entry_version(entry)))
                    } else {
                        (None, Write::Conflict)
                    }
                },
            )
            .await?;
        Ok(answers.pop().expect("one answer per key"))
    }

    /// Every entry of objects under `prefix` in `bucket`, in key order.
    pub async fn entries(&self, bucket: &str, prefix: &str) -> Result<Vec<Stored>, IngestError> {
        let mut out: Vec<Stored> = Vec::new();
        let mut cursor = Some(EntryCursor::default());
        while let Some(at) = cursor {
            let (page, next) = self.entries_page(bucket, prefix, &at).await?;
            out.extend(page);
            cursor = next;
        }
        Ok(out)
    }

    /// The entries of objects under `prefix` in `bucket` from the records of one
    /// ListObjectsV2 page of the ledger (at most 1,000), in key order, and where the listing
    /// continues (`None`: done). A ledger of any size can so be read over several calls,
    /// each within its time.
    pub async fn entries_page(
        &self,
        bucket: &str,
        prefix: &str,
        cursor: &EntryCursor,
    ) -> Result<(Vec<Stored>, Option<EntryCursor>), IngestError> {
        let start_after = cursor
            .after
            .clone()
            .unwrap_or_else(|| self.location.records_after(bucket, prefix));
        let beyond = |lo: &str| lo > prefix && !lo.starts_with(prefix);
        let (records, next) = self.records_page(bucket, &start_after, &beyond).await?;
        let entries = records
            .into_iter()
            .flat_map(|loaded| loaded.record.entries)
            .filter(|entry| entry.key.starts_with(prefix))
            .map(Stored::of)
            .collect();
        Ok((
            entries,
            next.map(|after| EntryCursor { after: Some(after) }),
        ))
    }

    /// The entries of the objects of `bucket` from `first` to `last` (both included), by key.
    pub async fn entries_between(
        &self,
        bucket: &str,
        first: &str,
        last: &str,
    ) -> Result<std::collections::BTreeMap<String, LedgerEntry>, IngestError> {
        let mut out = std::collections::BTreeMap::new();
        let mut start_after = self.location.records_after(bucket, first);
        let beyond = |lo: &str| lo > last;
        loop {
            let (records, next) = self.records_page(bucket, &start_after, &beyond).await?;
            out.extend(
                records
                    .into_iter()
                    .flat_map(|loaded| loaded.record.entries)
                    .filter(|e| e.key.as_str() >= first && e.key.as_str() <= last)
                    .map(|e| (e.key.clone(), e)),
            );
            match next {
                Some(after) => start_after = after,
                None => return Ok(out),
            }
        }
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
        let held = |entry: &LedgerEntry, now: u64| {
            entry.state == EntryState::InProgress
                && entry.run_id == run_id
                && entry.lease_until_ms > now
        };
        let now = now_ms();
        let keys: Vec<String> = self
            .entries(bucket, prefix)
            .await?
            .into_iter()
            .filter(|stored| held(&stored.entry, now))
            .map(|stored| stored.entry.key)
            .collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        // An entry changed meanwhile by someone else is no longer this run's to release.
        let answers = self
            .modify(bucket, &key_refs, &mut Vec::new(), |_, current| {
                let now = now_ms();
                match current {
                    Some(entry) if held(entry, now) => {
                        let mut entry = entry.clone();
                        entry.lease_until_ms = now;
                        entry.updated_ms = now;
                        (Some(entry), true)
                    }
                    _ => (None, false),
                }
            })
            .await?;
        Ok(keys
            .into_iter()
            .zip(answers)
            .filter_map(|(key, released)| released.then_some(key))
            .collect())
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
            location.failure_key("run-1", "src", "1/a b+ü.csv"),
            "ingest-ledger/failures/run-1/src/1/a b+ü.csv.json"
        );
        let long = "k".repeat(1024);
        let hashed = location.failure_key("run-1", "src", &long);
        assert!(hashed.len() <= MAX_KEY_BYTES);
        assert!(hashed.starts_with("ingest-ledger/failures/run-1/src/#hashed/"));
        assert_ne!(
            hashed,
            location.failure_key("run-1", "src", &"k".repeat(1023))
        );
        assert_eq!(
            location.record_key("src", Some("1/b")),
            "ingest-ledger/records/src/r/312f62"
        );
        for bound in ["1/b", "", "ü/ß x"] {
            let name = location.record_key("src", Some(bound));
            assert_eq!(
                location.record_bound("src", &name),
                Some(Some(bound.into()))
            );
        }
        assert_eq!(
            location.record_bound("src", "ingest-ledger/records/src/z"),
            Some(None)
        );
        assert_eq!(
            location.record_bound("src", "ingest-ledger/records/src/r/3"),
            None
        );
        // Names sort as their bounds do, a bound before the keys it is a prefix of.
        let mut bounds = ["a/b", "a", "a.b", "a b", "ab", "a/", "é"];
        let mut names: Vec<String> = bounds
            .iter()
            .map(|b| location.record_key("src", Some(b)))
            .collect();
        bounds.sort_unstable();
        names.sort();
        let decoded: Vec<String> = names
            .iter()
            .map(|n| location.record_bound("src", n).unwrap().unwrap())
            .collect();
        assert_eq!(decoded, bounds);
        assert_eq!(
            location.record_key("src", None),
            "ingest-ledger/records/src/z"
        );
        assert_eq!(
            location.report_key("run-1", "src", "a.csv", 7),
            "ingest-ledger/reports/run-1/src/a.csv/lines-000000000007.json"
        );
        assert!(location.holds("l", "ingest-ledger/records/x"));
        assert!(!location.holds("other", "ingest-ledger/records/x"));
    }
}

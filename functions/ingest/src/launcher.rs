//! The launcher step: lists one S3 page, writes its work items to a manifest, and reports
//! where the listing continues.
//!
//! The items go to a manifest object rather than into the state's output because a page of
//! 1,000 keys of up to 1,024 bytes each would exceed Step Functions' 256 KiB payload limit;
//! the Distributed Map reads the manifest with its S3 ItemReader.

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use crate::error::IngestError;
use crate::ledger::{Ledger, LedgerLocation};
use crate::service_errors::{CallFailure, s3_error};

/// Keys per page unless the input says otherwise (the ListObjectsV2 maximum).
pub const DEFAULT_PAGE_SIZE: i32 = 1000;

/// Where manifests go in the source bucket unless the input says otherwise.
pub const DEFAULT_MANIFEST_PREFIX: &str = "ingest-manifests/";

/// Objects of at most this many bytes go to the batched manifest unless the input says
/// otherwise: a batch of them fits one worker invocation and an Express child workflow's five
/// minutes with room to spare, while a bigger object keeps a child (and a worker) of its own.
pub const DEFAULT_SMALL_OBJECT_BYTES: u64 = 1024 * 1024;

fn default_small_object_bytes() -> u64 {
    DEFAULT_SMALL_OBJECT_BYTES
}

/// Small objects per worker invocation at most, unless the input says otherwise.
pub const DEFAULT_OBJECTS_PER_BATCH: u32 = 50;

fn default_objects_per_batch() -> u32 {
    DEFAULT_OBJECTS_PER_BATCH
}

/// Workers the Maps run at once unless the input says otherwise.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 10;

fn default_max_concurrency() -> u32 {
    DEFAULT_MAX_CONCURRENCY
}

fn default_suffix() -> String {
    ".csv".to_owned()
}

fn default_page_size() -> i32 {
    DEFAULT_PAGE_SIZE
}

fn default_run_id() -> String {
    "manual".to_owned()
}

/// Input of one launcher invocation (`events/launcher-first-page.json`,
/// `events/launcher-next-page.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LauncherInput {
    /// Source bucket.
    pub bucket: String,
    /// Only keys under this prefix are listed.
    #[serde(default)]
    pub prefix: String,
    /// Only keys ending with this are ingested (default `.csv`; empty for every key).
    #[serde(default = "default_suffix")]
    pub suffix: String,
    /// Keys per page, 1–1000.
    #[serde(default = "default_page_size")]
    pub page_size: i32,
    /// Where the listing continues; absent on the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    /// Running totals from earlier pages (carried across continue-as-new).
    #[serde(default)]
    pub totals: Totals,
    /// The previous page's results, one per object or per batch of objects, folded into the
    /// totals by this call. Nested arrays are flattened, so the state machine can pass both of
    /// a page's Map results as `[[...], [...]]`.
    #[serde(default, deserialize_with = "flattened_results")]
    pub results: Vec<ObjectCounts>,
    /// Where manifests are written; defaults to the source bucket under
    /// [`DEFAULT_MANIFEST_PREFIX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestLocation>,
    /// Names this run's manifest folder (the state machine passes its first execution's name).
    #[serde(default = "default_run_id")]
    pub run_id: String,
    /// The ledger: objects it records as ingested with their current ETag are left out of
    /// the page, and its own keys are never work. Absent: every listed object is work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerLocation>,
    /// Objects of at most this many bytes go to the page's batched manifest, which the state
    /// machine hands out several objects per worker invocation; bigger ones to the per-object
    /// manifest (default 1 MiB; 0: every object alone).
    #[serde(default = "default_small_object_bytes")]
    pub small_object_bytes: u64,
    /// Small objects per worker invocation at most (default 50). A page with fewer small
    /// objects than this times `maxConcurrency` gets smaller batches, so that every worker the
    /// Map may run has some.
    #[serde(default = "default_objects_per_batch")]
    pub objects_per_batch: u32,
    /// Workers each Map runs at once (its `MaxConcurrency`; default 10, 0: no limit).
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
}

/// Reads `[counts, ...]`, `[[counts, ...], [counts, ...]]` or a mix as one flat list.
pub fn flattened_results<'de, D>(deserializer: D) -> Result<Vec<ObjectCounts>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        One(ObjectCounts),
        Many(Vec<Entry>),
    }
    fn push(entry: Entry, into: &mut Vec<ObjectCounts>) {
        match entry {
            Entry::One(counts) => into.push(counts),
            Entry::Many(entries) => entries.into_iter().for_each(|e| push(e, into)),
        }
    }
    let entries = Option::<Vec<Entry>>::deserialize(deserializer)?.unwrap_or_default();
    let mut flat = Vec::with_capacity(entries.len());
    entries.into_iter().for_each(|e| push(e, &mut flat));
    Ok(flat)
}

/// A bucket and prefix for manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestLocation {
    /// Manifest bucket.
    pub bucket: String,
    /// Manifest key prefix.
    #[serde(default)]
    pub prefix: String,
}

/// Counts over every page listed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Totals {
    /// Pages listed.
    pub pages: u64,
    /// Objects handed to workers.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Rows acknowledged by the channel, over the pages whose results were folded in.
    pub rows: u64,
    /// BatchPutMessage re-sends over those pages.
    pub retries: u64,
    /// Rows set aside over those pages.
    pub bad_rows: u64,
    /// Objects left out because the ledger had them ingested, or another run held them.
    pub skipped: u64,
    /// Rows the ledger records for the objects skipped as already ingested.
    pub skipped_rows: u64,
    /// Objects set aside (bad header, or a bad row under the `fail` policy).
    pub set_aside: u64,
}

/// What the state machine keeps of one finished object: counts only, so a page's results
/// stay small in the state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectCounts {
    /// Rows acknowledged.
    pub rows: u64,
    /// Re-sends.
    pub retries: u64,
    /// Rows set aside.
    pub bad_rows: u64,
    /// 1 when the worker found nothing to do (already ingested, or held by another run).
    pub skipped: u64,
    /// Rows the ledger records for an object found already ingested.
    pub skipped_rows: u64,
    /// 1 when the object was set aside.
    pub set_aside: u64,
}

impl Totals {
    /// These totals with a page's object results added.
    pub fn with_results(mut self, results: &[ObjectCounts]) -> Self {
        for result in results {
            self.rows += result.rows;
            self.retries += result.retries;
            self.bad_rows += result.bad_rows;
            self.skipped += result.skipped;
            self.skipped_rows += result.skipped_rows;
            self.set_aside += result.set_aside;
        }
        self
    }
}

/// One object for a worker: the manifest holds a JSON array of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkItem {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// ETag at listing time; the worker refuses an object whose ETag changed.
    pub etag: String,
    /// Size in bytes.
    pub size: i64,
}

/// The manifest object written for a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestObject {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
}

/// Output of one launcher invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LauncherOutput {
    /// This page's number, 1-based across the whole run.
    pub page: u64,
    /// Objects in this page's two manifests.
    pub item_count: u64,
    /// The objects bigger than `smallObjectBytes`, each for a worker of its own: a JSON array
    /// of [`WorkItem`].
    pub manifest: ManifestObject,
    /// The small objects, handed out several per worker invocation: a JSON array of
    /// [`WorkItem`].
    pub batch_manifest: ManifestObject,
    /// Objects in `batchManifest`.
    pub batched_count: u64,
    /// How the page's objects are spread over workers.
    pub workers: WorkerPlan,
    /// Where the listing continues; absent when it is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Totals including this page.
    pub totals: Totals,
}

/// How a page's objects are spread over the workers, so that the channel's rate is shared
/// among the workers that actually run rather than among `maxConcurrency` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPlan {
    /// Small objects per batch (the ItemBatcher's `MaxItemsPerBatch`), at least 1.
    pub objects_per_batch: u32,
    /// Batch workers that run at once on this page, at least 1: each is paced at the rate
    /// divided by this.
    pub batch_workers: u32,
    /// Large-object workers that run at once on this page, at least 1.
    pub large_object_workers: u32,
}

impl WorkerPlan {
    /// The plan for `batched` small and `alone` large objects. A worker's share of the rate is
    /// the rate over the workers that run at once; with fewer batches than `max_concurrency`,
    /// dividing by `max_concurrency` would leave most of the rate unused, so the small objects
    /// are first spread over as many batches as may run. More objects than one round of
    /// workers takes are cut into equal batches that fill whole rounds: 18 batches for 10
    /// workers would leave two of them idle in the second round, and their share of the rate
    /// unused.
    pub fn for_page(
        batched: u64,
        alone: u64,
        objects_per_batch: u32,
        max_concurrency: u32,
    ) -> Self {
        let limit = |workers: u64| match max_concurrency {
            0 => workers,
            most => workers.min(u64::from(most)),
        };
        let most_per_batch = u64::from(objects_per_batch.max(1));
        let per_batch = match max_concurrency {
            0 => most_per_batch,
            most => {
                let most = u64::from(most);
                let rounds = batched.div_ceil(most * most_per_batch).max(1);
                batched.div_ceil(most * rounds).max(1)
            }
        };
        let to_u32 = |n: u64| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        Self {
            objects_per_batch: to_u32(per_batch),
            batch_workers: to_u32(limit(batched.div_ceil(per_batch))),
            large_object_workers: to_u32(limit(alone)),
        }
    }
}

impl LauncherInput {
    fn validate(&self) -> Result<(), IngestError> {
        if self.bucket.is_empty() {
            return Err(IngestError::invalid_input("bucket", "must not be empty"));
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(IngestError::invalid_input(
                "pageSize",
                format!("{} is outside 1–1000", self.page_size),
            ));
        }
        if self.objects_per_batch == 0 {
            return Err(IngestError::invalid_input(
                "objectsPerBatch",
                "must be at least 1",
            ));
        }
        if self.run_id.is_empty() || self.run_id.contains('/') {
            return Err(IngestError::invalid_input(
                "runId",
                "must be non-empty and contain no '/'",
            ));
        }
        Ok(())
    }

    fn manifest_location(&self) -> ManifestLocation {
        self.manifest.clone().unwrap_or_else(|| ManifestLocation {
            bucket: self.bucket.clone(),
            prefix: DEFAULT_MANIFEST_PREFIX.to_owned(),
        })
    }
}

/// Lists one page with exactly one ListObjectsV2 call and writes its manifest.
///
/// Keys ending in `/` ("folders"), keys not ending with the suffix, and the run's own
/// manifests are left out. An empty bucket gives an empty manifest and `hasMore: false`.
pub async fn list_page(
    s3: &aws_sdk_s3::Client,
    input: &LauncherInput,
) -> Result<LauncherOutput, IngestError> {
    input.validate()?;
    let manifest_location = input.manifest_location();
    let listing = s3
        .list_objects_v2()
        .bucket(&input.bucket)
        .prefix(&input.prefix)
        .max_keys(input.page_size)
        .set_continuation_token(input.continuation_token.clone())
        .send()
        .await
        .map_err(|e| {
            s3_error(
                "ListObjectsV2",
                &input.bucket,
                &input.bucket,
                CallFailure::from_sdk(&e),
            )
        })?;

    let skip_manifests = manifest_location.bucket == input.bucket;
    let listed: Vec<WorkItem> = listing
        .contents()
        .iter()
        .filter_map(|object| {
            let key = object.key()?;
            let wanted = !key.ends_with('/')
                && key.ends_with(input.suffix.as_str())
                && !(skip_manifests && key.starts_with(manifest_location.prefix.as_str()))
                && input
                    .ledger
                    .as_ref()
                    .is_none_or(|ledger| !ledger.holds(&input.bucket, key));
            wanted.then(|| WorkItem {
                bucket: input.bucket.clone(),
                key: key.to_owned(),
                etag: object.e_tag().unwrap_or_default().to_owned(),
                size: object.size().unwrap_or(0),
            })
        })
        .collect();
    let (items, skipped, skipped_rows) = match &input.ledger {
        Some(location) => leave_out_ingested(Ledger::new(s3, location), listed).await?,
        None => (listed, 0, 0),
    };

    let page = input.totals.pages + 1;
    let is_small =
        |item: &WorkItem| u64::try_from(item.size).unwrap_or(0) <= input.small_object_bytes;
    let (batched, alone): (Vec<&WorkItem>, Vec<&WorkItem>) =
        items.iter().partition(|item| is_small(item));
    let workers = WorkerPlan::for_page(
        batched.len() as u64,
        alone.len() as u64,
        input.objects_per_batch,
        input.max_concurrency,
    );
    if let Some(location) = &input.ledger {
        let points = record_bounds(
            &items,
            |item| !is_small(item),
            &batched,
            workers.objects_per_batch as usize,
        );
        Ledger::new(s3, location)
            .split_at(&input.bucket, &points)
            .await?;
    }
    let folder = format!("{}{}", manifest_location.prefix, input.run_id);
    let manifest = ManifestObject {
        bucket: manifest_location.bucket.clone(),
        key: format!("{folder}/page-{page:06}.json"),
    };
    let batch_manifest = ManifestObject {
        bucket: manifest_location.bucket.clone(),
        key: format!("{folder}/page-{page:06}-batched.json"),
    };
    futures::try_join!(
        write_manifest(s3, &manifest, &alone),
        write_manifest(s3, &batch_manifest, &batched)
    )?;

    let continuation_token = listing
        .is_truncated()
        .unwrap_or(false)
        .then(|| listing.next_continuation_token().map(str::to_owned))
        .flatten();
    let folded = input.totals.with_results(&input.results);
    let totals = Totals {
        pages: page,
        objects: folded.objects + items.len() as u64,
        bytes: folded.bytes + items.iter().map(|i| i.size.max(0) as u64).sum::<u64>(),
        skipped: folded.skipped + skipped,
        skipped_rows: folded.skipped_rows + skipped_rows,
        ..folded
    };
    tracing::info!(
        bucket = %input.bucket,
        page,
        items = items.len(),
        batched = batched.len(),
        skipped,
        manifest = %manifest.key,
        more = continuation_token.is_some(),
        "listed page"
    );
    Ok(LauncherOutput {
        page,
        item_count: items.len() as u64,
        batched_count: batched.len() as u64,
        workers,
        manifest,
        batch_manifest,
        has_more: continuation_token.is_some(),
        continuation_token,
        totals,
    })
}

/// Writes `items` as a JSON array to `manifest`.
async fn write_manifest(
    s3: &aws_sdk_s3::Client,
    manifest: &ManifestObject,
    items: &[&WorkItem],
) -> Result<(), IngestError> {
    let body = serde_json::to_vec(items).expect("work items always serialise");
    s3.put_object()
        .bucket(&manifest.bucket)
        .key(&manifest.key)
        .content_type("application/json")
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| {
            s3_error(
                "PutObject",
                &manifest.bucket,
                &format!("{}/{}", manifest.bucket, manifest.key),
                CallFailure::from_sdk(&e),
            )
        })?;
    Ok(())
}

/// The items the ledger does not record as ingested with their listed ETag, with how many
/// were left out and the rows the ledger records for them. `listed` is in key order, as
/// ListObjectsV2 lists it, and of one bucket.
async fn leave_out_ingested(
    ledger: Ledger<'_>,
    listed: Vec<WorkItem>,
) -> Result<(Vec<WorkItem>, u64, u64), IngestError> {
    let (Some(first), Some(last)) = (listed.first(), listed.last()) else {
        return Ok((listed, 0, 0));
    };
    let entries = ledger
        .entries_between(&first.bucket, &first.key, &last.key)
        .await?;
    let (mut skipped, mut skipped_rows) = (0, 0);
    let mut items = Vec::with_capacity(listed.len());
    for item in listed {
        match entries.get(&item.key) {
            Some(entry) if entry.is_ingested(&item.etag) => {
                skipped += 1;
                skipped_rows += entry.rows;
            }
            _ => items.push(item),
        }
    }
    Ok((items, skipped, skipped_rows))
}

/// Where the ledger's records should start so that each batch of `batched` (in key order,
/// `per_batch` objects each) and each object of `items` (the page's work, in key order) that
/// `is_alone` has records of its own: their workers then claim and checkpoint without racing
/// other workers for one record.
fn record_bounds(
    items: &[WorkItem],
    is_alone: impl Fn(&WorkItem) -> bool,
    batched: &[&WorkItem],
    per_batch: usize,
) -> Vec<String> {
    let mut points: Vec<String> = batched.first().map(|i| i.key.clone()).into_iter().collect();
    points.extend(
        batched
            .windows(2)
            .enumerate()
            .filter(|(i, _)| (i + 1) % per_batch.max(1) == 0)
            .filter_map(|(_, pair)| Ledger::separator(&pair[0].key, &pair[1].key)),
    );
    for (i, item) in items.iter().enumerate() {
        if is_alone(item) {
            points.push(item.key.clone());
            points.extend(items.get(i + 1).map(|next| next.key.clone()));
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::list_objects_v2::{ListObjectsV2Error, ListObjectsV2Output};
    use aws_sdk_s3::operation::put_object::PutObjectOutput;
    use aws_sdk_s3::types::Object;
    use aws_sdk_s3::types::error::NoSuchBucket;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use std::sync::{Arc, Mutex};

    fn input(json: serde_json::Value) -> LauncherInput {
        serde_json::from_value(json).unwrap()
    }

    fn object(key: &str, size: i64) -> Object {
        Object::builder()
            .key(key)
            .size(size)
            .e_tag(format!("\"etag-{key}\""))
            .build()
    }

    /// Keys and bodies of the PutObject calls made.
    type Puts = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

    /// A client whose ListObjectsV2 answers `listing` and whose PutObject bodies are captured.
    fn client_with(listing: ListObjectsV2Output) -> (aws_sdk_s3::Client, Puts) {
        let puts = Arc::new(Mutex::new(Vec::new()));
        let captured = puts.clone();
        let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_output(move || listing.clone());
        let put = mock!(aws_sdk_s3::Client::put_object)
            .match_requests(move |req| {
                let body = req.body().bytes().unwrap_or_default().to_vec();
                captured
                    .lock()
                    .unwrap()
                    .push((req.key().unwrap_or_default().to_owned(), body));
                true
            })
            .then_output(|| PutObjectOutput::builder().build());
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[&list, &put]);
        (client, puts)
    }

    #[test]
    fn each_batch_and_each_large_object_gets_records_of_its_own() {
        let item = |key: &str, size: i64| WorkItem {
            bucket: "src".into(),
            key: key.into(),
            etag: "\"e\"".into(),
            size,
        };
        let items = vec![
            item("a/1.csv", 1),
            item("a/2.csv", 1),
            item("b/big.csv", 100),
            item("c/1.csv", 1),
            item("c/2.csv", 1),
            item("c/3.csv", 1),
        ];
        let batched: Vec<&WorkItem> = items.iter().filter(|i| i.size == 1).collect();
        let mut points = record_bounds(&items, |i| i.size > 1, &batched, 2);
        points.sort();
        points.dedup();
        // Batches [a/1, a/2], [c/1, c/2], [c/3] (the second starting at "c", the shortest key
        // after a/2); the large object alone from its key to the next object's.
        assert_eq!(points, ["a/1.csv", "b/big.csv", "c", "c/1.csv", "c/3"]);
    }

    #[tokio::test]
    async fn a_page_keeps_only_matching_objects_and_writes_them_to_a_manifest() {
        let listing = ListObjectsV2Output::builder()
            .contents(object("data/", 0))
            .contents(object("data/a.csv", 10))
            .contents(object("data/notes.txt", 5))
            .contents(object("data/b.csv", 20))
            .is_truncated(true)
            .next_continuation_token("token-2")
            .build();
        let (s3, puts) = client_with(listing);
        let request = input(serde_json::json!({
            "bucket": "src", "prefix": "data/", "runId": "exec-1", "smallObjectBytes": 15,
            "totals": {"pages": 4, "objects": 100, "bytes": 1000, "rows": 7},
            "results": [[{"rows": 10, "retries": 1, "badRows": 0}], [{"rows": 5, "retries": 0, "badRows": 2}]]
        }));
        let out = list_page(&s3, &request).await.unwrap();
        assert_eq!(out.page, 5);
        assert_eq!(out.item_count, 2);
        assert_eq!(out.batched_count, 1);
        assert!(out.has_more);
        assert_eq!(out.continuation_token.as_deref(), Some("token-2"));
        assert_eq!(
            out.totals,
            Totals {
                pages: 5,
                objects: 102,
                bytes: 1030,
                rows: 22,
                retries: 1,
                bad_rows: 2,
                ..Totals::default()
            }
        );
        assert_eq!(out.manifest.key, "ingest-manifests/exec-1/page-000005.json");
        assert_eq!(
            out.batch_manifest.key,
            "ingest-manifests/exec-1/page-000005-batched.json"
        );
        let mut puts = puts.lock().unwrap().clone();
        // By key: the batched manifest's name sorts first.
        puts.sort();
        let keys_in = |body: &[u8]| {
            let items: Vec<WorkItem> = serde_json::from_slice(body).unwrap();
            items
                .into_iter()
                .map(|i| (i.key, i.etag))
                .collect::<Vec<_>>()
        };
        assert_eq!(puts.len(), 2);
        assert_eq!(
            keys_in(&puts[1].1),
            [("data/b.csv".to_owned(), "\"etag-data/b.csv\"".to_owned())],
            "the object over smallObjectBytes goes alone"
        );
        assert_eq!(
            keys_in(&puts[0].1),
            [("data/a.csv".to_owned(), "\"etag-data/a.csv\"".to_owned())],
            "the small object goes to the batched manifest"
        );
    }

    #[tokio::test]
    async fn an_empty_bucket_gives_an_empty_last_page() {
        let (s3, puts) = client_with(ListObjectsV2Output::builder().build());
        let out = list_page(&s3, &input(serde_json::json!({"bucket": "src"})))
            .await
            .unwrap();
        assert_eq!(out.item_count, 0);
        assert!(!out.has_more);
        assert!(out.continuation_token.is_none());
        assert_eq!(puts.lock().unwrap()[0].1, b"[]");
    }

    #[tokio::test]
    async fn the_runs_own_manifests_are_never_work() {
        let listing = ListObjectsV2Output::builder()
            .contents(object("ingest-manifests/old/page-000001.json", 10))
            .contents(object("x.json", 10))
            .build();
        let (s3, _) = client_with(listing);
        let out = list_page(
            &s3,
            &input(serde_json::json!({"bucket": "src", "suffix": ""})),
        )
        .await
        .unwrap();
        assert_eq!(out.item_count, 1);
    }

    #[tokio::test]
    async fn a_missing_bucket_is_a_typed_error() {
        let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_error(|| {
            ListObjectsV2Error::NoSuchBucket(
                NoSuchBucket::builder()
                    .message("nope")
                    .meta(crate::sender::tests::code("NoSuchBucket"))
                    .build(),
            )
        });
        let s3 = mock_client!(aws_sdk_s3, &[&list]);
        let error = list_page(&s3, &input(serde_json::json!({"bucket": "gone"})))
            .await
            .unwrap_err();
        assert_eq!(error.error_type(), "BucketNotFound");
        assert!(error.to_string().contains("gone"));
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn out_of_range_page_sizes_are_refused_before_any_call() {
        let s3 = mock_client!(aws_sdk_s3, &[]);
        let error = list_page(
            &s3,
            &input(serde_json::json!({"bucket": "b", "pageSize": 1001})),
        )
        .await
        .unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("pageSize"));
    }

    #[test]
    fn a_page_with_few_small_objects_spreads_them_over_every_worker_it_may_run() {
        // The sample set: 100 small objects, at most 50 a batch, 10 workers.
        let sample = WorkerPlan::for_page(100, 0, 50, 10);
        assert_eq!(sample.objects_per_batch, 10);
        assert_eq!(sample.batch_workers, 10);
        // A full page keeps whole batches: the invocations per object stay as few as asked.
        let full = WorkerPlan::for_page(1000, 0, 50, 10);
        assert_eq!((full.objects_per_batch, full.batch_workers), (50, 10));
        // Uneven: 23 objects over 10 workers is 8 batches of 3, not 10.
        let uneven = WorkerPlan::for_page(23, 0, 50, 10);
        assert_eq!((uneven.objects_per_batch, uneven.batch_workers), (3, 8));
    }

    #[test]
    fn a_page_of_many_small_objects_fills_whole_rounds_of_workers() {
        // 900 objects in batches of 50 would be 18: a second round of 8 with 2 workers idle.
        let plan = WorkerPlan::for_page(900, 0, 50, 10);
        assert_eq!((plan.objects_per_batch, plan.batch_workers), (45, 10));
        assert_eq!(900_u64.div_ceil(45), 20);
        // Three rounds: 30 batches of at most 34, never more than 50 a batch.
        let plan = WorkerPlan::for_page(1001, 0, 50, 10);
        assert_eq!(plan.objects_per_batch, 34);
        assert_eq!(1001_u64.div_ceil(34), 30);
    }

    #[test]
    fn the_rate_is_shared_only_by_workers_that_can_run() {
        let few_large = WorkerPlan::for_page(0, 3, 50, 10);
        assert_eq!(few_large.large_object_workers, 3);
        assert_eq!(few_large.batch_workers, 1);
        let many_large = WorkerPlan::for_page(7, 40, 50, 10);
        assert_eq!(many_large.large_object_workers, 10);
        assert_eq!(
            (many_large.objects_per_batch, many_large.batch_workers),
            (1, 7)
        );
        // No concurrency limit: every batch and object runs at once.
        let unlimited = WorkerPlan::for_page(120, 4, 50, 0);
        assert_eq!(
            (unlimited.objects_per_batch, unlimited.batch_workers),
            (50, 3)
        );
        assert_eq!(unlimited.large_object_workers, 4);
    }

    #[tokio::test]
    async fn a_batch_of_no_objects_is_refused_before_any_call() {
        let s3 = mock_client!(aws_sdk_s3, &[]);
        let error = list_page(
            &s3,
            &input(serde_json::json!({"bucket": "b", "objectsPerBatch": 0})),
        )
        .await
        .unwrap_err();
        assert_eq!(error.error_type(), "InvalidInput");
        assert!(error.to_string().contains("objectsPerBatch"));
    }

    #[test]
    fn a_full_page_of_the_longest_keys_stays_far_below_the_state_payload_limit() {
        let key = "k".repeat(1024);
        let output = LauncherOutput {
            page: 123_456,
            item_count: 1000,
            batched_count: 1000,
            workers: WorkerPlan::for_page(1000, 0, u32::MAX, u32::MAX),
            manifest: ManifestObject {
                bucket: "b".repeat(63),
                key: format!(
                    "{DEFAULT_MANIFEST_PREFIX}{}/page-123456.json",
                    "r".repeat(80)
                ),
            },
            batch_manifest: ManifestObject {
                bucket: "b".repeat(63),
                key: format!(
                    "{DEFAULT_MANIFEST_PREFIX}{}/page-123456-batched.json",
                    "r".repeat(80)
                ),
            },
            continuation_token: Some("t".repeat(1024)),
            has_more: true,
            totals: Totals {
                pages: u64::MAX,
                objects: u64::MAX,
                bytes: u64::MAX,
                rows: u64::MAX,
                retries: u64::MAX,
                bad_rows: u64::MAX,
                skipped: u64::MAX,
                skipped_rows: u64::MAX,
                set_aside: u64::MAX,
            },
        };
        let state = serde_json::to_vec(&output).unwrap();
        assert!(state.len() < 4 * 1024, "{} bytes", state.len());
        // The manifest, which holds the keys, is an S3 object and not state payload.
        let items: Vec<WorkItem> = (0..1000)
            .map(|_| WorkItem {
                bucket: "b".repeat(63),
                key: key.clone(),
                etag: format!("\"{}\"", "e".repeat(32)),
                size: i64::MAX,
            })
            .collect();
        let manifest = serde_json::to_vec(&items).unwrap();
        assert!(manifest.len() > 256 * 1024, "inline items would not fit");
    }
}

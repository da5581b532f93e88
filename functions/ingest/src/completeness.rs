//! The default validation: every row the ledger records as sent is in the datastore, object by
//! object, counted by the row identity each message carries (`_src`, `_row`), and rows stored
//! more than once are counted as duplicates.
//!
//! A count of all rows cannot tell a missing row from a duplicate; a count of distinct
//! identities per object can. An object still claimed by an unfinished run fails the check
//! too: its rows are not all in yet, and the check names the run and its lease.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::batches::{ROW_ATTRIBUTE, SOURCE_ATTRIBUTE};
use crate::error::IngestError;
use crate::ledger::{EntryCursor, EntryState, Ledger, LedgerEntry, LedgerLocation};

/// Objects the failure message names one by one; the counts cover all of them.
const NAMED_IN_FAILURE: usize = 10;

/// The `_src` value of an object's rows: 16 hex digits of a 64-bit FNV-1a hash of its bucket,
/// key and ETag, so a replaced object's rows never count for its new version.
pub fn source_id(bucket: &str, key: &str, etag: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let etag = etag.trim_matches('"');
    let hash = [bucket.as_bytes(), key.as_bytes(), etag.as_bytes()]
        .iter()
        .enumerate()
        .flat_map(|(i, part)| (i > 0).then_some(&b"\n"[..]).into_iter().chain([*part]))
        .flatten()
        .fold(OFFSET, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
        });
    format!("{hash:016x}")
}

/// The dataset query of the default validation: per source object, the rows stored and the
/// distinct row numbers among them.
pub fn identity_sql(datastore: &str) -> String {
    format!(
        "SELECT {SOURCE_ATTRIBUTE} AS source, count(*) AS stored, count(DISTINCT {ROW_ATTRIBUTE}) AS distinct_rows FROM {datastore} WHERE {SOURCE_ATTRIBUTE} IS NOT NULL GROUP BY {SOURCE_ATTRIBUTE}"
    )
}

/// Which objects the default validation compares: those the ledger records under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerObject {
    /// The ledger (`null`: the run keeps none, and nothing can be compared).
    pub ledger: Option<LedgerLocation>,
    /// Source bucket.
    pub bucket: String,
    /// Source prefix.
    #[serde(default)]
    pub prefix: String,
    /// Source key suffix (`.csv` by default).
    #[serde(default)]
    pub suffix: String,
}

/// Rows stored for one object, and distinct row numbers among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredCounts {
    /// Rows stored.
    pub stored: u64,
    /// Distinct row numbers.
    pub distinct: u64,
}

/// Reads the result of [`identity_sql`]: source id → counts.
pub fn parse_counts(csv: &[u8]) -> Result<HashMap<String, StoredCounts>, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv);
    let header = reader
        .headers()
        .map_err(|e| format!("result CSV header: {e}"))?
        .clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("the result has no column {name}"))
    };
    let (source, stored, distinct) = (
        column("source")?,
        column("stored")?,
        column("distinct_rows")?,
    );
    let mut out = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("result CSV row: {e}"))?;
        let number = |index: usize| {
            let text = record.get(index).unwrap_or_default().trim();
            // A count may come back as `12.0` from some engines.
            text.parse::<u64>()
                .or_else(|_| text.parse::<f64>().map(|f| f as u64))
                .map_err(|_| format!("{text:?} is not a count"))
        };
        out.insert(
            record.get(source).unwrap_or_default().to_owned(),
            StoredCounts {
                stored: number(stored)?,
                distinct: number(distinct)?,
            },
        );
    }
    Ok(out)
}

/// The outcome of the per-object comparison, over some or all of the ledger's entries: two
/// outcomes over different entries add up ([`Completeness::add`]), so a ledger too large for
/// one call is compared page by page. It names the first [`NAMED_IN_FAILURE`] objects of each
/// kind and counts them all, so it stays small whatever the ledger's size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Completeness {
    /// Objects compared (ingested or set aside).
    pub objects: u64,
    /// Rows the ledger records as sent for them.
    pub expected_rows: u64,
    /// Distinct rows of theirs in the datastore.
    pub distinct_rows: u64,
    /// Rows of theirs stored, duplicates included.
    pub stored_rows: u64,
    /// Objects with fewer distinct rows stored than the ledger records.
    pub short_objects: u64,
    /// Rows the ledger records as sent that the datastore does not hold.
    pub missing_rows: u64,
    /// The first of those objects: key, expected, found.
    pub short: Vec<(String, u64, u64)>,
    /// Objects still claimed by a run that has not finished them.
    pub held_objects: u64,
    /// The first of those: key, run, lease end (ms).
    pub held: Vec<(String, String, u64)>,
}

impl Completeness {
    /// Rows the ledger records as sent that the datastore does not hold.
    pub fn missing_rows(&self) -> u64 {
        self.missing_rows
    }

    /// Adds the outcome over other entries to this one.
    pub fn add(&mut self, other: Completeness) {
        self.objects += other.objects;
        self.expected_rows += other.expected_rows;
        self.distinct_rows += other.distinct_rows;
        self.stored_rows += other.stored_rows;
        self.short_objects += other.short_objects;
        self.missing_rows += other.missing_rows;
        self.held_objects += other.held_objects;
        let room = NAMED_IN_FAILURE.saturating_sub(self.short.len());
        self.short.extend(other.short.into_iter().take(room));
        let room = NAMED_IN_FAILURE.saturating_sub(self.held.len());
        self.held.extend(other.held.into_iter().take(room));
    }

    /// Rows stored more than once (each extra copy counts one).
    pub fn duplicates(&self) -> u64 {
        self.stored_rows - self.distinct_rows
    }

    /// Nothing missing and nothing held.
    pub fn passed(&self) -> bool {
        self.short_objects == 0 && self.held_objects == 0
    }

    /// The figures, as the validation's `actual` columns.
    pub fn actual(&self) -> BTreeMap<String, String> {
        [
            ("objects", self.objects),
            ("expected_rows", self.expected_rows),
            ("distinct_rows", self.distinct_rows),
            ("stored_rows", self.stored_rows),
            ("duplicates", self.duplicates()),
            ("missing_rows", self.missing_rows()),
            ("held_objects", self.held_objects),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_string()))
        .collect()
    }

    /// What failed, one clause per problem (at most [`NAMED_IN_FAILURE`] objects named each).
    pub fn failures(&self, bucket: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.short_objects > 0 {
            let mut text = format!(
                "{} rows missing from {} objects:",
                self.missing_rows, self.short_objects
            );
            for (key, want, got) in self.short.iter().take(NAMED_IN_FAILURE) {
                text.push_str(&format!(
                    " s3://{bucket}/{key} ({got} of {want} rows stored)"
                ));
            }
            out.push(text);
        }
        if self.held_objects > 0 {
            let mut text = format!(
                "{} objects are still held by an unfinished run:",
                self.held_objects
            );
            for (key, run, lease) in self.held.iter().take(NAMED_IN_FAILURE) {
                text.push_str(&format!(
                    " s3://{bucket}/{key} (run {run}, lease until {})",
                    iso_ms(*lease)
                ));
            }
            out.push(text);
        }
        out
    }
}

/// Compares the ledger's entries with the datastore's per-object counts.
pub fn compare(entries: &[LedgerEntry], stored: &HashMap<String, StoredCounts>) -> Completeness {
    let mut out = Completeness::default();
    for entry in entries {
        if entry.state == EntryState::InProgress {
            out.held_objects += 1;
            if out.held.len() < NAMED_IN_FAILURE {
                out.held.push((
                    entry.key.clone(),
                    entry.run_id.clone(),
                    entry.lease_until_ms,
                ));
            }
            continue;
        }
        let counts = stored
            .get(&source_id(&entry.bucket, &entry.key, &entry.etag))
            .copied()
            .unwrap_or_default();
        out.objects += 1;
        out.expected_rows += entry.rows;
        out.distinct_rows += counts.distinct;
        out.stored_rows += counts.stored;
        if counts.distinct < entry.rows {
            out.short_objects += 1;
            out.missing_rows += entry.rows - counts.distinct;
            if out.short.len() < NAMED_IN_FAILURE {
                out.short
                    .push((entry.key.clone(), entry.rows, counts.distinct));
            }
        }
    }
    out
}

/// Where a per-object comparison that did not fit one call stands: where the ledger's listing
/// goes on, and the outcome over the entries compared so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckProgress {
    /// Where the listing of the ledger goes on.
    pub cursor: EntryCursor,
    /// The outcome so far.
    pub so_far: Completeness,
}

/// How far [`compare_ledger`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compared {
    /// Every entry compared.
    Done(Completeness),
    /// Stopped at `stop_at`: go on from here in another call.
    Paused(CheckProgress),
}

/// Compares the ledger's entries of the objects `per_object` names with the datastore's
/// `stored` counts, one ledger page after another from `from` (the start when `None`), until
/// the ledger ends or `stop_at` passes. Reading every entry of a large run takes longer than
/// one call may (200,000 objects are 200,000 GETs), so the comparison pauses and resumes.
pub async fn compare_ledger(
    ledger: Ledger<'_>,
    per_object: &PerObject,
    stored: &HashMap<String, StoredCounts>,
    from: Option<CheckProgress>,
    stop_at: Option<Instant>,
) -> Result<Compared, IngestError> {
    let mut progress = from.unwrap_or_default();
    loop {
        let (page, next) = ledger
            .entries_page(&per_object.bucket, &per_object.prefix, &progress.cursor)
            .await?;
        let mut entries: Vec<LedgerEntry> = page
            .into_iter()
            .map(|stored| stored.entry)
            .filter(|entry| entry.key.ends_with(&per_object.suffix))
            .collect();
        // Reads finish in any order; key order names the same objects first every time.
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        progress.so_far.add(compare(&entries, stored));
        let Some(cursor) = next else {
            return Ok(Compared::Done(progress.so_far));
        };
        progress.cursor = cursor;
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            return Ok(Compared::Paused(progress));
        }
    }
}

/// Milliseconds since the epoch as an ISO 8601 UTC time.
fn iso_ms(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, state: EntryState, rows: u64) -> LedgerEntry {
        LedgerEntry {
            key: key.into(),
            rows,
            ..crate::ledger::tests::entry(state, "run-1", 1_764_633_600_000)
        }
    }

    #[test]
    fn source_ids_differ_by_bucket_key_and_etag_but_not_by_etag_quotes() {
        let id = source_id("b", "k.csv", "\"e1\"");
        assert_eq!(id.len(), 16);
        assert_eq!(id, source_id("b", "k.csv", "e1"));
        assert_ne!(id, source_id("b", "k.csv", "e2"));
        assert_ne!(id, source_id("c", "k.csv", "e1"));
        assert_ne!(source_id("b", "ak", "e"), source_id("ba", "k", "e"));
    }

    #[test]
    fn a_missing_row_fails_and_a_duplicate_is_counted_but_passes() {
        let entries = [
            entry("a.csv", EntryState::Ingested, 3),
            entry("b.csv", EntryState::Ingested, 2),
        ];
        let mut stored = HashMap::from([
            (
                source_id("src", "a.csv", "e1"),
                StoredCounts {
                    stored: 4,
                    distinct: 3,
                },
            ),
            (
                source_id("src", "b.csv", "e1"),
                StoredCounts {
                    stored: 2,
                    distinct: 2,
                },
            ),
        ]);
        let result = compare(&entries, &stored);
        assert!(result.passed());
        assert_eq!(result.duplicates(), 1);
        assert_eq!(result.actual()["duplicates"], "1");

        stored.insert(
            source_id("src", "b.csv", "e1"),
            StoredCounts {
                stored: 1,
                distinct: 1,
            },
        );
        let result = compare(&entries, &stored);
        assert!(!result.passed());
        assert_eq!(result.missing_rows(), 1);
        let failures = result.failures("src");
        assert!(
            failures[0].contains("s3://src/b.csv (1 of 2 rows stored)"),
            "{failures:?}"
        );
    }

    #[test]
    fn an_object_with_no_rows_stored_at_all_is_missing_them_all() {
        let result = compare(&[entry("a.csv", EntryState::SetAside, 5)], &HashMap::new());
        assert_eq!(result.missing_rows(), 5);
    }

    #[test]
    fn an_object_held_by_an_unfinished_run_fails_naming_the_run_and_lease() {
        let result = compare(
            &[entry("a.csv", EntryState::InProgress, 5)],
            &HashMap::new(),
        );
        assert!(!result.passed());
        let failures = result.failures("src");
        assert!(
            failures[0].contains("s3://src/a.csv (run run-1, lease until 2025-12-02T00:00:00Z)"),
            "{failures:?}"
        );
    }

    /// Counts for `s3://src/00.csv` … of four rows stored each, three distinct where `short`.
    fn four_rows_each(
        objects: usize,
        short: impl Fn(usize) -> bool,
    ) -> HashMap<String, StoredCounts> {
        (0..objects)
            .map(|i| {
                let distinct = if short(i) { 3 } else { 4 };
                let id = source_id("src", &format!("{i:02}.csv"), "e1");
                (
                    id,
                    StoredCounts {
                        stored: 4,
                        distinct,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn outcomes_over_pages_of_the_ledger_add_up_to_the_outcome_over_all_of_it() {
        let entries: Vec<LedgerEntry> = (0..25)
            .map(|i| {
                let state = if i % 7 == 0 {
                    EntryState::InProgress
                } else {
                    EntryState::Ingested
                };
                entry(&format!("{i:02}.csv"), state, 4)
            })
            .collect();
        // Every third object misses a row.
        let stored = four_rows_each(25, |i| i % 3 == 0);
        let whole = compare(&entries, &stored);
        let mut paged = Completeness::default();
        for page in entries.chunks(4) {
            paged.add(compare(page, &stored));
        }
        assert_eq!(paged, whole);
        assert_eq!(whole.held_objects, 4);
        // 0, 3, …, 24 are short, less the held 0 and 21.
        assert_eq!((whole.short_objects, whole.missing_rows), (7, 7));
        assert_eq!(whole.short.len(), 7);
        assert!(!whole.passed());
    }

    #[test]
    fn a_ledger_of_any_size_names_only_the_first_objects_but_counts_them_all() {
        let entries: Vec<LedgerEntry> = (0..50)
            .map(|i| entry(&format!("{i:02}.csv"), EntryState::Ingested, 2))
            .collect();
        let result = compare(&entries, &HashMap::new());
        assert_eq!(result.short_objects, 50);
        assert_eq!(result.missing_rows, 100);
        assert_eq!(result.short.len(), NAMED_IN_FAILURE);
        assert!(result.failures("src")[0].starts_with("100 rows missing from 50 objects:"));
    }

    /// A ledger of `s3://src/00.csv` … `04.csv` (4 rows each, the last still held), one record
    /// per object, that lists two records a page.
    fn ledger_listing_two_a_page() -> aws_sdk_s3::Client {
        use crate::ledger::records::RangeRecord;
        use aws_sdk_s3::operation::get_object::GetObjectOutput;
        use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
        use aws_sdk_s3::primitives::ByteStream;
        use aws_sdk_s3::types::Object;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        let location = LedgerLocation {
            bucket: "ledger".into(),
            prefix: "ingest-ledger/".into(),
        };
        // Record i holds `{i:02}.csv` and ends where the next object's key starts.
        let bound = |i: usize| (i < 4).then(|| format!("{:02}.csv", i + 1));
        let names: Vec<String> = (0..5)
            .map(|i| location.record_key("src", bound(i).as_deref()))
            .collect();
        let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output(move |req| {
            let prefix = req.prefix().unwrap_or_default();
            let after = req.start_after().unwrap_or_default();
            let listed: Vec<&String> = names
                .iter()
                .filter(|k| k.starts_with(prefix) && k.as_str() > after)
                .collect();
            ListObjectsV2Output::builder()
                .set_contents(Some(
                    listed
                        .iter()
                        .take(2)
                        .map(|k| Object::builder().key(k.as_str()).build())
                        .collect(),
                ))
                .is_truncated(listed.len() > 2)
                .build()
        });
        let get = mock!(aws_sdk_s3::Client::get_object).then_compute_output(move |req| {
            let i = match location.record_bound("src", req.key().unwrap_or_default()) {
                Some(Some(hi)) => hi[..2].parse::<usize>().unwrap() - 1,
                _ => 4,
            };
            let state = if i == 4 {
                EntryState::InProgress
            } else {
                EntryState::Ingested
            };
            let record = RangeRecord {
                bucket: "src".into(),
                lo: if i == 0 {
                    String::new()
                } else {
                    format!("{i:02}.csv")
                },
                hi: bound(i),
                splitting: Vec::new(),
                entries: vec![entry(&format!("{i:02}.csv"), state, 4)],
            };
            GetObjectOutput::builder()
                .e_tag("\"v1\"")
                .body(ByteStream::from(serde_json::to_vec(&record).unwrap()))
                .build()
        });
        mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[&list, &get])
    }

    #[tokio::test]
    async fn a_comparison_out_of_time_pauses_and_resumes_to_the_same_outcome() {
        let s3 = ledger_listing_two_a_page();
        let location = LedgerLocation {
            bucket: "ledger".into(),
            prefix: "ingest-ledger/".into(),
        };
        let per_object = PerObject {
            ledger: Some(location.clone()),
            bucket: "src".into(),
            prefix: String::new(),
            suffix: ".csv".into(),
        };
        // 01.csv misses a row.
        let stored = four_rows_each(5, |i| i == 1);
        let all = compare_ledger(
            Ledger::new(&s3, &location),
            &per_object,
            &stored,
            None,
            None,
        )
        .await
        .unwrap();
        let Compared::Done(whole) = all else {
            panic!("no stop time, yet paused: {all:?}")
        };
        assert_eq!((whole.objects, whole.held_objects), (4, 1));
        assert_eq!(whole.short, vec![("01.csv".to_owned(), 4, 3)]);

        // Out of time from the start: one ledger page a call.
        let mut progress = None;
        let mut calls = 0;
        let paged = loop {
            calls += 1;
            let compared = compare_ledger(
                Ledger::new(&s3, &location),
                &per_object,
                &stored,
                progress.take(),
                Some(Instant::now()),
            )
            .await
            .unwrap();
            match compared {
                Compared::Done(result) => break result,
                Compared::Paused(at) => {
                    // What the state machine carries between calls survives JSON.
                    let json = serde_json::to_value(&at).unwrap();
                    progress = Some(serde_json::from_value(json).unwrap());
                }
            }
        };
        assert_eq!(paged, whole);
        // Three pages of two, two and one records.
        assert_eq!(calls, 3);
    }

    #[test]
    fn the_result_csv_is_read_by_column_name() {
        let counts = parse_counts(b"source,stored,distinct_rows\nabc,5,4\ndef,2.0,2\n").unwrap();
        assert_eq!(
            counts["abc"],
            StoredCounts {
                stored: 5,
                distinct: 4
            }
        );
        assert_eq!(counts["def"].stored, 2);
        assert!(parse_counts(b"source,stored\n").is_err());
    }
}

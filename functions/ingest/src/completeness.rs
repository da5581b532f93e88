//! The default validation: every row the ledger records as sent is in the datastore, object by
//! object, counted by the row identity each message carries (`_src`, `_row`), and rows stored
//! more than once are counted as duplicates.
//!
//! A count of all rows cannot tell a missing row from a duplicate; a count of distinct
//! identities per object can. An object still claimed by an unfinished run fails the check
//! too: its rows are not all in yet, and the check names the run and its lease.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::batches::{ROW_ATTRIBUTE, SOURCE_ATTRIBUTE};
use crate::ledger::{EntryState, LedgerEntry, LedgerLocation};

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

/// The outcome of the per-object comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completeness {
    /// Objects compared (ingested or set aside).
    pub objects: u64,
    /// Rows the ledger records as sent for them.
    pub expected_rows: u64,
    /// Distinct rows of theirs in the datastore.
    pub distinct_rows: u64,
    /// Rows of theirs stored, duplicates included.
    pub stored_rows: u64,
    /// Objects with fewer distinct rows stored than the ledger records: key, expected, found.
    pub short: Vec<(String, u64, u64)>,
    /// Objects still claimed by a run that has not finished them: key, run, lease end (ms).
    pub held: Vec<(String, String, u64)>,
}

impl Completeness {
    /// Rows the ledger records as sent that the datastore does not hold.
    pub fn missing_rows(&self) -> u64 {
        self.short.iter().map(|(_, want, got)| want - got).sum()
    }

    /// Rows stored more than once (each extra copy counts one).
    pub fn duplicates(&self) -> u64 {
        self.stored_rows - self.distinct_rows
    }

    /// Nothing missing and nothing held.
    pub fn passed(&self) -> bool {
        self.short.is_empty() && self.held.is_empty()
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
            ("held_objects", self.held.len() as u64),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_string()))
        .collect()
    }

    /// What failed, one clause per problem (at most [`NAMED_IN_FAILURE`] objects named each).
    pub fn failures(&self, bucket: &str) -> Vec<String> {
        let mut out = Vec::new();
        if !self.short.is_empty() {
            let mut text = format!(
                "{} rows missing from {} objects:",
                self.missing_rows(),
                self.short.len()
            );
            for (key, want, got) in self.short.iter().take(NAMED_IN_FAILURE) {
                text.push_str(&format!(
                    " s3://{bucket}/{key} ({got} of {want} rows stored)"
                ));
            }
            out.push(text);
        }
        if !self.held.is_empty() {
            let mut text = format!(
                "{} objects are still held by an unfinished run:",
                self.held.len()
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
            out.held.push((
                entry.key.clone(),
                entry.run_id.clone(),
                entry.lease_until_ms,
            ));
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
            out.short
                .push((entry.key.clone(), entry.rows, counts.distinct));
        }
    }
    out
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

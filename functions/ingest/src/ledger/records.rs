//! The ledger's storage: entries kept together in range records, each holding the entries of
//! one source bucket's keys in `[lo, hi)`, so that a batch of objects is claimed, checkpointed
//! and finished with one conditional write per record rather than one per object.
//!
//! A record lives at `<prefix>records/<bucket>/r/<hi in hex>`, or at
//! `<prefix>records/<bucket>/z` when it has no upper bound. Hex sorts as the keys do, so the
//! record holding a key is the first whose name sorts after `r/<key in hex>`, and one
//! ListObjectsV2 call with `StartAfter` finds it, whichever keys exist.
//!
//! Records are split, never merged, in three steps that any reader or writer can finish:
//! 1. the record is marked with its split points (a conditional write); nobody changes the
//!    entries of a marked record;
//! 2. a record is created for each piece below the last point, from the marked record's
//!    entries, with `If-None-Match`, so a piece created before (and maybe changed since) is
//!    kept;
//! 3. the record drops its entries below the last point, and the mark (a conditional write).
//!
//! Whoever meets a marked record finishes steps 2 and 3 before going on, so an entry is only
//! ever changed in the one record that holds it.

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::{Ledger, LedgerEntry, MAX_KEY_BYTES, Write};
use crate::error::IngestError;
use crate::service_errors::CallFailure;

/// Rounds of reading a record again after a lost race, before giving up on it.
const ROUNDS: usize = 16;

/// Records read at once when a range of them is read.
const RECORD_READS_AT_ONCE: usize = 16;

/// The entries of one bucket's keys in `[lo, hi)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeRecord {
    /// Source bucket.
    pub bucket: String,
    /// The first key the record may hold.
    pub lo: String,
    /// The first key of the next record (`None`: this is the last record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hi: Option<String>,
    /// The points of a split under way (see the module's doc).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub splitting: Vec<String>,
    /// The entries, in key order.
    #[serde(default)]
    pub entries: Vec<LedgerEntry>,
}

impl RangeRecord {
    /// Whether `key` of `bucket` belongs in this record.
    pub fn covers(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket
            && key >= self.lo.as_str()
            && self.hi.as_deref().is_none_or(|hi| key < hi)
    }

    /// The entry of `key`.
    pub fn get(&self, key: &str) -> Option<&LedgerEntry> {
        self.entries
            .binary_search_by(|e| e.key.as_str().cmp(key))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Stores `entry`, in key order.
    fn set(&mut self, entry: LedgerEntry) {
        match self
            .entries
            .binary_search_by(|e| e.key.as_str().cmp(&entry.key))
        {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
    }

    /// The record of this one's keys in `[lo, hi)`.
    fn piece(&self, lo: &str, hi: &str) -> RangeRecord {
        RangeRecord {
            bucket: self.bucket.clone(),
            lo: lo.to_owned(),
            hi: Some(hi.to_owned()),
            splitting: Vec::new(),
            entries: self
                .entries
                .iter()
                .filter(|e| e.key.as_str() >= lo && e.key.as_str() < hi)
                .cloned()
                .collect(),
        }
    }
}

/// A record as read: its name, and the ETag its next conditional write is made against.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its key in the ledger bucket.
    pub name: String,
    /// Its ETag.
    pub etag: String,
    /// Its contents.
    pub record: RangeRecord,
}

/// What [`Ledger::modify`] does with one entry, and what it answers for it.
pub type Change<T> = (Option<LedgerEntry>, T);

impl Ledger<'_> {
    /// The shortest key `s` with `before < s <= after`: where to split between two keys, so a
    /// record's name stays short. `None` when `after` does not sort after `before`.
    pub fn separator(before: &str, after: &str) -> Option<String> {
        if after <= before {
            return None;
        }
        after
            .char_indices()
            .map(|(i, c)| &after[..i + c.len_utf8()])
            .find(|candidate| *candidate > before)
            .map(str::to_owned)
    }

    /// The record holding `key` of `bucket`, with every split it meets finished first; the
    /// bucket's first record is created when it has none.
    pub async fn locate(&self, bucket: &str, key: &str) -> Result<Loaded, IngestError> {
        for _ in 0..ROUNDS {
            let Some(name) = self.first_record_after(bucket, key).await? else {
                let first = RangeRecord {
                    bucket: bucket.to_owned(),
                    ..RangeRecord::default()
                };
                // A conflict: another writer created it first, which is as good.
                self.put_record(&self.location.record_key(bucket, None), &first, None)
                    .await?;
                continue;
            };
            let Some(loaded) = self.load(&name).await? else {
                continue;
            };
            if !loaded.record.splitting.is_empty() {
                self.finish_split(loaded).await?;
                continue;
            }
            if loaded.record.covers(bucket, key) {
                return Ok(loaded);
            }
        }
        Err(self.kept_changing(bucket, key))
    }

    /// The name of the first record of `bucket` after `r/<key>`, `None` when it has none.
    async fn first_record_after(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<String>, IngestError> {
        let folder = self.location.records_folder(bucket);
        let page = self
            .s3
            .list_objects_v2()
            .bucket(&self.location.bucket)
            .prefix(&folder)
            .start_after(self.location.records_after(bucket, key))
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.error("ListObjectsV2", &folder, CallFailure::from_sdk(&e)))?;
        Ok(page
            .contents()
            .first()
            .and_then(|o| o.key())
            .map(str::to_owned))
    }

    /// The record stored at `name`, `None` when there is none.
    pub(crate) async fn load(&self, name: &str) -> Result<Option<Loaded>, IngestError> {
        let Some((etag, body)) = self.get_retried(name).await? else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&body).map_err(|e| IngestError::ServiceError {
            service: "S3",
            operation: "GetObject".to_owned(),
            message: format!(
                "ledger record s3://{}/{name} is not a ledger record: {e}",
                self.location.bucket
            ),
        })?;
        Ok(Some(Loaded {
            name: name.to_owned(),
            etag,
            record,
        }))
    }

    /// Writes `record` at `name`: only where none is (`previous` `None`), or only over the
    /// version `previous`.
    async fn put_record(
        &self,
        name: &str,
        record: &RangeRecord,
        previous: Option<&str>,
    ) -> Result<Write, IngestError> {
        let body = serde_json::to_vec(record).expect("ledger records always serialise");
        self.put_conditional(name, body, previous).await
    }

    /// Applies `change` to the entries of `keys` of `bucket` (in key order), with one
    /// conditional write per record. `change` gets a key and its entry as stored now, and
    /// returns the entry to store (`None`: leave it) and an answer; it is called again for a
    /// record whose write lost a race. `cache` holds records read before, and gets the ones
    /// read or written here.
    pub async fn modify<T>(
        &self,
        bucket: &str,
        keys: &[&str],
        cache: &mut Vec<Loaded>,
        mut change: impl FnMut(&str, Option<&LedgerEntry>) -> Change<T>,
    ) -> Result<Vec<T>, IngestError> {
        let mut answers: Vec<Option<T>> = keys.iter().map(|_| None).collect();
        let mut at = 0;
        let mut lost_races = 0;
        while at < keys.len() {
            let first = keys[at];
            let cached = cache
                .iter()
                .position(|l| l.record.covers(bucket, first) && l.record.splitting.is_empty());
            let loaded = match cached {
                Some(i) => cache.swap_remove(i),
                None => self.locate(bucket, first).await?,
            };
            let end = at
                + keys[at..]
                    .iter()
                    .take_while(|k| loaded.record.covers(bucket, k))
                    .count();
            let mut record = loaded.record.clone();
            let mut changed = false;
            for i in at..end {
                let (entry, answer) = change(keys[i], record.get(keys[i]));
                answers[i] = Some(answer);
                if let Some(entry) = entry {
                    record.set(entry);
                    changed = true;
                }
            }
            if !changed {
                cache.push(loaded);
                at = end;
                continue;
            }
            match self
                .put_record(&loaded.name, &record, Some(&loaded.etag))
                .await?
            {
                Write::Stored(etag) => {
                    cache.push(Loaded {
                        name: loaded.name,
                        etag,
                        record,
                    });
                    at = end;
                    lost_races = 0;
                }
                Write::Conflict => {
                    lost_races += 1;
                    if lost_races > ROUNDS {
                        return Err(self.kept_changing(bucket, first));
                    }
                    // Read it again; a record split meanwhile is left to `locate`.
                    if let Some(fresh) = self.load(&loaded.name).await?
                        && fresh.record.splitting.is_empty()
                    {
                        cache.push(fresh);
                    }
                }
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.expect("every key is answered"))
            .collect())
    }

    /// Splits the records of `bucket` so that one starts at each of `points`. Points that
    /// already start a record, and points too long for a record's name, are passed over.
    pub async fn split_at(&self, bucket: &str, points: &[String]) -> Result<(), IngestError> {
        let mut points: Vec<&String> = points
            .iter()
            .filter(|p| {
                !p.is_empty() && self.location.record_key(bucket, Some(p)).len() <= MAX_KEY_BYTES
            })
            .collect();
        points.sort();
        points.dedup();
        let mut at = 0;
        let mut lost_races = 0;
        while at < points.len() {
            let loaded = self.locate(bucket, points[at]).await?;
            let end = at
                + points[at..]
                    .iter()
                    .take_while(|p| loaded.record.covers(bucket, p))
                    .count();
            let inside: Vec<String> = points[at..end]
                .iter()
                .filter(|p| p.as_str() > loaded.record.lo.as_str())
                .map(|p| (*p).clone())
                .collect();
            if inside.is_empty() {
                at = end;
                continue;
            }
            let mut marked = loaded.record.clone();
            marked.splitting = inside;
            match self
                .put_record(&loaded.name, &marked, Some(&loaded.etag))
                .await?
            {
                Write::Stored(etag) => {
                    let name = loaded.name;
                    self.finish_split(Loaded {
                        name,
                        etag,
                        record: marked,
                    })
                    .await?;
                    at = end;
                    lost_races = 0;
                }
                Write::Conflict => {
                    lost_races += 1;
                    if lost_races > ROUNDS {
                        return Err(self.kept_changing(bucket, points[at]));
                    }
                }
            }
        }
        Ok(())
    }

    /// Finishes the split `marked` is marked with: steps 2 and 3 of the module's doc.
    async fn finish_split(&self, marked: Loaded) -> Result<(), IngestError> {
        let points = marked.record.splitting.clone();
        let bucket = marked.record.bucket.clone();
        let mut bounds = Vec::with_capacity(points.len());
        let mut lo = marked.record.lo.clone();
        for point in &points {
            bounds.push((lo.clone(), point.clone()));
            lo = point.clone();
        }
        {
            let creations = futures::stream::iter(bounds)
                .map(|(lo, hi)| {
                    let piece = marked.record.piece(&lo, &hi);
                    let name = self.location.record_key(&bucket, Some(&hi));
                    async move {
                        // A conflict: a helper created it first, and it may have changed since.
                        self.put_record(&name, &piece, None).await.map(|_| ())
                    }
                })
                .buffer_unordered(RECORD_READS_AT_ONCE);
            let mut creations = std::pin::pin!(creations);
            while let Some(created) = creations.next().await {
                created?;
            }
        }
        let mut current = marked;
        for _ in 0..ROUNDS {
            if current.record.splitting != points {
                // Someone else finished it.
                return Ok(());
            }
            let mut rest = current.record.clone();
            rest.entries.retain(|e| e.key.as_str() >= lo.as_str());
            rest.lo = lo.clone();
            rest.splitting.clear();
            match self
                .put_record(&current.name, &rest, Some(&current.etag))
                .await?
            {
                Write::Stored(_) => return Ok(()),
                Write::Conflict => match self.load(&current.name).await? {
                    Some(fresh) => current = fresh,
                    None => return Ok(()),
                },
            }
        }
        Err(self.kept_changing(&bucket, &lo))
    }

    /// The records of `bucket` listed after the record name `start_after`, in key order, as far
    /// as one ListObjectsV2 page goes and until one whose keys all sort after the range wanted
    /// (`beyond` its first key); splits met are finished and the page read again. Returns the
    /// records and the name the next page starts after (`None`: the range is done).
    pub async fn records_page(
        &self,
        bucket: &str,
        start_after: &str,
        beyond: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<(Vec<Loaded>, Option<String>), IngestError> {
        let folder = self.location.records_folder(bucket);
        for _ in 0..ROUNDS {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.location.bucket)
                .prefix(&folder)
                .start_after(start_after)
                .send()
                .await
                .map_err(|e| self.error("ListObjectsV2", &folder, CallFailure::from_sdk(&e)))?;
            let mut done = !page.is_truncated().unwrap_or(false);
            let mut names: Vec<String> = Vec::new();
            for name in page.contents().iter().filter_map(|o| o.key()) {
                // A record's first key is the bound its predecessor's name carries.
                let lo = names
                    .last()
                    .and_then(|previous| self.location.record_bound(bucket, previous))
                    .flatten();
                if lo.as_deref().is_some_and(beyond) {
                    done = true;
                    break;
                }
                names.push(name.to_owned());
            }
            let reads = futures::stream::iter(names.iter().cloned())
                .map(|name| async move { self.load(&name).await })
                .buffered(RECORD_READS_AT_ONCE);
            let mut reads = std::pin::pin!(reads);
            let mut records = Vec::with_capacity(names.len());
            let mut split = false;
            while let Some(read) = reads.next().await {
                let Some(loaded) = read? else {
                    continue;
                };
                if loaded.record.splitting.is_empty() {
                    records.push(loaded);
                } else {
                    split = true;
                    self.finish_split(loaded).await?;
                }
            }
            if split {
                continue;
            }
            let next = match names.last() {
                Some(last) if !done && self.location.record_bound(bucket, last) != Some(None) => {
                    Some(last.clone())
                }
                _ => None,
            };
            return Ok((records, next));
        }
        Err(self.kept_changing(bucket, start_after))
    }

    fn kept_changing(&self, bucket: &str, key: &str) -> IngestError {
        IngestError::ServiceUnavailable {
            service: "S3",
            operation: "PutObject".to_owned(),
            message: format!(
                "the ledger record of s3://{bucket}/{key} in s3://{}/{} kept changing",
                self.location.bucket,
                self.location.records_folder(bucket)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::EntryState;
    use crate::ledger::tests::entry;

    fn keyed(key: &str) -> LedgerEntry {
        LedgerEntry {
            key: key.to_owned(),
            ..entry(EntryState::Ingested, "run", 0)
        }
    }

    #[test]
    fn a_split_point_is_the_shortest_key_between_two() {
        assert_eq!(
            Ledger::separator("data/part-0041.csv", "data/part-0042.csv").as_deref(),
            Some("data/part-0042")
        );
        assert_eq!(Ledger::separator("a", "b").as_deref(), Some("b"));
        assert_eq!(Ledger::separator("ab", "abc").as_deref(), Some("abc"));
        assert_eq!(Ledger::separator("b", "a"), None);
        assert_eq!(Ledger::separator("a", "a"), None);
        // Never inside a character.
        assert_eq!(Ledger::separator("xä1", "xö2").as_deref(), Some("xö"));
    }

    #[test]
    fn a_record_covers_its_own_bucket_from_its_first_key_up_to_the_next_record() {
        let record = RangeRecord {
            bucket: "src".into(),
            lo: "b".into(),
            hi: Some("d".into()),
            ..RangeRecord::default()
        };
        assert!(record.covers("src", "b"));
        assert!(record.covers("src", "c/x.csv"));
        assert!(!record.covers("src", "d"));
        assert!(!record.covers("src", "a"));
        assert!(!record.covers("other", "c"));
        let last = RangeRecord {
            bucket: "src".into(),
            lo: "d".into(),
            ..RangeRecord::default()
        };
        assert!(last.covers("src", "zzz"));
    }

    #[test]
    fn entries_stay_in_key_order_and_a_piece_takes_only_its_range() {
        let mut record = RangeRecord {
            bucket: "src".into(),
            ..RangeRecord::default()
        };
        for key in ["c", "a", "e", "b"] {
            record.set(keyed(key));
        }
        record.set(keyed("a"));
        let keys: Vec<&str> = record.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "e"]);
        assert!(record.get("c").is_some() && record.get("d").is_none());
        let piece = record.piece("b", "e");
        let keys: Vec<&str> = piece.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["b", "c"]);
        assert_eq!((piece.lo.as_str(), piece.hi.as_deref()), ("b", Some("e")));
    }
}

//! The ledger's range records under races, over the local stack's real S3: writers changing
//! entries and splitters cutting records at once must lose no entry, leave no entry in two
//! records, and leave the records a partition of the key space with no split half done.

use end_to_end::TestStack;
use ingest::ledger::records::RangeRecord;
use ingest::ledger::{EntryState, Ledger, LedgerEntry, LedgerLocation};

const BUCKET: &str = "source-bucket";
const KEYS: usize = 120;
const WRITERS: usize = 4;

fn key(i: usize) -> String {
    format!("data/{:02}/part-{i:04}.csv", i % 7)
}

fn entry(key: &str, rows: u64) -> LedgerEntry {
    LedgerEntry {
        bucket: BUCKET.to_owned(),
        key: key.to_owned(),
        etag: "\"e1\"".to_owned(),
        state: EntryState::Ingested,
        run_id: "race".to_owned(),
        lease_until_ms: 0,
        updated_ms: 0,
        checkpoint: None,
        rows,
        batches: 1,
        retries: 0,
        bad_rows: 0,
        reason: None,
        report: None,
    }
}

/// Writer `w`: its share of the keys, ten at a time, three rounds each (rows 1, 2, 3), every
/// round made over what the round before stored.
async fn write_share(ledger: Ledger<'_>, w: usize) {
    let mut keys: Vec<String> = (0..KEYS).filter(|i| i % WRITERS == w).map(key).collect();
    keys.sort();
    let mut cache = Vec::new();
    for chunk in keys.chunks(10) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        for round in 1..=3u64 {
            let answers = ledger
                .modify(BUCKET, &refs, &mut cache, |key, current| {
                    let before = current.map_or(0, |e| e.rows);
                    assert_eq!(before, round - 1, "{key}: a round was lost or made twice");
                    (Some(entry(key, round)), ())
                })
                .await
                .unwrap();
            assert_eq!(answers.len(), refs.len());
        }
    }
}

/// Splitter `s`: cuts the records at pseudo-random keys between the objects' keys, a few at a
/// time, while the writers write.
async fn split_records(ledger: Ledger<'_>, s: u64) {
    let mut sorted: Vec<String> = (0..KEYS).map(key).collect();
    sorted.sort();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ s;
    for _ in 0..12 {
        let mut points = Vec::new();
        for _ in 0..3 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let at = 1 + (state >> 33) as usize % (KEYS - 1);
            points.extend(Ledger::separator(&sorted[at - 1], &sorted[at]));
        }
        ledger.split_at(BUCKET, &points).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_and_splitters_at_once_lose_no_entry_and_leave_a_partition() {
    let test = TestStack::start(|_| {}).await.unwrap();
    let location = LedgerLocation {
        bucket: test.args.names().ledger_bucket,
        prefix: "race-ledger/".to_owned(),
    };
    let ledger = Ledger::new(&test.stack.clients.s3, &location);
    tokio::join!(
        write_share(ledger, 0),
        write_share(ledger, 1),
        write_share(ledger, 2),
        write_share(ledger, 3),
        split_records(ledger, 1),
        split_records(ledger, 2),
    );

    let entries = ledger.entries(BUCKET, "").await.unwrap();
    let mut expected: Vec<String> = (0..KEYS).map(key).collect();
    expected.sort();
    let keys: Vec<&str> = entries.iter().map(|s| s.entry.key.as_str()).collect();
    assert_eq!(keys, expected, "every key once, in key order");
    assert!(entries.iter().all(|s| s.entry.rows == 3));

    // Every record, read straight from S3: a chain of ranges from "" to no end.
    let s3 = &test.stack.clients.s3;
    let folder = location.records_folder(BUCKET);
    let listed = s3
        .list_objects_v2()
        .bucket(&location.bucket)
        .prefix(&folder)
        .send()
        .await
        .unwrap();
    let mut records = Vec::new();
    for object in listed.contents() {
        let body = s3
            .get_object()
            .bucket(&location.bucket)
            .key(object.key().unwrap())
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let record: RangeRecord = serde_json::from_slice(&body).unwrap();
        records.push((object.key().unwrap().to_owned(), record));
    }
    assert!(
        records.len() > 5,
        "the splitters made {} records",
        records.len()
    );
    let mut lo = String::new();
    let mut held = 0;
    for (name, record) in &records {
        assert!(
            record.splitting.is_empty(),
            "{name}: a split left half done"
        );
        assert_eq!(
            record.lo, lo,
            "{name} does not start where the one before ends"
        );
        assert_eq!(name, &location.record_key(BUCKET, record.hi.as_deref()));
        assert!(
            record.entries.iter().all(|e| record.covers(BUCKET, &e.key)),
            "{name} holds an entry outside its range"
        );
        held += record.entries.len();
        lo = record.hi.clone().unwrap_or_default();
    }
    assert!(records.last().unwrap().1.hi.is_none());
    assert_eq!(held, KEYS, "an entry is held by two records");
    test.stack.shutdown().await;
}

//! The bad-input suite: a bucket holding every kind of bad (and awkward but valid) CSV the
//! workflow documents, run on the local stack first under the `fail` policy, then again under
//! `skip`. Every good row ends in the datastore exactly once, and every bad row or object is
//! named, with its key and line, in the run's reports and summary; nothing panics and no
//! object is left half-ingested without a record of where it stopped.

use std::collections::BTreeMap;
use std::path::Path;

use end_to_end::TestStack;
use s3_ingest::run::{RunReport, run_on, summary};

/// (key, body, rows that are good). Every good row has a distinct `rid`.
fn objects() -> Vec<(&'static str, Vec<u8>, u64)> {
    let big = format!("rid,val\n18,a\n19,{}\n20,c\n", "x".repeat(140 * 1024));
    vec![
        (
            "bad/bom.csv",
            b"\xEF\xBB\xBFrid,val\n1,a\n2,b\n".to_vec(),
            2,
        ),
        ("bad/crlf.csv", b"rid,val\r\n3,a\r\n4,b\r\n".to_vec(), 2),
        (
            "bad/quoted.csv",
            b"rid,val\n5,\"multi\nline, with comma\"\n6,\"say \"\"hi\"\"\"\n".to_vec(),
            2,
        ),
        (
            "bad/ragged.csv",
            b"rid,val\n7,a\n8\n9,c\n10,d,extra\n11,e\n".to_vec(),
            3,
        ),
        (
            "bad/utf8.csv",
            b"rid,val\n12,ok\n13,\xff\xfe\n14,ok\n".to_vec(),
            2,
        ),
        (
            "bad/unterminated.csv",
            b"rid,val\n15,a\n16,\"open\n17,b\n".to_vec(),
            1,
        ),
        ("bad/big_row.csv", big.into_bytes(), 2),
        ("bad/empty.csv", Vec::new(), 0),
        ("bad/header_only.csv", b"rid,val\n".to_vec(), 0),
        ("bad/dup_header.csv", b"rid,rid\n21,a\n".to_vec(), 0),
        (
            "bad/hyphen_header.csv",
            b"rid,device-id\n22,a\n".to_vec(),
            0,
        ),
        ("bad/space_header.csv", b"rid,device id\n23,a\n".to_vec(), 0),
        (
            "bad/case_dup_header.csv",
            b"rid,Val,val\n24,a,b\n".to_vec(),
            0,
        ),
        ("bad/gzip.csv", gzip(b"rid,val\n25,a\n"), 0),
        (
            "bad/binary.csv",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0".to_vec(),
            0,
        ),
        ("bad/with space/a b.csv", b"rid,val\n26,a\n".to_vec(), 1),
        (
            "bad/unicode/donn\u{e9}es-\u{fc}.csv",
            b"rid,val\n27,a\n".to_vec(),
            1,
        ),
        ("bad/plus/a+b.csv", b"rid,val\n28,a\n".to_vec(), 1),
    ]
}

/// A real gzip member (one stored deflate block), as `gzip` would write for tiny input.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1];
    let len = data.len() as u16;
    out.extend(len.to_le_bytes());
    out.extend((!len).to_le_bytes());
    out.extend(data);
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn write_source(dir: &Path) {
    for (key, body, _) in objects() {
        let path = dir.join(key.strip_prefix("bad/").unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
}

fn total(report: &RunReport, field: &str) -> u64 {
    report.output.as_ref().unwrap()["totals"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("totals.{field} missing"))
}

/// Set-aside entries by key: (line, whole object?).
fn named(report: &RunReport) -> BTreeMap<String, Vec<(u64, bool)>> {
    let mut out: BTreeMap<String, Vec<(u64, bool)>> = BTreeMap::new();
    for entry in &report.set_aside {
        assert!(
            entry.report.contains("/reports/") && !entry.reason.is_empty(),
            "{entry:?}"
        );
        out.entry(entry.key.clone())
            .or_default()
            .push((entry.line, entry.object));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_ingested_or_named_with_its_line_under_both_policies() {
    let source = tempfile::tempdir().unwrap();
    write_source(source.path());
    let test = TestStack::start(|args| {
        args.source = Some(source.path().to_path_buf());
        args.prefix = "bad/".to_owned();
        args.bucket = "bad-input".to_owned();
        args.channel = "bad_channel".to_owned();
        args.pipeline = "bad_pipeline".to_owned();
        args.datastore = "bad_datastore".to_owned();
        args.dataset = "bad_validation".to_owned();
    })
    .await
    .unwrap();
    let objects = objects();

    // `fail`: an object stops at its first bad row, the rows before it are in.
    let first = run_on(&test.stack, &test.args, false).await.unwrap();
    let text = summary(&first);
    assert!(first.passed(), "{text}");
    assert_eq!(total(&first, "setAside"), 10, "{text}");
    assert_eq!(total(&first, "rows"), 13, "{text}");
    let expected_first: BTreeMap<String, Vec<(u64, bool)>> = [
        ("bad/ragged.csv", 3),
        ("bad/utf8.csv", 3),
        ("bad/unterminated.csv", 3),
        ("bad/big_row.csv", 3),
        ("bad/dup_header.csv", 1),
        ("bad/hyphen_header.csv", 1),
        ("bad/space_header.csv", 1),
        ("bad/case_dup_header.csv", 1),
        ("bad/gzip.csv", 1),
        ("bad/binary.csv", 1),
    ]
    .into_iter()
    .map(|(key, line)| (key.to_owned(), vec![(line, true)]))
    .collect();
    assert_eq!(named(&first), expected_first, "{text}");
    for key in expected_first.keys() {
        assert!(
            text.contains(key.as_str()),
            "the summary leaves out {key}:\n{text}"
        );
    }

    // `skip`: the set-aside objects resume where they stopped; bad rows are named.
    let mut skip = test.args.clone();
    skip.skip_bad_rows = true;
    let second = run_on(&test.stack, &skip, false).await.unwrap();
    let text = summary(&second);
    assert!(second.passed(), "{text}");
    assert_eq!(total(&second, "rows"), 4, "{text}");
    assert_eq!(total(&second, "badRows"), 5, "{text}");
    assert_eq!(
        total(&second, "skipped"),
        8,
        "ingested objects are left out: {text}"
    );
    let rows_named = named(&second);
    assert_eq!(rows_named["bad/ragged.csv"], vec![(3, false), (5, false)]);
    assert_eq!(rows_named["bad/utf8.csv"], vec![(3, false)]);
    assert_eq!(rows_named["bad/unterminated.csv"], vec![(3, false)]);
    assert_eq!(rows_named["bad/big_row.csv"], vec![(3, false)]);
    for key in ["bad/gzip.csv", "bad/binary.csv", "bad/dup_header.csv"] {
        assert_eq!(rows_named[key], vec![(1, true)], "{key} stays set aside");
    }

    // Every good row is stored once; nothing else is.
    let good: u64 = objects.iter().map(|(_, _, rows)| rows).sum();
    let (stored, distinct) = {
        let row = test
            .first_row(
                "bad_counts",
                "SELECT count(*) AS stored, count(DISTINCT rid) AS distinct_rows FROM bad_datastore",
            )
            .await
            .unwrap();
        (
            row["stored"].parse::<u64>().unwrap(),
            row["distinct_rows"].parse::<u64>().unwrap(),
        )
    };
    assert_eq!((stored, distinct), (good, good));
    let quoted = test
        .first_row(
            "bad_quoted",
            "SELECT val FROM bad_datastore WHERE rid = '5'",
        )
        .await
        .unwrap();
    assert_eq!(quoted["val"], "multi\nline, with comma");
    test.stack.shutdown().await;
}

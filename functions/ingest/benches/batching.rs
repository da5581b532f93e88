//! CSV → messages → batches throughput on a generated 100 MB object, and peak memory for
//! objects of 10 MB and 1 GB (run: `cargo bench -p ingest --bench batching`).

use std::time::Instant;

use criterion::{Criterion, Throughput};
use ingest::batches::{Batcher, MAX_BATCH_MESSAGES, Produced};
use ingest::payload::ValueMode;

const HEADER: &[u8] = b"deviceid,humidity,location,rowid,temp,timestamp\n";
/// Bytes handed to the batcher at a time, about what an S3 body stream yields.
const CHUNK: usize = 64 * 1024;

/// One mebibyte of whole rows in the sample data set's shape, and how many rows it holds.
fn block() -> (Vec<u8>, u64) {
    let mut block = Vec::with_capacity(1 << 20);
    let mut rows = 0u64;
    while block.len() < (1 << 20) - 64 {
        let n = rows;
        let line = format!(
            "{},{},{},{},{},2018-04-18 19:{:02}:{:02}\n",
            n % 10,
            40 + n % 30,
            if n.is_multiple_of(2) { "A" } else { "B" },
            n,
            50 + n % 40,
            (n / 60) % 60,
            n % 60
        );
        block.extend_from_slice(line.as_bytes());
        rows += 1;
    }
    (block, rows)
}

/// Feeds a header then `blocks` copies of `block`, chunk by chunk, through a batcher;
/// returns rows batched.
fn batch_object(block: &[u8], blocks: usize) -> u64 {
    let mut batcher = Batcher::at_start(ValueMode::Strings, MAX_BATCH_MESSAGES);
    let mut rows = 0u64;
    let mut feed = |input: &[u8], rows: &mut u64| {
        let mut pos = 0;
        loop {
            let (produced, used) = batcher.push(&input[pos..]).expect("valid header");
            pos += used;
            match produced {
                Produced::Batch(batch) => *rows += batch.messages.len() as u64,
                Produced::NeedInput => return,
                _ => {}
            }
        }
    };
    feed(HEADER, &mut rows);
    for _ in 0..blocks {
        for chunk in block.chunks(CHUNK) {
            feed(chunk, &mut rows);
        }
    }
    loop {
        match batcher.finish().expect("valid header") {
            Produced::End => break,
            Produced::Batch(batch) => rows += batch.messages.len() as u64,
            _ => {}
        }
    }
    rows + batcher.take_batch().map_or(0, |b| b.messages.len() as u64)
}

/// Peak resident memory of this process so far, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let (block, rows_per_block) = block();
    let baseline = peak_rss_kib();
    let rows = batch_object(&block, 10);
    let after_10mb = peak_rss_kib();
    let started = Instant::now();
    let rows_1g = batch_object(&block, 1024);
    let seconds = started.elapsed().as_secs_f64();
    let after_1gb = peak_rss_kib();
    eprintln!(
        "memory: peak RSS {} KiB before, {} KiB after a 10 MB object ({rows} rows), {} KiB after a 1 GB object ({rows_1g} rows, {:.0} rows/s)",
        baseline,
        after_10mb,
        after_1gb,
        rows_1g as f64 / seconds
    );

    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    let mut group = criterion.benchmark_group("csv_to_batches_100MB");
    group.throughput(Throughput::Elements(rows_per_block * 100));
    group.bench_function("rows", |b| b.iter(|| batch_object(&block, 100)));
    group.throughput(Throughput::Bytes(block.len() as u64 * 100));
    group.bench_function("bytes", |b| b.iter(|| batch_object(&block, 100)));
    group.finish();
    criterion.final_summary();
}

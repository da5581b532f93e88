//! The fault suite: the workflow on the local stack while the services and the functions
//! fail — throttling, per-entry errors and 500s from IoT Analytics, 500s and broken bodies
//! from S3, crashed and timed-out invocations, two executions at once, repeated runs. Each
//! run must lose nothing (every source `rowid` is stored), keep duplicates within the bound
//! the ledger's checkpoints promise, and report its retries.

use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use end_to_end::TestStack;
use s3_ingest::lambda::FunctionFaults;
use s3_ingest::run::{fill_bucket, run_on, summary};
use s3_ingest::sample::TOTAL_ROWS;
use serde_json::{Value, json};

/// BatchPutMessage requests a worker keeps in flight (the worker's default).
const IN_FLIGHT: u64 = ingest::worker::DEFAULT_MAX_IN_FLIGHT as u64;

fn total(output: &Value, field: &str) -> u64 {
    output["totals"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("totals.{field} missing in {output}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_faults_lose_nothing_store_nothing_twice_and_are_counted() {
    let test = TestStack::start_with(
        |args| {
            args.page_size = 25;
            args.channel = "faulty_channel".to_owned();
            args.pipeline = "faulty_pipeline".to_owned();
            args.datastore = "faulty_datastore".to_owned();
        },
        |options| {
            options.faults = iotanalytics_service::FaultConfig {
                throttle_probability: 0.2,
                server_error_probability: 0.01,
                entry_error_probability: 0.05,
                latency: Duration::ZERO,
            };
            options.seed = Some(7);
            options.s3_faults = local_s3::S3Faults {
                internal_errors: 0.02,
                broken_bodies: 0.05,
                seed: Some(7),
            };
        },
    )
    .await
    .unwrap();
    let report = run_on(&test.stack, &test.args, false).await.unwrap();
    assert!(report.passed(), "{}", summary(&report));
    let output = report.output.as_ref().unwrap();
    assert!(
        total(output, "retries") > 100,
        "20% throttling and 5% entry errors must show as re-sends: {output}"
    );
    assert_eq!(total(output, "rows"), TOTAL_ROWS);
    let (stored, distinct) = test.stored_and_distinct().await.unwrap();
    eprintln!(
        "service faults: {} re-sends, {stored} stored, {distinct} distinct, {:.1} s",
        total(output, "retries"),
        report.elapsed.as_secs_f64()
    );
    assert_eq!(distinct, TOTAL_ROWS, "rows lost");
    // Injected service faults refuse a request (or an entry) before storing it, and only
    // what was refused is sent again.
    assert_eq!(stored, distinct, "rows stored twice");
    test.stack.shutdown().await;
}

/// The sample run with workers crashing and timing out at random, each invocation on one
/// object (`small_object_bytes` 0) or on batches of `objects_per_batch` small objects.
async fn crashes_and_timeouts_lose_nothing(
    name: &str,
    small_object_bytes: u64,
    objects_per_batch: u32,
) {
    let checkpoint_every = 2;
    let test = TestStack::start_with(
        |args| {
            args.page_size = 20;
            args.checkpoint_every = checkpoint_every;
            args.small_object_bytes = small_object_bytes;
            args.objects_per_batch = objects_per_batch;
            args.channel = format!("{name}_channel");
            args.pipeline = format!("{name}_pipeline");
            args.datastore = format!("{name}_datastore");
        },
        |options| {
            options.function_faults = FunctionFaults {
                worker_crashes: 0.15,
                worker_timeouts: 0.1,
                launcher_crashes: 0.3,
                within: Duration::from_millis(150),
                seed: Some(11),
            };
        },
    )
    .await
    .unwrap();
    let report = run_on(&test.stack, &test.args, false).await.unwrap();
    assert!(
        report.passed(),
        "{}\n{:#?}",
        summary(&report),
        test.failed_items(report.executions.last().unwrap()).await
    );
    let cut_short = test.stack.activity.crashes.load(Ordering::Relaxed)
        + test.stack.activity.timeouts.load(Ordering::Relaxed);
    assert!(cut_short > 5, "only {cut_short} invocations were cut short");
    let (stored, distinct) = test.stored_and_distinct().await.unwrap();
    assert_eq!(distinct, TOTAL_ROWS, "rows lost");
    // A cut-short invocation resumes after its last checkpoint: at most the batches
    // acknowledged since (fewer than `checkpoint_every`) and those in flight go twice, for
    // each of the objects it had in progress (several, on a batch of small objects).
    let objects = if small_object_bytes > 0 {
        ingest::worker::OBJECTS_IN_FLIGHT as u64
    } else {
        1
    };
    let bound = cut_short * objects * (checkpoint_every + IN_FLIGHT) * 100;
    eprintln!(
        "{cut_short} invocations cut short ({} crashes, {} timeouts): {} rows stored twice, bound {bound}",
        test.stack.activity.crashes.load(Ordering::Relaxed),
        test.stack.activity.timeouts.load(Ordering::Relaxed),
        stored - distinct
    );
    assert!(
        stored - distinct <= bound,
        "{} duplicates after {cut_short} cut-short invocations (bound {bound})",
        stored - distinct
    );
    test.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_and_timed_out_invocations_resume_from_their_ledger_checkpoint() {
    crashes_and_timeouts_lose_nothing("crash", 0, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_and_timed_out_batches_resume_each_object_from_its_checkpoint() {
    // Batches of two, so that the run makes enough invocations for the faults to hit several.
    crashes_and_timeouts_lose_nothing("batch_crash", 1024 * 1024, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_executions_started_at_once_ingest_every_object_once() {
    let test = TestStack::start(|args| {
        args.channel = "twin_channel".to_owned();
        args.pipeline = "twin_pipeline".to_owned();
        args.datastore = "twin_datastore".to_owned();
        args.concurrency = 5;
    })
    .await
    .unwrap();
    fill_bucket(&test.stack, &test.args).await.unwrap();
    s3_ingest::stack::ensure_iotanalytics(&test.stack.clients.iotanalytics, &test.names())
        .await
        .unwrap();
    // The schedule's input: no expectations beyond the default (at least what this
    // execution sent or found already ingested).
    let input = json!({"maxConcurrency": 5, "validationPollSeconds": 1});
    let (first, second) = tokio::join!(test.execute(&input), test.execute(&input));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.0, "SUCCEEDED", "{}", first.1);
    assert_eq!(second.0, "SUCCEEDED", "{}", second.1);
    let rows = total(&first.1, "rows") + total(&second.1, "rows");
    assert_eq!(
        rows, TOTAL_ROWS,
        "the two executions' rows add up to the source"
    );
    let skipped = total(&first.1, "skipped") + total(&second.1, "skipped");
    assert_eq!(
        skipped, 100,
        "each object is ingested by one execution and skipped by the other"
    );
    let (stored, distinct) = test.stored_and_distinct().await.unwrap();
    assert_eq!(distinct, TOTAL_ROWS);
    assert_eq!(
        stored, TOTAL_ROWS,
        "an object was ingested by both executions ({skipped} skipped)"
    );
    test.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_run_skips_what_it_ingested_and_ingests_a_changed_object_again() {
    let test = TestStack::start(|args| {
        args.channel = "repeat_channel".to_owned();
        args.pipeline = "repeat_pipeline".to_owned();
        args.datastore = "repeat_datastore".to_owned();
    })
    .await
    .unwrap();
    let first = run_on(&test.stack, &test.args, false).await.unwrap();
    assert!(first.passed(), "{}", summary(&first));

    let again = run_on(&test.stack, &test.args, false).await.unwrap();
    assert!(again.passed(), "{}", summary(&again));
    let output = again.output.as_ref().unwrap();
    assert_eq!(total(output, "skipped"), 100, "{output}");
    assert_eq!(total(output, "skippedRows"), TOTAL_ROWS);
    assert_eq!(total(output, "objects"), 0, "pages carry only work");
    assert_eq!(again.rows, 0);

    // The same rows under a new ETag: the object is ingested again, the others are not.
    let key = "1/example_data_part_2.csv";
    let old = test
        .stack
        .clients
        .s3
        .get_object()
        .bucket(&test.args.bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let changed: String = String::from_utf8(old.to_vec())
        .unwrap()
        .replace("\n", "\r\n");
    let changed_rows = changed.lines().count() as u64 - 1;
    test.stack
        .clients
        .s3
        .put_object()
        .bucket(&test.args.bucket)
        .key(key)
        .body(ByteStream::from(changed.into_bytes()))
        .send()
        .await
        .unwrap();
    let third = run_on(&test.stack, &test.args, false).await.unwrap();
    assert!(third.passed(), "{}", summary(&third));
    let output = third.output.as_ref().unwrap();
    assert_eq!(total(output, "objects"), 1, "{output}");
    assert_eq!(total(output, "skipped"), 99);
    assert_eq!(total(output, "rows"), changed_rows);
    let (stored, distinct) = test.stored_and_distinct().await.unwrap();
    assert_eq!(distinct, TOTAL_ROWS);
    assert_eq!(stored, TOTAL_ROWS + changed_rows);
    test.stack.shutdown().await;
}

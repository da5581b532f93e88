//! The workflow end to end on the local stack: the same state machine definition, the real
//! SDK clients over HTTP, the embedded S3, IoT Analytics and Step Functions endpoints.

use std::sync::atomic::Ordering;
use std::time::Duration;

use end_to_end::TestStack;
use s3_ingest::run::run_on;
use s3_ingest::sample::TOTAL_ROWS;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_run_validates_both_counts_and_finds_row_575() {
    let test = TestStack::start(|_| {}).await.unwrap();
    let report = run_on(&test.stack, &test.args, false).await.unwrap();
    assert!(report.passed(), "{}", s3_ingest::run::summary(&report));
    assert_eq!(report.rows, TOTAL_ROWS);
    assert_eq!(report.objects, 100);
    let validation = &report.output.as_ref().unwrap()["validation"]["actual"];
    assert_eq!(validation["locations"], "2");
    assert_eq!(validation["distinct_rowids"], TOTAL_ROWS.to_string());

    let row = test
        .first_row(
            "row_575",
            "SELECT * FROM bpm_blog_datastore WHERE rowid='575'",
        )
        .await
        .unwrap();
    assert_eq!(row["deviceid"], "2");
    assert_eq!(row["humidity"], "51");
    assert_eq!(row["location"], "B");
    assert_eq!(row["temp"], "63");
    assert_eq!(row["timestamp"], "2018-04-18 19:04:35");
    test.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_page_size_continues_as_new_executions() {
    let test = TestStack::start(|args| {
        args.page_size = 10;
        args.pages_per_execution = 3;
        args.channel = "paged_channel".to_owned();
        args.pipeline = "paged_pipeline".to_owned();
        args.datastore = "paged_datastore".to_owned();
    })
    .await
    .unwrap();
    let report = run_on(&test.stack, &test.args, false).await.unwrap();
    assert!(report.passed(), "{}", s3_ingest::run::summary(&report));
    // 100 objects in pages of 10, then the run's own manifests, which are listed but never
    // work: two per page, so pages 11 and 12 list the first 20, and page 13 the 4 those two
    // pages wrote. Three pages per execution: five executions.
    assert_eq!(report.executions.len(), 5, "{:?}", report.executions);
    let totals = &report.output.as_ref().unwrap()["totals"];
    assert_eq!(totals["pages"], 13);
    assert_eq!(totals["objects"], 100);
    assert_eq!(totals["rows"], TOTAL_ROWS);
    test.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_redriven_without_resending_finished_objects() {
    let test = TestStack::start(|args| {
        args.concurrency = 1;
        args.channel = "redrive_channel".to_owned();
        args.pipeline = "redrive_pipeline".to_owned();
        args.datastore = "redrive_datastore".to_owned();
    })
    .await
    .unwrap();
    let iota = test.stack.clients.iotanalytics.clone();
    let activity = test.stack.activity.clone();
    let channel = test.args.channel.clone();
    // Once 20 objects are in, the channel disappears: the next worker fails with
    // ChannelNotFound, which no retry cures, and the execution fails.
    let saboteur = tokio::spawn(async move {
        while activity.objects.load(Ordering::Relaxed) < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        iota.delete_channel()
            .channel_name(channel)
            .send()
            .await
            .unwrap();
    });
    let failed = run_on(&test.stack, &test.args, false).await.unwrap();
    saboteur.await.unwrap();
    assert_eq!(
        failed.status,
        "FAILED",
        "{}",
        s3_ingest::run::summary(&failed)
    );
    // As on AWS, the Map Run's failure names the threshold. The objects' own error
    // (ChannelNotFound) was in Express children, which are not kept: the run names it from
    // the worker's failure notes in the ledger.
    let (error, _) = failed.failure.clone().unwrap();
    assert_eq!(error, "States.ExceedToleratedFailureThreshold");
    let item = failed.failed_items.first().expect("a failed object named");
    assert_eq!(item.error, "ChannelNotFound", "{item:?}");
    assert!(item.cause.contains("redrive_channel"), "{item:?}");
    assert!(
        item.key.as_deref().is_some_and(|key| key.ends_with(".csv")),
        "{item:?}"
    );
    let finished_before = test.stack.activity.objects.load(Ordering::Relaxed);
    assert!((20..100).contains(&finished_before), "{finished_before}");

    s3_ingest::stack::ensure_iotanalytics(&test.stack.clients.iotanalytics, &test.names())
        .await
        .unwrap();
    let sfn = test.stack.sfn_client().await;
    let execution = failed.executions.last().unwrap();
    sfn.redrive_execution()
        .execution_arn(execution)
        .send()
        .await
        .unwrap();
    let output = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let described = sfn
            .describe_execution()
            .execution_arn(execution)
            .send()
            .await
            .unwrap();
        match described.status().as_str() {
            "RUNNING" => continue,
            "SUCCEEDED" => {
                break serde_json::from_str::<Value>(described.output().unwrap()).unwrap();
            }
            other => {
                // Name the items that failed, as the console's Map Run page would.
                for run in test.stack.stepfunctions.handle().map_runs(execution) {
                    eprintln!(
                        "map run {} {:?} {:?}",
                        run.map_run_arn, run.status, run.items
                    );
                    let children = sfn
                        .list_executions()
                        .map_run_arn(&run.map_run_arn)
                        .send()
                        .await
                        .unwrap();
                    for child in children.executions() {
                        if child.status().as_str() != "SUCCEEDED" {
                            let d = sfn
                                .describe_execution()
                                .execution_arn(child.execution_arn())
                                .send()
                                .await
                                .unwrap();
                            eprintln!(
                                "  child {} {:?} {:?} {:?}",
                                child.name(),
                                d.status(),
                                d.error(),
                                d.cause()
                            );
                        }
                    }
                }
                panic!("redriven execution ended {other}: {:?}", described.cause())
            }
        }
    };
    assert_eq!(output["validation"]["passed"], true, "{output}");
    assert_eq!(described_redrive_count(&sfn, execution).await, 1);
    // Every object finished exactly once over the two attempts.
    assert_eq!(test.stack.activity.objects.load(Ordering::Relaxed), 100);
    // Only the object cut off mid-way can have been sent twice.
    let stored = test
        .first_row(
            "stored_rows",
            "SELECT count(*) AS stored, count(DISTINCT rowid) AS distinct_rows FROM redrive_datastore",
        )
        .await
        .unwrap();
    let stored_rows: u64 = stored["stored"].parse().unwrap();
    assert_eq!(stored["distinct_rows"], TOTAL_ROWS.to_string());
    assert!(
        stored_rows <= TOTAL_ROWS + 566,
        "{stored_rows} stored for {TOTAL_ROWS} rows"
    );
    test.stack.shutdown().await;
}

async fn described_redrive_count(sfn: &aws_sdk_sfn::Client, execution: &str) -> i32 {
    sfn.describe_execution()
        .execution_arn(execution)
        .send()
        .await
        .unwrap()
        .redrive_count()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_definition_with_an_unsupported_field_is_rejected() {
    let test = TestStack::start(|_| {}).await.unwrap();
    let mut definition: Value = serde_json::from_str(s3_ingest::stack::DEFINITION).unwrap();
    definition["States"]["List page"]["Credentials"] = serde_json::json!({"RoleArn": "x"});
    let error = test
        .stack
        .stepfunctions
        .handle()
        .register_state_machine(
            "broken",
            &definition.to_string(),
            &s3_ingest::stack::substitutions("us-east-1", "1", &test.names()),
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("List page"), "{error}");
    assert!(error.contains("Credentials"), "{error}");
    test.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_result_writer_puts_its_manifest_and_results_into_the_embedded_s3() {
    let test = TestStack::start(|_| {}).await.unwrap();
    let bucket = test.args.bucket.clone();
    let definition = serde_json::json!({"StartAt": "Map", "States": {"Map": {
        "Type": "Map", "ItemsPath": "$.items", "End": true,
        "ItemBatcher": {"MaxItemsPerBatch": 2},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
            "StartAt": "Count", "States": {"Count": {"Type": "Pass",
                "Parameters": {"n.$": "States.ArrayLength($.Items)"}, "End": true}}},
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": bucket, "Prefix": "map-results"}}}}});
    let handle = test.stack.stepfunctions.handle();
    let arn = handle
        .register_state_machine(
            "result-writer",
            &definition.to_string(),
            &std::collections::HashMap::new(),
        )
        .unwrap();
    let execution = handle
        .start_execution(&arn, None, serde_json::json!({"items": [1, 2, 3, 4, 5]}))
        .unwrap();
    let done = handle
        .wait_for_execution(&execution, Duration::from_secs(30))
        .await
        .unwrap();
    let output = done.output.expect("the execution succeeded");
    let key = output["ResultWriterDetails"]["Key"].as_str().unwrap();
    assert!(key.starts_with("map-results/") && key.ends_with("/manifest.json"));
    let read = |key: String| {
        let s3 = test.stack.clients.s3.clone();
        let bucket = bucket.clone();
        async move {
            let object = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            let bytes = object.body.collect().await.unwrap().into_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    let manifest = read(key.to_string()).await;
    let results_key = manifest["ResultFiles"]["SUCCEEDED"][0]["Key"]
        .as_str()
        .unwrap();
    let results = read(results_key.to_string()).await;
    let mut counts: Vec<i64> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r["Output"].as_str().unwrap()).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 2], "five items in batches of two");
    test.stack.shutdown().await;
}

//! A source object replaced between two invocations of the worker, over the local stack's
//! real S3 and IoT Analytics endpoints: the resumed read must not take the shorter object's
//! end for the end of the data.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use end_to_end::TestStack;
use ingest::worker::{Outcome, WorkerInput, ingest_object};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_read_of_an_object_replaced_by_a_shorter_one_fails_as_object_changed() {
    let test = TestStack::start(|_| {}).await.unwrap();
    let clients = &test.stack.clients;
    s3_ingest::stack::ensure_iotanalytics(&clients.iotanalytics, &test.args.names())
        .await
        .unwrap();
    let bucket = test.args.bucket.clone();
    let mut csv = String::from("rowid,value\n");
    for i in 1..=450 {
        csv.push_str(&format!("{i},{}\n", i * 7));
    }
    let put = |body: Vec<u8>| {
        clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key("replaced.csv")
            .body(ByteStream::from(body))
            .send()
    };
    let original = put(csv.into_bytes()).await.unwrap();
    let input: WorkerInput = serde_json::from_value(serde_json::json!({
        "bucket": bucket,
        "key": "replaced.csv",
        "etag": original.e_tag().unwrap(),
        "channelName": test.args.channel,
        "timeMarginSeconds": 60,
    }))
    .unwrap();
    // A deadline exactly one margin away: the worker stops after its first batch.
    let first = ingest_object(clients, &input, SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(first.outcome, Outcome::InProgress);
    let checkpoint = first.checkpoint.clone().unwrap();
    assert_eq!(checkpoint.rows_sent, 100);

    // Replaced by an object shorter than the checkpoint's offset: a ranged GET from there
    // would answer 416, as if the data had ended.
    let shorter = b"rowid,value\n1,7\n".to_vec();
    assert!((shorter.len() as u64) < checkpoint.byte_offset);
    put(shorter).await.unwrap();

    let resumed = WorkerInput {
        checkpoint: Some(checkpoint),
        ..input
    };
    let later = SystemTime::now() + Duration::from_secs(900);
    let error = ingest_object(clients, &resumed, later).await.unwrap_err();
    assert_eq!(error.error_type(), "ObjectChanged", "{error}");
    test.stack.shutdown().await;
}

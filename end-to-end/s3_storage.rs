//! The workflow with the IoT Analytics service on its S3 storage backend (the deployed code
//! path), over the embedded S3: the sample run validates as it does on the filesystem.

use end_to_end::TestStack;
use s3_ingest::run::run_on;
use s3_ingest::sample::TOTAL_ROWS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_run_validates_on_the_s3_storage_backend() {
    let test = TestStack::start(|args| {
        args.storage =
            Some(iotanalytics_service::S3Location::parse("s3://iotanalytics/service/").unwrap());
    })
    .await
    .unwrap();
    let report = run_on(&test.stack, &test.args, false).await.unwrap();
    assert!(report.passed(), "{}", s3_ingest::run::summary(&report));
    assert_eq!(report.rows, TOTAL_ROWS);
    let validation = &report.output.as_ref().unwrap()["validation"]["actual"];
    assert_eq!(validation["locations"], "2");
    assert_eq!(validation["distinct_rowids"], TOTAL_ROWS.to_string());

    // The service's state is in the bucket, partitioned by datastore and day.
    let listed = test
        .stack
        .clients
        .s3
        .list_objects_v2()
        .bucket("iotanalytics")
        .prefix("service/datastores/bpm_blog_datastore/dt=")
        .send()
        .await
        .unwrap();
    assert!(
        listed.key_count().unwrap_or(0) > 0,
        "datastore objects under dt= partitions"
    );
    let catalog = test
        .stack
        .clients
        .s3
        .get_object()
        .bucket("iotanalytics")
        .key("service/catalog/channels/bpm_blog_channel.json")
        .send()
        .await;
    assert!(
        catalog.is_ok(),
        "the channel's definition is an object of its own"
    );
    test.stack.shutdown().await;
}

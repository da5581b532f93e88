//! Dataset triggers and delivery rules over HTTP: contents delivered to an embedded S3 under
//! the rule's key pattern, a schedule producing contents on a shortened clock, a chain of
//! triggering datasets, and the expressions and destinations that are refused.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_iotanalytics::Client;
use aws_sdk_iotanalytics::error::ProvideErrorMetadata;
use aws_sdk_iotanalytics::types::{
    DatasetContentDeliveryDestination, DatasetContentDeliveryRule, DatasetContentState,
    DatasetContentSummary, DatasetTrigger, IotEventsDestinationConfiguration,
    S3DestinationConfiguration, Schedule, TriggeringDataset, VersioningConfiguration,
};
use common::*;
use iotanalytics_service::ScheduleClock;
use iotanalytics_service::delivery::key_time;

const ROLE: &str = "arn:aws:iam::123456789012:role/delivery";

fn s3_rule(bucket: &str, key: &str) -> DatasetContentDeliveryRule {
    DatasetContentDeliveryRule::builder()
        .destination(
            DatasetContentDeliveryDestination::builder()
                .s3_destination_configuration(
                    S3DestinationConfiguration::builder()
                        .bucket(bucket)
                        .key(key)
                        .role_arn(ROLE)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .build()
}

fn schedule(expression: &str) -> DatasetTrigger {
    DatasetTrigger::builder()
        .schedule(Schedule::builder().expression(expression).build())
        .build()
}

fn after(dataset: &str) -> DatasetTrigger {
    DatasetTrigger::builder()
        .dataset(TriggeringDataset::builder().name(dataset).build().unwrap())
        .build()
}

fn unlimited() -> VersioningConfiguration {
    VersioningConfiguration::builder().unlimited(true).build()
}

/// A service whose delivery client reaches an embedded S3 with bucket `delivered`; returns
/// the S3 (kept running) and a client of it.
async fn start_delivering(
    clock: Option<ScheduleClock>,
) -> (TestService, local_s3::RunningS3, aws_sdk_s3::Client) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("delivery");
    local_s3::ensure_bucket(&root.join("s3"), "delivered").unwrap();
    let (s3, s3_client) = embedded_s3(&root).await;
    let delivery = s3_client.clone();
    let t = start_with(dir, move |c| {
        c.delivery_s3 = Some(delivery);
        if let Some(clock) = clock {
            c.schedules = clock;
        }
    })
    .await;
    (t, s3, s3_client)
}

async fn send(client: &Client, prefix: &str) {
    client
        .batch_put_message()
        .channel_name(format!("{prefix}_channel"))
        .messages(message("1", r#"{"temp": 10}"#))
        .messages(message("2", r#"{"temp": 50}"#))
        .send()
        .await
        .unwrap();
}

/// Every key of `bucket` under `prefix` and its body.
async fn objects(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<(String, String)> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in listed.contents().iter().filter_map(|o| o.key()) {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = body.body.collect().await.unwrap().into_bytes();
        out.push((key.to_owned(), String::from_utf8(bytes.to_vec()).unwrap()));
    }
    out
}

async fn contents(client: &Client, dataset: &str) -> Vec<DatasetContentSummary> {
    client
        .list_dataset_contents()
        .dataset_name(dataset)
        .send()
        .await
        .unwrap()
        .dataset_content_summaries()
        .to_vec()
}

/// Waits until `dataset` has at least `n` SUCCEEDED contents; returns them, oldest first.
async fn wait_succeeded(client: &Client, dataset: &str, n: usize) -> Vec<DatasetContentSummary> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut done: Vec<DatasetContentSummary> = contents(client, dataset)
            .await
            .into_iter()
            .filter(|c| c.status().and_then(|s| s.state()) == Some(&DatasetContentState::Succeeded))
            .collect();
        if done.len() >= n {
            done.reverse();
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{dataset} has {} succeeded contents after 30 s, expected {n}",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn seconds(t: &aws_sdk_iotanalytics::primitives::DateTime) -> f64 {
    t.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn succeeded_contents_are_delivered_under_the_rule_key_and_failures_are_recorded() {
    let (t, _s3, s3) = start_delivering(None).await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "dl").await;
    send(&client, "dl").await;
    client
        .create_dataset()
        .dataset_name("dl_dataset")
        .actions(query_action(
            "q",
            "select temp from dl_datastore order by temp",
        ))
        .content_delivery_rules(s3_rule(
            "delivered",
            "out/!{iotanalytics:scheduleTime}/!{iotanalytics:versionId}.csv",
        ))
        .content_delivery_rules(s3_rule("no-such-bucket", "x/!{iotanalytics:versionId}.csv"))
        .send()
        .await
        .unwrap();
    let version = client
        .create_dataset_content()
        .dataset_name("dl_dataset")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let (state, _, uri) = wait_content(&client, "dl_dataset").await;
    assert_eq!(state, DatasetContentState::Succeeded);
    let (_, _, served) = http_get(&uri.unwrap());

    // The failing bucket is recorded once delivery has run; the content stays SUCCEEDED.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        let out = client
            .get_dataset_content()
            .dataset_name("dl_dataset")
            .send()
            .await
            .unwrap();
        let status = out.status().unwrap();
        assert_eq!(status.state(), Some(&DatasetContentState::Succeeded));
        if let Some(reason) = status.reason() {
            break reason.to_owned();
        }
        assert!(Instant::now() < deadline, "no delivery failure recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(reason.contains("s3://no-such-bucket/x/"), "{reason}");
    assert!(reason.contains(&version), "{reason}");

    let summary = &contents(&client, "dl_dataset").await[0];
    let schedule_time = seconds(summary.schedule_time().unwrap());
    assert_eq!(
        schedule_time,
        seconds(summary.creation_time().unwrap()),
        "a content created on request is scheduled at its creation"
    );
    let delivered = objects(&s3, "delivered", "out/").await;
    assert_eq!(
        delivered,
        [(
            format!("out/{}/{version}.csv", key_time(schedule_time)),
            served
        )]
    );
    assert!(delivered[0].1.contains("10") && delivered[0].1.contains("50"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_creates_contents_at_its_instants_on_a_shortened_clock() {
    let clock = ScheduleClock {
        minute: Duration::from_millis(1000),
        check_every: Duration::from_millis(50),
    };
    let (t, _s3, s3) = start_delivering(Some(clock)).await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "sc").await;
    send(&client, "sc").await;
    client
        .create_dataset()
        .dataset_name("sc_dataset")
        .actions(query_action("q", "select count(*) as n from sc_datastore"))
        .triggers(schedule("cron(* * * * ? *)"))
        .versioning_configuration(unlimited())
        .content_delivery_rules(s3_rule(
            "delivered",
            "sched/!{iotanalytics:scheduleTime}.csv",
        ))
        .send()
        .await
        .unwrap();
    let done = wait_succeeded(&client, "sc_dataset", 3).await;
    let times: Vec<f64> = done
        .iter()
        .map(|c| seconds(c.schedule_time().unwrap()))
        .collect();
    for t in &times {
        assert_eq!(t % 60.0, 0.0, "scheduled at whole minutes: {times:?}");
    }
    // One content per minute; a check delayed past a whole minute (a loaded machine) fires
    // only the newest instant, so a gap is a multiple of 60.
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap > 0.0 && gap % 60.0 == 0.0, "{times:?}");
    }
    // Delivery follows each success; give the last one a moment.
    let wanted: Vec<String> = times
        .iter()
        .map(|t| format!("sched/{}.csv", key_time(*t)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys: Vec<String> = objects(&s3, "delivered", "sched/")
            .await
            .into_iter()
            .map(|(k, body)| {
                assert_eq!(body.trim(), "n\n2", "{k}");
                k
            })
            .collect();
        if wanted.iter().all(|w| keys.contains(w)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivered {keys:?}, wanted {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeded_content_creates_the_contents_of_the_datasets_it_triggers() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    setup_flow(&client, "ch").await;
    send(&client, "ch").await;
    for (name, trigger) in [
        ("ch_first", None),
        ("ch_second", Some("ch_first")),
        ("ch_third", Some("ch_second")),
    ] {
        let mut req = client
            .create_dataset()
            .dataset_name(name)
            .actions(query_action("q", "select max(temp) as m from ch_datastore"));
        if let Some(t) = trigger {
            req = req.triggers(after(t));
        }
        req.send().await.unwrap();
    }
    assert!(contents(&client, "ch_third").await.is_empty());
    client
        .create_dataset_content()
        .dataset_name("ch_first")
        .send()
        .await
        .unwrap();
    let third = wait_succeeded(&client, "ch_third", 1).await;
    let second = wait_succeeded(&client, "ch_second", 1).await;
    let first = wait_succeeded(&client, "ch_first", 1).await;
    assert!(
        seconds(first[0].completion_time().unwrap()) <= seconds(second[0].creation_time().unwrap())
            && seconds(second[0].completion_time().unwrap())
                <= seconds(third[0].creation_time().unwrap()),
        "each starts after the one triggering it succeeded"
    );

    // Closing the loop is refused.
    let e = client
        .update_dataset()
        .dataset_name("ch_first")
        .actions(query_action("q", "select 1"))
        .triggers(after("ch_third"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidRequestException"));
    assert!(e.message().unwrap().contains("trigger itself"), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_schedules_and_unreachable_destinations_are_refused() {
    let t = start().await;
    let client = client(&t.service.endpoint_url()).await;
    for (expression, says) in [
        ("cron(0 12 * * * *)", "'?'"),
        ("cron(0 12 * * ?)", "six fields"),
        ("cron(0 25 * * ? *)", "hours"),
        ("rate(1 minutes)", "unit"),
        ("at(2026-12-02T12:00:00)", "cron(...) or rate(...)"),
    ] {
        let e = client
            .create_dataset()
            .dataset_name("bad_schedule")
            .actions(query_action("q", "select 1"))
            .triggers(schedule(expression))
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("InvalidRequestException"), "{expression}");
        let message = e.message().unwrap();
        assert!(
            message.contains(&format!("'{expression}'")) && message.contains(says),
            "{expression}: {message}"
        );
    }
    let e = client
        .create_dataset()
        .dataset_name("too_many")
        .actions(query_action("q", "select 1"))
        .set_triggers(Some(vec![schedule("rate(1 day)"); 6]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidRequestException"));

    let events = DatasetContentDeliveryRule::builder()
        .destination(
            DatasetContentDeliveryDestination::builder()
                .iot_events_destination_configuration(
                    IotEventsDestinationConfiguration::builder()
                        .input_name("input")
                        .role_arn(ROLE)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .build();
    let e = client
        .create_dataset()
        .dataset_name("to_events")
        .actions(query_action("q", "select 1"))
        .content_delivery_rules(events)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidRequestException"));
    assert!(e.message().unwrap().contains("AWS IoT Events"), "{e:?}");

    // Without a delivery client (the filesystem backend and no ServiceConfig::delivery_s3)
    // an S3 destination cannot be honoured.
    let result = client
        .create_dataset()
        .dataset_name("to_s3")
        .actions(query_action("q", "select 1"))
        .content_delivery_rules(s3_rule("delivered", "k/!{iotanalytics:versionId}.csv"))
        .send()
        .await;
    if on_s3_backend() {
        result.unwrap();
    } else {
        let e = result.unwrap_err();
        assert_eq!(e.code(), Some("InvalidRequestException"));
        assert!(e.message().unwrap().contains("no S3 client"), "{e:?}");
    }
    // A good schedule is stored and described as given.
    client
        .create_dataset()
        .dataset_name("daily")
        .actions(query_action("q", "select 1"))
        .triggers(schedule("cron(0 12 * * ? *)"))
        .send()
        .await
        .unwrap();
    let described = client
        .describe_dataset()
        .dataset_name("daily")
        .send()
        .await
        .unwrap();
    let expression = described.dataset().unwrap().triggers()[0]
        .schedule()
        .unwrap()
        .expression();
    assert_eq!(expression, Some("cron(0 12 * * ? *)"));
}

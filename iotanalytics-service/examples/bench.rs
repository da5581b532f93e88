//! Ingest and query benchmark of the local IoT Analytics service.
//!
//! ```text
//! cargo run --release -p iotanalytics-service --example bench -- [--messages N] [--clients C] [--no-fsync] [--s3]
//! ```
//!
//! With `--s3` the service keeps everything on its S3 storage backend, in an embedded S3
//! (`local-s3`) started in the same process: a batch is answered once its objects are stored.
//!
//! Starts the service in-process with durable writes, sends `N` messages (default 1,000,000,
//! rows shaped like the 2018 article's CSV, all values strings) in batches of 100 from `C`
//! concurrent SDK clients (default 4) over loopback, then times
//! `SELECT count(DISTINCT location), count(DISTINCT rowid)` from CreateDatasetContent to
//! SUCCEEDED, once right after ingest and once after background compaction has settled.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use aws_sdk_iotanalytics::Client;
use aws_sdk_iotanalytics::primitives::Blob;
use aws_sdk_iotanalytics::types::{DatasetContentState, Message};

#[path = "../tests/common/mod.rs"]
mod common;

struct Options {
    messages: usize,
    clients: usize,
    durable: bool,
    s3: bool,
}

fn options() -> Options {
    let mut o = Options {
        messages: 1_000_000,
        clients: 4,
        durable: true,
        s3: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--messages" => {
                o.messages = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--messages N")
            }
            "--clients" => {
                o.clients = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--clients C")
            }
            "--no-fsync" => o.durable = false,
            "--s3" => o.s3 = true,
            other => panic!("unknown argument {other}"),
        }
    }
    o
}

fn row(i: usize) -> String {
    format!(
        r#"{{"deviceid": "{}", "humidity": "{}", "location": "{}", "rowid": "{i}", "temp": "{}", "timestamp": "2018-04-18 19:04:35"}}"#,
        i % 10,
        40 + i % 30,
        if i.is_multiple_of(2) { "A" } else { "B" },
        50 + i % 40
    )
}

async fn time_query(client: &Client, dataset: &str) -> (Duration, String) {
    let started = Instant::now();
    client
        .create_dataset_content()
        .dataset_name(dataset)
        .send()
        .await
        .unwrap();
    let (state, reason, uri) = common::wait_content(client, dataset).await;
    let elapsed = started.elapsed();
    assert_eq!(
        state,
        DatasetContentState::Succeeded,
        "query ended: {reason:?}"
    );
    let (_, _, csv) = common::http_get(&uri.expect("a data URI"));
    (elapsed, csv.trim().replace('\n', " | "))
}

#[tokio::main]
async fn main() {
    let o = options();
    let dir = tempfile::tempdir().unwrap();
    let mut config = iotanalytics_service::ServiceConfig::new(dir.path());
    config.durable = o.durable;
    let _s3 = if o.s3 {
        let (s3, client) = common::embedded_s3(dir.path()).await;
        config.storage = iotanalytics_service::StorageConfig::S3 {
            location: iotanalytics_service::S3Location::parse("s3://iotanalytics/service/")
                .unwrap(),
            client,
        };
        Some(s3)
    } else {
        None
    };
    let service = iotanalytics_service::start(config).await.unwrap();
    // Measure the service itself, not the default 100,000 messages/s channel quota.
    service.controls().set_default_quota(u32::MAX);
    let endpoint = service.endpoint_url();
    let client = common::client(&endpoint).await;
    common::setup_flow(&client, "bench").await;

    // Requests are prepared up front so the clock measures sending, not generating.
    let batches: Vec<Vec<Message>> = (0..o.messages)
        .collect::<Vec<_>>()
        .chunks(100)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .map(|(j, i)| {
                    Message::builder()
                        .message_id(j.to_string())
                        .payload(Blob::new(row(*i).into_bytes()))
                        .build()
                        .unwrap()
                })
                .collect()
        })
        .collect();
    let mut per_client: Vec<Vec<Vec<Message>>> = vec![Vec::new(); o.clients];
    for (i, b) in batches.into_iter().enumerate() {
        per_client[i % o.clients].push(b);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for work in per_client {
        let client = common::client(&endpoint).await;
        tasks.push(tokio::spawn(async move {
            for batch in work {
                let out = client
                    .batch_put_message()
                    .channel_name("bench_channel")
                    .set_messages(Some(batch))
                    .send()
                    .await
                    .unwrap();
                assert!(out.batch_put_message_error_entries().is_empty());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ingest = started.elapsed();
    println!(
        "ingest: {} messages, {} clients, batches of 100, durable={}, storage={}: {:.2} s, {:.0} messages/s",
        o.messages,
        o.clients,
        o.durable,
        if o.s3 { "s3" } else { "filesystem" },
        ingest.as_secs_f64(),
        o.messages as f64 / ingest.as_secs_f64()
    );

    let sql = "SELECT count(DISTINCT location), count(DISTINCT rowid) FROM bench_datastore";
    client
        .create_dataset()
        .dataset_name("bench_dataset")
        .actions(common::query_action("q", sql))
        .send()
        .await
        .unwrap();
    let (cold, result) = time_query(&client, "bench_dataset").await;
    println!(
        "query right after ingest: {:.2} s -> {result}",
        cold.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (warm, result) = time_query(&client, "bench_dataset").await;
    println!(
        "query after compaction settled: {:.2} s -> {result}",
        warm.as_secs_f64()
    );
    service.shutdown().await;
}

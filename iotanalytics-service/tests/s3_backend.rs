//! The S3 storage backend under contention: clients ingesting while others race to create and
//! delete resources with the same names, several service instances sharing one bucket.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_iotanalytics::Client;
use aws_sdk_iotanalytics::error::ProvideErrorMetadata as _;
use common::{client, embedded_s3, message, run_sql, setup_flow};
use iotanalytics_service::{RunningService, S3Location, ServiceConfig, StorageConfig};

const INGEST_CLIENTS: usize = 4;
const BATCHES_PER_CLIENT: usize = 25;
const RACERS: usize = 6;
const ROUNDS: usize = 8;

async fn instance(dir: &std::path::Path, s3: &aws_sdk_s3::Client) -> RunningService {
    let mut config = ServiceConfig::new(dir);
    config.storage = StorageConfig::S3 {
        location: S3Location::parse("s3://iotanalytics/race/").unwrap(),
        client: s3.clone(),
    };
    iotanalytics_service::start(config).await.unwrap()
}

/// Sends `BATCHES_PER_CLIENT` batches of 100 and returns the `uid` of every acknowledged
/// message (a throttled or failed batch is sent again, as the worker does).
async fn ingest(client: Client, id: usize) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for batch in 0..BATCHES_PER_CLIENT {
        let uids: Vec<String> = (0..100).map(|m| format!("c{id}b{batch}m{m}")).collect();
        loop {
            let mut request = client.batch_put_message().channel_name("race_channel");
            for (m, uid) in uids.iter().enumerate() {
                request = request.messages(message(
                    m.to_string(),
                    &format!(r#"{{"uid":"{uid}","client":{id}}}"#),
                ));
            }
            match request.send().await {
                Ok(out) => {
                    let refused: HashSet<&str> = out
                        .batch_put_message_error_entries()
                        .iter()
                        .filter_map(|e| e.message_id())
                        .collect();
                    acknowledged.extend(
                        uids.iter()
                            .enumerate()
                            .filter(|(m, _)| !refused.contains(m.to_string().as_str()))
                            .map(|(_, uid)| uid.clone()),
                    );
                    break;
                }
                Err(e) if e.code() == Some("ThrottlingException") => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("batch failed: {e:?}"),
            }
        }
    }
    acknowledged
}

/// Every racer creates the same channel, datastore and dataset names at once; returns how
/// many creations of each name succeeded.
async fn race_round(clients: &[Client], round: usize) -> [usize; 3] {
    let name = format!("contested_{round}");
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .map(|c| {
            let name = name.clone();
            tokio::spawn(async move {
                let mut won = [0usize; 3];
                let channel = c.create_channel().channel_name(&name).send().await;
                let datastore = c.create_datastore().datastore_name(&name).send().await;
                let dataset = c
                    .create_dataset()
                    .dataset_name(&name)
                    .actions(common::query_action("q", "SELECT 1"))
                    .send()
                    .await;
                for (slot, result) in [
                    channel.map(|_| ()).map_err(|e| e.code().map(str::to_owned)),
                    datastore
                        .map(|_| ())
                        .map_err(|e| e.code().map(str::to_owned)),
                    dataset.map(|_| ()).map_err(|e| e.code().map(str::to_owned)),
                ]
                .into_iter()
                .enumerate()
                {
                    match result {
                        Ok(()) => won[slot] += 1,
                        Err(code) => assert_eq!(
                            code.as_deref(),
                            Some("ResourceAlreadyExistsException"),
                            "a losing creation says why"
                        ),
                    }
                }
                won
            })
        })
        .collect();
    let mut total = [0; 3];
    for task in tasks {
        let won = task.await.unwrap();
        for (t, w) in total.iter_mut().zip(won) {
            *t += w;
        }
    }
    // Deleted again by one racer, so the next round starts from nothing.
    let c = &clients[round % clients.len()];
    c.delete_channel().channel_name(&name).send().await.unwrap();
    c.delete_datastore()
        .datastore_name(&name)
        .send()
        .await
        .unwrap();
    c.delete_dataset().dataset_name(&name).send().await.unwrap();
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_have_one_winner_and_every_acknowledged_message_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (_s3, s3) = embedded_s3(dir.path()).await;
    // Two instances over one bucket, as two Lambda instances are.
    let a = instance(&dir.path().join("a"), &s3).await;
    let b = instance(&dir.path().join("b"), &s3).await;
    let clients: Vec<Client> = vec![
        client(&a.endpoint_url()).await,
        client(&b.endpoint_url()).await,
    ];
    setup_flow(&clients[0], "race").await;

    let ingesting: Vec<_> = (0..INGEST_CLIENTS)
        .map(|i| tokio::spawn(ingest(clients[i % 2].clone(), i)))
        .collect();
    let racers: Vec<Client> = (0..RACERS).map(|i| clients[i % 2].clone()).collect();
    let racers = Arc::new(racers);
    for round in 0..ROUNDS {
        let won = race_round(&racers, round).await;
        assert_eq!(won, [1, 1, 1], "round {round}: creations that won per name");
    }
    let mut acknowledged = HashSet::new();
    for task in ingesting {
        acknowledged.extend(task.await.unwrap());
    }
    assert_eq!(
        acknowledged.len(),
        INGEST_CLIENTS * BATCHES_PER_CLIENT * 100
    );

    let csv = run_sql(
        &clients[1],
        "race_check",
        "SELECT count(*) AS stored, count(DISTINCT uid) AS distinct_uids FROM race_datastore",
    )
    .await;
    let row = csv.lines().nth(1).unwrap().to_owned();
    assert_eq!(
        row,
        format!("{0},{0}", acknowledged.len()),
        "every acknowledged message is stored once"
    );
    a.shutdown().await;
    b.shutdown().await;
}

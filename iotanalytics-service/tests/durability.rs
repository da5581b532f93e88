//! Acknowledged messages survive `kill -9`: the test runs the service in a child process (this
//! same binary, told by an environment variable to be the server), ingests from several
//! clients, kills the child mid-ingest, restarts it on the same data directory and checks that
//! every acknowledged message is there.
//!
//! This test has its own `main` (harness = false) because it must re-execute itself.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const CHILD_ENV: &str = "LOCAL_IOTANALYTICS_DURABILITY_CHILD_DIR";

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        run_child(&dir);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(acknowledged_messages_survive_kill_9_mid_ingest());
    let mut out = std::io::stdout();
    writeln!(
        out,
        "test acknowledged_messages_survive_kill_9_mid_ingest ... ok"
    )
    .unwrap();
}

/// The server side: start the service on the given directory, report the port, run forever.
fn run_child(dir: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = iotanalytics_service::ServiceConfig::new(dir);
        let service = iotanalytics_service::start(config).await.unwrap();
        let mut out = std::io::stdout();
        writeln!(out, "PORT {}", service.local_addr().port()).unwrap();
        out.flush().unwrap();
        std::future::pending::<()>().await;
    });
}

fn spawn_server(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("child reports its port")
        .to_owned();
    (child, format!("http://127.0.0.1:{port}"))
}

async fn acknowledged_messages_survive_kill_9_mid_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_server(dir.path());
    let client = client(&url).await;
    setup_flow(&client, "crash").await;

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = client.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for b in 0.. {
                let mut req = client.batch_put_message().channel_name("crash_channel");
                let keys: Vec<String> = (0..100).map(|i| format!("w{w}-b{b}-m{i}")).collect();
                for (i, k) in keys.iter().enumerate() {
                    req = req.messages(message(i.to_string(), &format!(r#"{{"k": "{k}"}}"#)));
                }
                match req.send().await {
                    Ok(out) => {
                        assert!(out.batch_put_message_error_entries().is_empty());
                        acked.lock().unwrap().extend(keys);
                    }
                    // The server is gone: stop this writer.
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 1000,
        "only {} messages acknowledged before the kill",
        acked.len()
    );

    let (mut child, url) = spawn_server(dir.path());
    let client = common::client(&url).await;
    let csv = run_sql(&client, "stored", "select k from crash_datastore").await;
    let stored: HashSet<String> = csv.lines().skip(1).map(str::to_owned).collect();
    let missing: Vec<_> = acked.difference(&stored).take(5).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but lost after kill -9: {missing:?} …"
    );
    // The restarted service keeps accepting messages after repairing the logs.
    client
        .batch_put_message()
        .channel_name("crash_channel")
        .messages(message("1", r#"{"k": "after-restart"}"#))
        .send()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut out = std::io::stdout();
    writeln!(
        out,
        "{} acknowledged, {} stored after kill -9",
        acked.len(),
        stored.len()
    )
    .unwrap();
}

//! The real `s3-ingest` binary, SIGKILLed at random moments during `run` and run again on the
//! same data directory, over several rounds: every source row ends up in the datastore, the
//! duplicates stay within the bound the summary states and the summary reports them, and a
//! validation over a datastore missing a row the ledger records fails.
//!
//! The binary is `$S3_INGEST_BIN`, or `s3-ingest` beside this test's build directory (built
//! by `cargo test --workspace`; otherwise `cargo build -p s3-ingest` first). A seed is
//! printed for each round; `S3_INGEST_KILL_SEED` replays one.

#![cfg(unix)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ingest::ledger::{DEFAULT_LEDGER_PREFIX, EntryState, Ledger, LedgerLocation};
use s3_ingest::stack::{LocalStack, StackOptions, WorkflowNames};

const FILES: u64 = 8;
const ROWS_PER_FILE: u64 = 2_500;
const ROUNDS: u64 = 3;
const KILLS_PER_ROUND: u64 = 2;
const CONCURRENCY: u64 = 4;
const CHECKPOINT_EVERY: u64 = 2;

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("S3_INGEST_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("s3-ingest");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p s3-ingest` or set S3_INGEST_BIN",
        path.display()
    );
    path
}

/// A small xorshift generator: the draws only need to be reproducible from the seed.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Milliseconds in `low..high`.
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low))
    }
}

fn write_source(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for file in 0..FILES {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(dir.join(format!("part-{file:02}.csv"))).unwrap(),
        );
        writeln!(out, "rowid,device,value").unwrap();
        for row in 0..ROWS_PER_FILE {
            let rowid = file * ROWS_PER_FILE + row;
            writeln!(out, "{rowid},{},{}", rowid % 7, rowid * 31 % 1000).unwrap();
        }
    }
}

fn run_command(source: &Path, data: &Path) -> Command {
    let mut command = Command::new(binary());
    command
        .args(["run", "--source"])
        .arg(source)
        .arg("--data-dir")
        .arg(data)
        .args(["--rate", "4000", "--time-scale", "0.05"])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .args(["--checkpoint-every", &CHECKPOINT_EVERY.to_string()])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null());
    command
}

/// Starts a run and SIGKILLs it after `after`; returns whether it was still running then.
fn run_and_kill(source: &Path, data: &Path, after: Duration) -> bool {
    let mut child = run_command(source, data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

/// Runs to the end; returns the exit code and the summary, followed by the error output
/// when the run failed (so a failing round says why).
fn run_to_end(source: &Path, data: &Path) -> (i32, String) {
    let out = run_command(source, data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let mut summary = String::from_utf8_lossy(&out.stdout).into_owned();
    if code != 0 {
        summary.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    (code, summary)
}

/// The number after `label` on the summary's line that starts with it.
fn summary_figure(summary: &str, label: &str) -> Option<u64> {
    summary
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn names() -> WorkflowNames {
    WorkflowNames::default()
}

/// Rows stored and distinct `rowid`s, read through a stack started on the data directory.
async fn stored_and_distinct(data: &Path) -> (u64, u64) {
    let stack = LocalStack::start(StackOptions::new(data), &names())
        .await
        .unwrap();
    let row = end_to_end::first_row(
        &stack,
        &names().datastore,
        "crash_counts",
        "SELECT count(*) AS stored, count(DISTINCT rowid) AS distinct_rows FROM bpm_blog_datastore",
    )
    .await
    .unwrap();
    stack.shutdown().await;
    (
        row["stored"].parse().unwrap(),
        row["distinct_rows"].parse().unwrap(),
    )
}

/// Makes the ledger record one row more for one object than the datastore holds: to the
/// validator, a row gone missing.
async fn lose_a_row(data: &Path) -> String {
    let stack = LocalStack::start(StackOptions::new(data), &names())
        .await
        .unwrap();
    let location = LedgerLocation {
        bucket: names().ledger_bucket,
        prefix: DEFAULT_LEDGER_PREFIX.to_owned(),
    };
    let ledger = Ledger::new(&stack.clients.s3, &location);
    let stored = ledger
        .entries(&names().bucket, "")
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.entry.state == EntryState::Ingested)
        .expect("an ingested object");
    let mut entry = stored.entry;
    entry.rows += 1;
    let written = ledger.write(&entry, Some(&stored.version)).await.unwrap();
    assert!(
        matches!(written, ingest::ledger::Write::Stored(_)),
        "{written:?}"
    );
    stack.shutdown().await;
    entry.key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_killed_at_random_and_run_again_lose_no_row() {
    let help = Command::new(binary())
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--allow-empty"),
        "{} is not this version of s3-ingest: rebuild it",
        binary().display()
    );
    let total = FILES * ROWS_PER_FILE;
    let seed = std::env::var("S3_INGEST_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut draws = Draws(seed);
    let mut figures = Vec::new();
    for round in 1..=ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let (source, data) = (dir.path().join("source"), dir.path().join("data"));
        write_source(&source);
        let mut kills = 0;
        for _ in 0..KILLS_PER_ROUND {
            // The stack starts in well under a second; a run over this data takes about 5 s.
            let after = draws.millis(400, 4_500);
            if run_and_kill(&source, &data, after) {
                kills += 1;
            }
        }
        let (code, summary) = run_to_end(&source, &data);
        assert_eq!(code, 0, "round {round} (seed {seed}):\n{summary}");
        assert!(summary.contains("PASSED"), "{summary}");
        let (stored, distinct) = stored_and_distinct(&data).await;
        let duplicates = stored - distinct;
        let bound = summary_figure(&summary, "duplicates")
            .and_then(|_| {
                summary
                    .lines()
                    .find(|l| l.contains("per crash or interrupt"))
                    .and_then(|l| l.split("at most ").nth(1))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .expect("the summary states the duplicates and their bound");
        eprintln!(
            "round {round} (seed {seed}): {kills} kills, {} rows lost, {duplicates} duplicates, bound {bound} per crash",
            total - distinct
        );
        figures.push((kills, total - distinct, duplicates, bound));
        assert_eq!(distinct, total, "round {round}: rows lost (seed {seed})");
        assert!(
            duplicates <= bound * kills,
            "round {round}: {duplicates} duplicates after {kills} kills, over the bound {bound} each (seed {seed})"
        );
        assert_eq!(
            summary_figure(&summary, "duplicates"),
            Some(duplicates),
            "the summary reports the duplicates stored:\n{summary}"
        );

        if round == ROUNDS {
            let key = lose_a_row(&data).await;
            let (code, summary) = run_to_end(&source, &data);
            assert_eq!(code, 1, "a missing row fails the run:\n{summary}");
            assert!(summary.contains("1 rows missing"), "{summary}");
            assert!(summary.contains(&key), "the object is named:\n{summary}");
        }
    }
    assert!(
        figures.iter().map(|f| f.0).sum::<u64>() > 0,
        "no run was killed mid-way (seed {seed}): {figures:?}"
    );
}

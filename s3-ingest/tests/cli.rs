//! The command line as a user meets it: completions, and refusals before anything starts.

use std::process::Command;

fn s3_ingest(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_s3-ingest"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

#[test]
fn completions_cover_every_subcommand_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let output = s3_ingest(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {output:?}");
        let script = String::from_utf8(output.stdout).unwrap();
        for subcommand in [
            "run", "serve", "start", "status", "redrive", "sample", "migrate",
        ] {
            assert!(script.contains(subcommand), "{shell} lacks {subcommand}");
        }
        // bash and zsh write flags as `--page-size`, fish as `-l page-size`.
        assert!(script.contains("page-size"), "{shell} lacks run's flags");
    }
}

#[test]
fn a_run_that_cannot_work_is_refused_with_one_clear_line_and_no_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let output = s3_ingest(&[
        "run",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--rate",
        "100",
        "--concurrency",
        "0",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: --rate 100 needs --concurrency"),
        "{stderr}"
    );
    assert!(!stderr.contains("Stack backtrace"), "{stderr}");
    assert!(!data_dir.exists(), "nothing started: {stderr}");
}

#[test]
fn run_with_json_output_prints_one_document_a_script_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let output = s3_ingest(&[
        "run",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--time-scale",
        "0.05",
        "--output",
        "json",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(summary["status"], "SUCCEEDED");
    assert_eq!(summary["exitCode"], 0);
    assert_eq!(summary["rows"], 56_570);
    assert_eq!(summary["objects"], 100);
    assert_eq!(summary["validation"]["passed"], true);
    assert_eq!(summary["failedItems"], serde_json::json!([]));
}

#[test]
fn a_run_whose_log_reader_goes_away_still_finishes() {
    use std::io::{BufRead as _, Read as _};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3-ingest"))
        .args(["run", "--data-dir", data_dir.to_str().unwrap()])
        .args(["--time-scale", "0.05"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // One log line read, then the pipe closed, as `s3-ingest run 2>&1 | head -1` does.
    let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    log.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "no log line at all");
    drop(log);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("the run hung after its log's reader went away");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut summary = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut summary)
        .unwrap();
    assert!(status.success(), "{status}: {summary}");
    assert!(summary.contains("PASSED"), "{summary}");
}

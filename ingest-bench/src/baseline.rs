//! The Python baseline (`ingest-bench/baseline/worker.py`): finding the interpreter, checking it has
//! boto3 with the iotanalytics client, running it against the local stack and reading its
//! result line.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The baseline script, in this package's folder.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/baseline/worker.py");

/// How to set up the baseline's interpreter, for messages.
pub const SETUP: &str = "python3 -m venv ingest-bench/.venv && ingest-bench/.venv/bin/pip install -r ingest-bench/baseline/requirements.txt";

/// What one baseline run reported.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRun {
    /// Rows sent.
    pub rows: u64,
    /// From GetObject to the last BatchPutMessage answer.
    pub seconds: f64,
    /// `rows / seconds`.
    pub rows_per_second: f64,
    /// The process's peak RSS (`ru_maxrss`), kilobytes.
    pub peak_rss_kb: u64,
    /// Messages the service refused (the classic worker does not re-send them).
    pub error_entries: u64,
}

/// Reads the JSON line the script prints last.
pub fn parse_result(stdout: &str) -> anyhow::Result<BaselineRun> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("the baseline printed no JSON line")?;
    let value: Value = serde_json::from_str(line).context("the baseline's JSON line")?;
    let number = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_f64)
            .with_context(|| format!("the baseline's result has no {name}"))
    };
    Ok(BaselineRun {
        rows: number("rows")? as u64,
        seconds: number("seconds")?,
        rows_per_second: number("rows_per_second")?,
        peak_rss_kb: number("peak_rss_kb")? as u64,
        error_entries: value
            .get("error_entries")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

/// The baseline's interpreter.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// The Python interpreter.
    pub python: PathBuf,
    /// `Python 3.x, boto3 1.40.40`, once checked.
    pub version: String,
}

impl Baseline {
    /// `--python`, else `ingest-bench/.venv/bin/python` if present, else `python3`.
    pub fn interpreter(python: Option<&Path>) -> PathBuf {
        if let Some(python) = python {
            return python.to_path_buf();
        }
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        if venv.exists() {
            venv
        } else {
            PathBuf::from("python3")
        }
    }

    /// Checks that the interpreter runs and has boto3 with the iotanalytics client.
    pub async fn check(python: PathBuf) -> anyhow::Result<Self> {
        let probe = "import sys, boto3, botocore.session as s; \
                     assert 'iotanalytics' in s.get_session().get_available_services(), \
                     'boto3 ' + boto3.__version__ + ' has no iotanalytics client'; \
                     print('Python', sys.version.split()[0] + ', boto3', boto3.__version__)";
        let output = tokio::process::Command::new(&python)
            .args(["-c", probe])
            .output()
            .await
            .with_context(|| format!("running {}", python.display()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!(
                "{} cannot run the baseline ({}); set it up with `{SETUP}`",
                python.display(),
                stderr.lines().last().unwrap_or("no message").trim()
            );
        }
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(Self { python, version })
    }

    /// Runs the script on one object with `env` (the stack's exports) and reads its result.
    pub async fn run(
        &self,
        env: &[(&'static str, String)],
        bucket: &str,
        key: &str,
        channel: &str,
    ) -> anyhow::Result<BaselineRun> {
        let output = tokio::process::Command::new(&self.python)
            .arg(SCRIPT)
            .args(["--bucket", bucket, "--key", key, "--channel", channel])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .await
            .with_context(|| format!("running {} {SCRIPT}", self.python.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            bail!(
                "the baseline failed on s3://{bucket}/{key} ({}): {}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            );
        }
        parse_result(&stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_is_read_after_other_output() {
        let out = "warning\n{\"rows\": 30000, \"seconds\": 2.5, \"rows_per_second\": 12000.0, \"peak_rss_kb\": 51234, \"error_entries\": 0}\n";
        let run = parse_result(out).unwrap();
        assert_eq!(run.rows, 30_000);
        assert_eq!(run.peak_rss_kb, 51_234);
        assert!((run.rows_per_second - 12_000.0).abs() < 1e-9);
        assert!(parse_result("nothing").is_err());
    }

    #[test]
    fn the_script_is_in_the_package() {
        assert!(Path::new(SCRIPT).exists());
    }
}

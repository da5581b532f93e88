//! Test data in the sample data set's shape, uploads to the embedded S3, and the worker's input.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use aws_sdk_s3::primitives::ByteStream;
use s3_ingest::sample;
use serde_json::json;

/// Bytes in a megabyte, as the figures count them (10^6).
pub const MB: u64 = 1_000_000;

/// Writes a CSV file of at least `bytes` bytes in the sample's shape (its header, then
/// `sample::row(0)`, `sample::row(1)`, ...); returns the number of data rows.
pub fn write_csv(path: &Path, bytes: u64) -> anyhow::Result<u64> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "{}", sample::HEADER)?;
    let mut written = sample::HEADER.len() as u64 + 1;
    let mut rows = 0;
    while written < bytes {
        let line = sample::row(rows);
        writeln!(out, "{line}")?;
        written += line.len() as u64 + 1;
        rows += 1;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(rows)
}

/// Uploads a file (streamed from disk) to `s3://bucket/key`.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    path: &Path,
) -> anyhow::Result<()> {
    let body = ByteStream::from_path(path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .send()
        .await
        .with_context(|| format!("uploading {} to s3://{bucket}/{key}", path.display()))?;
    Ok(())
}

/// Generates a CSV of `bytes` bytes under `staging`, uploads it and deletes the local copy;
/// returns its rows.
pub async fn put_generated(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    bytes: u64,
    staging: &Path,
) -> anyhow::Result<u64> {
    let path = staging.join(key.replace('/', "_"));
    let rows = write_csv(&path, bytes)?;
    upload(s3, bucket, key, &path).await?;
    let _ = std::fs::remove_file(&path);
    Ok(rows)
}

/// The worker's input for one whole object, unpaced, without a ledger: only the fields the
/// benchmark sets, the rest take the function's defaults.
pub fn worker_input(
    bucket: &str,
    key: &str,
    channel: &str,
) -> anyhow::Result<ingest::worker::WorkerInput> {
    ingest::handlers::parse_input(json!({
        "bucket": bucket,
        "key": key,
        "channelName": channel,
    }))
    .context("building the worker's input")
}

/// The deadline handed to the worker: far enough away that it never checkpoints.
pub fn far_deadline() -> std::time::SystemTime {
    std::time::SystemTime::now() + std::time::Duration::from_secs(24 * 3600)
}

/// The peak resident set size (`VmHWM`) in kilobytes from a `/proc/<pid>/status` text.
pub fn vm_hwm_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_csv_has_the_sample_shape_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        let rows = write_csv(&path, 10_000).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.len() >= 10_000 && text.len() < 10_100,
            "{}",
            text.len()
        );
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(sample::HEADER));
        assert_eq!(lines.next(), Some(sample::row(0).as_str()));
        assert_eq!(text.lines().count() as u64, rows + 1);
    }

    #[test]
    fn the_worker_input_is_unpaced_and_without_a_ledger() {
        let input = worker_input("b", "k.csv", "c").unwrap();
        assert_eq!(input.worker_rate(), None);
        assert!(input.ledger.is_none());
        assert!(input.checkpoint.is_none());
    }

    #[test]
    fn vm_hwm_is_read_from_proc_status() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    3456 kB\nVmRSS:\t 3000 kB\n";
        assert_eq!(vm_hwm_kb(status), Some(3456));
        assert_eq!(vm_hwm_kb("Name:\tx\n"), None);
    }
}

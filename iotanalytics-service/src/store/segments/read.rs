//! Reading a log's acknowledged data: Parquet where converted, JSON lines elsewhere.

use super::*;
use crate::store::arrow::conform;

pub(super) fn read_parquet(path: &Path, schema: &SchemaRef) -> Result<Vec<RecordBatch>, Error> {
    let file = File::open(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(BATCH_ROWS)
        .build()?;
    let mut out = Vec::new();
    for batch in reader {
        out.push(conform(&batch?, schema)?);
    }
    Ok(out)
}

fn read_jsonl_prefix(path: &Path, len: u64) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(len as usize);
    File::open(path)?.take(len).read_to_end(&mut data)?;
    Ok(data)
}

/// Every acknowledged message of a datastore as batches of `schema`.
pub fn read_all(log: &Log, schema: &SchemaRef) -> Result<Vec<RecordBatch>, Error> {
    let segments = log.state().segments.clone();
    let mut out = Vec::new();
    for seg in segments {
        if seg.parquet {
            match read_parquet(&log.parquet_path(seg.id), schema) {
                Ok(batches) => {
                    out.extend(batches);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Parquet copy unreadable, falling back to JSON lines")
                }
            }
        }
        match read_jsonl_prefix(&log.jsonl_path(seg.id), seg.len) {
            Ok(data) => out.extend(decode_jsonl(&data, schema)?),
            // A Parquet datastore's compactor may have just replaced the JSON lines.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.extend(read_parquet(&log.parquet_path(seg.id), schema)?)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// A channel's acknowledged lines from the segments whose write span may overlap
/// `[start, end)` (seconds since the epoch), oldest first. A segment's span runs from its
/// file's creation (or, where the file system does not record it, the previous segment's last
/// write) to its last write, so a range selects whole segments.
pub fn lines_between(
    log: &Log,
    start: Option<f64>,
    end: Option<f64>,
) -> Result<Vec<Vec<u8>>, Error> {
    let secs = |t: std::io::Result<std::time::SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    };
    let segments = log.state().segments.clone();
    let mut out = Vec::new();
    let mut previous_write: Option<f64> = None;
    for seg in &segments {
        if seg.len == 0 {
            continue;
        }
        let path = log.jsonl_path(seg.id);
        let meta = std::fs::metadata(&path)?;
        let last_write = secs(meta.modified());
        let first = secs(meta.created()).or(previous_write).unwrap_or(0.0);
        previous_write = last_write;
        let before = start.is_some_and(|s| last_write.is_some_and(|w| w < s));
        let after = end.is_some_and(|e| first >= e);
        if before || after {
            continue;
        }
        let data = read_jsonl_prefix(&path, seg.len)?;
        out.extend(
            data.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    Ok(out)
}

/// Up to `n` of the most recent acknowledged lines of a channel, newest last.
pub fn tail_lines(log: &Log, n: usize) -> Result<Vec<Vec<u8>>, Error> {
    const WINDOW: u64 = 4 << 20;
    let segments = log.state().segments.clone();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for seg in segments.iter().rev() {
        if out.len() >= n {
            break;
        }
        if seg.len == 0 {
            continue;
        }
        let start = seg.len.saturating_sub(WINDOW);
        let mut f = File::open(log.jsonl_path(seg.id))?;
        f.seek(SeekFrom::Start(start))?;
        let mut data = Vec::new();
        f.take(seg.len - start).read_to_end(&mut data)?;
        crate::store::prepend_last_lines(&mut out, &data, start > 0, n);
    }
    Ok(out)
}

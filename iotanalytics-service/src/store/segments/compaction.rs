//! The compaction thread: converts sealed datastore segments to Parquet when ingest pauses.

use super::*;

/// Converts sealed segments to Parquet, oldest first, when the store is quiet or the backlog
/// is full; returns when the store is gone.
pub(super) fn run_compactor(
    sealed: &mpsc::Receiver<(Arc<Log>, u64)>,
    clock: &AppendClock,
    durable: bool,
) {
    yield_to_ingest();
    let mut waiting = std::collections::VecDeque::new();
    loop {
        let next = if waiting.is_empty() {
            sealed.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            let quiet = clock.quiet_for();
            sealed.recv_timeout(COMPACT_WHEN_QUIET_FOR.saturating_sub(quiet))
        };
        match next {
            Ok(segment) => waiting.push_back(segment),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if clock.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        while !clock.stopping.load(std::sync::atomic::Ordering::Relaxed)
            && (waiting.len() > COMPACT_BACKLOG
                || (!waiting.is_empty() && clock.quiet_for() >= COMPACT_WHEN_QUIET_FOR))
        {
            let Some((log, id)) = waiting.pop_front() else {
                break;
            };
            if let Err(e) = compact(&log, id, durable) {
                // A conversion still running when the store shut down may find its files gone
                // (a test or benchmark removing the data directory); the segment stays JSON
                // Lines and is queued again at the next start, so nothing is lost.
                if clock.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                    tracing::debug!(datastore = %log.name, segment = id, error = %e, "segment compaction abandoned at shutdown");
                } else {
                    tracing::warn!(datastore = %log.name, segment = id, error = %e, "segment compaction failed");
                }
            }
        }
    }
}

/// Converts a sealed segment to Parquet.
fn compact(log: &Arc<Log>, id: u64, durable: bool) -> Result<(), Error> {
    let schema = log.arrow_schema();
    let data = match fs::read(log.jsonl_path(id)) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let batches = decode_jsonl(&data, &schema)?;
    let target = log.parquet_path(id);
    let tmp = target.with_extension("parquet.tmp");
    {
        let file = File::create(&tmp)?;
        let mut writer = ArrowWriter::try_new(file, schema.clone(), None)?;
        for b in &batches {
            writer.write(b)?;
        }
        let file = writer.into_inner()?;
        if durable {
            file.sync_all()?;
        }
    }
    fs::rename(&tmp, &target)?;
    if durable && let Some(parent) = target.parent() {
        sync_dir(parent)?;
    }
    let replaces_jsonl = matches!(log.format, Format::Parquet(_));
    {
        let mut st = log.state();
        if let Some(seg) = st.segments.iter_mut().find(|s| s.id == id) {
            seg.parquet = true;
        }
    }
    if replaces_jsonl {
        fs::remove_file(log.jsonl_path(id))?;
        if durable {
            sync_dir(&log.dir)?;
        }
    }
    tracing::debug!(datastore = %log.name, segment = id, rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>(), "segment converted to Parquet");
    Ok(())
}

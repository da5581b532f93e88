//! Rebuilding a log's state from its directory after a start or a crash.

use super::*;

/// Rebuilds a log's state from its directory, repairing a torn last line.
pub(super) fn recover(
    kind: Kind,
    name: &str,
    dir: PathBuf,
    format: Format,
    durable: bool,
) -> Result<Log, Error> {
    fs::create_dir_all(&dir)?;
    if format == Format::Json && kind == Kind::Datastore {
        fs::create_dir_all(dir.join("cache"))?;
    }
    let log = Log {
        kind,
        name: name.to_owned(),
        dir: dir.clone(),
        format,
        state: Mutex::new(LogState::default()),
    };
    let mut jsonl = HashSet::new();
    let mut parquet = HashSet::new();
    let mut newest_mtime = None;
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = parse_segment_name(&file_name, ".jsonl") {
            jsonl.insert(id);
        } else if let Some(id) = parse_segment_name(&file_name, ".parquet") {
            parquet.insert(id);
        } else {
            continue;
        }
        let mtime = entry.metadata()?.modified().ok();
        newest_mtime = newest_mtime.max(mtime);
    }
    if log.format == Format::Json && kind == Kind::Datastore {
        for entry in fs::read_dir(dir.join("cache"))? {
            let file_name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(id) = parse_segment_name(&file_name, ".parquet") {
                parquet.insert(id);
            }
        }
    }
    let mut ids: Vec<u64> = jsonl.union(&parquet).copied().collect();
    ids.sort_unstable();
    let mut state = LogState::default();
    if let Ok(text) = fs::read(dir.join("schema.json")) {
        let attrs: Vec<(String, AttrType)> = serde_json::from_slice(&text)?;
        state.merge_attrs(&attrs);
    }
    for &id in &ids {
        let has_parquet = parquet.contains(&id);
        let mut len = 0;
        if jsonl.contains(&id) {
            if has_parquet && matches!(log.format, Format::Parquet(_)) {
                // The conversion finished but the JSON lines were not yet removed.
                fs::remove_file(log.jsonl_path(id))?;
            } else {
                len = fs::metadata(log.jsonl_path(id))?.len();
            }
        } else if has_parquet {
            state.total_bytes += fs::metadata(log.parquet_path(id))?.len();
        }
        state.total_bytes += len;
        state.segments.push(Segment {
            id,
            len,
            records: 0,
            sealed: true,
            parquet: has_parquet,
        });
    }
    let reuse_last = matches!(state.segments.last(), Some(s) if !(s.parquet && matches!(log.format, Format::Parquet(_))));
    if reuse_last {
        let last = state.segments.last_mut().expect("checked above");
        let path = log.jsonl_path(last.id);
        let mut data = Vec::new();
        OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .open(&path)?
            .read_to_end(&mut data)?;
        let keep = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if keep != data.len() {
            tracing::warn!(log = %name, dropped = data.len() - keep, "discarding a torn last line left by a crash");
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(keep as u64)?;
            if durable {
                f.sync_all()?;
            }
            state.total_bytes -= (data.len() - keep) as u64;
        }
        last.len = keep as u64;
        last.records = data[..keep].iter().filter(|b| **b == b'\n').count() as u64;
        last.sealed = false;
        last.parquet = false;
    } else {
        let id = ids.last().map_or(1, |i| i + 1);
        File::create(log.jsonl_path(id))?;
        if durable {
            sync_dir(&dir)?;
        }
        state.segments.push(Segment {
            id,
            len: 0,
            records: 0,
            sealed: false,
            parquet: false,
        });
    }
    state.last_arrival = newest_mtime
        .filter(|_| state.total_bytes > 0)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    *log.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    Ok(log)
}

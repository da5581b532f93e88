//! The writer thread: appends to the active segments, seals them, and syncs each group of
//! queued batches at once before acknowledging it (group commit).

use super::sync::SyncHelpers;
use super::*;

struct Active {
    /// Shared with the sync helpers while a commit waits for them.
    file: Arc<File>,
    id: u64,
    len: u64,
    records: u64,
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    files: HashMap<(Kind, String), Active>,
    syncs: SyncHelpers,
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            files: HashMap::new(),
            syncs: SyncHelpers::new(),
        }
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        loop {
            let first = match rx.recv_timeout(IDLE_SEAL_AFTER) {
                Ok(cmd) => cmd,
                Err(RecvTimeoutError::Timeout) => {
                    self.seal_idle();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut cmds = vec![first];
            while cmds.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(cmd) => cmds.push(cmd),
                    Err(_) => break,
                }
            }
            if self.process(cmds) {
                break;
            }
        }
        self.seal_idle();
        tracing::debug!("storage writer stopped");
    }

    /// Runs one group commit; returns true when asked to stop.
    fn process(&mut self, cmds: Vec<Cmd>) -> bool {
        let mut acks = Vec::new();
        let mut dirty: Vec<Arc<Log>> = Vec::new();
        let mut schema_dirty: Vec<Arc<Log>> = Vec::new();
        let mut stop = false;
        for cmd in cmds {
            match cmd {
                Cmd::Append { writes, ack } => {
                    let mut result = Ok(());
                    for w in &writes {
                        if let Err(e) = self.write(w, &mut dirty, &mut schema_dirty) {
                            result = Err(e);
                            break;
                        }
                    }
                    match result {
                        Ok(()) => acks.push(ack),
                        Err(e) => {
                            let _ = ack.send(Err(e));
                        }
                    }
                }
                Cmd::Drop { kind, name, ack } => {
                    let _ = ack.send(self.drop_log(kind, &name));
                }
                Cmd::Expire {
                    kind,
                    name,
                    cutoff,
                    ack,
                } => {
                    let _ = ack.send(self.expire(kind, &name, cutoff));
                }
                Cmd::Shutdown => stop = true,
            }
        }
        let result = self.commit(&dirty, &schema_dirty);
        match result {
            Ok(()) => {
                if !dirty.is_empty() {
                    self.shared.last_append.tick();
                }
                let now = now_secs();
                for log in &dirty {
                    let key = (log.kind, log.name.clone());
                    if let Some(active) = self.files.get(&key) {
                        let mut st = log.state();
                        let mut added = 0;
                        if let Some(seg) = st.segments.iter_mut().rev().find(|s| s.id == active.id)
                        {
                            added = active.len.saturating_sub(seg.len);
                            seg.len = active.len;
                            seg.records = active.records;
                        }
                        st.total_bytes += added;
                        st.last_arrival = Some(now);
                    }
                }
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                let message = e.to_string();
                for log in &dirty {
                    // Forget the handle so the next write reopens at the acknowledged length.
                    self.files.remove(&(log.kind, log.name.clone()));
                }
                for ack in acks {
                    let _ = ack.send(Err(Error::InternalFailure(message.clone())));
                }
            }
        }
        stop
    }

    fn commit(&mut self, dirty: &[Arc<Log>], schema_dirty: &[Arc<Log>]) -> Result<(), Error> {
        // The schema goes first: after a crash a column without data is harmless, data without
        // its column is not.
        for log in schema_dirty {
            let attrs = serde_json::to_vec(&log.state().schema)?;
            write_atomic(&log.dir.join("schema.json"), &attrs, self.shared.durable)?;
        }
        if self.shared.durable {
            let files: Vec<Arc<File>> = dirty
                .iter()
                .filter_map(|log| self.files.get(&(log.kind, log.name.clone())))
                .map(|a| a.file.clone())
                .collect();
            self.syncs.sync_data(&files)?;
        }
        Ok(())
    }

    fn active(&mut self, log: &Arc<Log>) -> Result<&mut Active, Error> {
        let key = (log.kind, log.name.clone());
        if !self.files.contains_key(&key) {
            let (id, len, records) = {
                let st = log.state();
                let seg = st.segments.last().ok_or_else(|| {
                    Error::InternalFailure(format!("log {} has no segment", log.name))
                })?;
                (seg.id, seg.len, seg.records)
            };
            let path = log.jsonl_path(id);
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            // Drop anything past the acknowledged length (left by a failed commit).
            file.set_len(len)?;
            let mut file = file;
            file.seek(SeekFrom::End(0))?;
            self.files.insert(
                key.clone(),
                Active {
                    file: Arc::new(file),
                    id,
                    len,
                    records,
                },
            );
        }
        Ok(self.files.get_mut(&key).expect("inserted above"))
    }

    fn write(
        &mut self,
        w: &Write,
        dirty: &mut Vec<Arc<Log>>,
        schema_dirty: &mut Vec<Arc<Log>>,
    ) -> Result<(), Error> {
        let log = &w.log;
        let full = {
            let a = self.active(log)?;
            let max_records = if log.kind == Kind::Datastore {
                SEGMENT_MAX_RECORDS
            } else {
                u64::MAX
            };
            a.records > 0 && (a.records >= max_records || a.len >= SEGMENT_MAX_BYTES)
        };
        if full {
            self.seal(log)?;
        }
        if !w.attrs.is_empty()
            && log.kind == Kind::Datastore
            && log.state().merge_attrs(&w.attrs)
            && !schema_dirty.iter().any(|l| Arc::ptr_eq(l, log))
        {
            schema_dirty.push(log.clone());
        }
        let a = self.active(log)?;
        (&*a.file).write_all(&w.data)?;
        a.len += w.data.len() as u64;
        a.records += w.records;
        if !dirty.iter().any(|l| Arc::ptr_eq(l, log)) {
            dirty.push(log.clone());
        }
        Ok(())
    }

    /// Closes the active segment (synced) and starts the next one.
    fn seal(&mut self, log: &Arc<Log>) -> Result<(), Error> {
        let key = (log.kind, log.name.clone());
        let Some(active) = self.files.remove(&key) else {
            return Ok(());
        };
        active.file.sync_all()?;
        let next = active.id + 1;
        File::create(log.jsonl_path(next))?;
        sync_dir(&log.dir)?;
        {
            let mut st = log.state();
            let mut added = 0;
            if let Some(seg) = st.segments.iter_mut().rev().find(|s| s.id == active.id) {
                added = active.len.saturating_sub(seg.len);
                seg.len = active.len;
                seg.records = active.records;
                seg.sealed = true;
            }
            st.total_bytes += added;
            st.segments.push(Segment {
                id: next,
                len: 0,
                records: 0,
                sealed: false,
                parquet: false,
            });
        }
        if log.kind == Kind::Datastore {
            let _ = self
                .shared
                .compact_tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send((log.clone(), active.id));
        }
        Ok(())
    }

    fn seal_idle(&mut self) {
        let logs: Vec<Arc<Log>> = self
            .shared
            .logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|l| l.kind == Kind::Datastore)
            .cloned()
            .collect();
        for log in logs {
            let Some(active) = self.files.get(&(log.kind, log.name.clone())) else {
                continue;
            };
            let min = match log.format {
                Format::Json => IDLE_SEAL_MIN_RECORDS_JSON,
                Format::Parquet(_) => 1,
            };
            if active.records >= min
                && let Err(e) = self.seal(&log)
            {
                tracing::warn!(datastore = %log.name, error = %e, "sealing an idle segment failed");
            }
        }
    }

    /// Removes the segments last written before `cutoff`. Runs on the writer thread, so no
    /// append is in flight; the active segment is sealed first when it is that old.
    fn expire(&mut self, kind: Kind, name: &str, cutoff: SystemTime) -> Result<u64, Error> {
        let Some(log) = self
            .shared
            .logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(kind, name.to_owned()))
            .cloned()
        else {
            return Ok(0);
        };
        let written_before = |path: &std::path::Path| {
            fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff)
        };
        let active = log.state().segments.last().map(|s| (s.id, s.len));
        if let Some((id, len)) = active
            && len > 0
            && written_before(&log.jsonl_path(id))
        {
            self.active(&log)?;
            self.seal(&log)?;
        }
        let expired: Vec<Segment> = {
            let mut st = log.state();
            let (gone, kept): (Vec<Segment>, Vec<Segment>) =
                std::mem::take(&mut st.segments).into_iter().partition(|s| {
                    s.sealed && {
                        let jsonl = log.jsonl_path(s.id);
                        if jsonl.exists() {
                            written_before(&jsonl)
                        } else {
                            written_before(&log.parquet_path(s.id))
                        }
                    }
                });
            st.segments = kept;
            st.total_bytes = st
                .total_bytes
                .saturating_sub(gone.iter().map(|s| s.len).sum());
            gone
        };
        for seg in &expired {
            for path in [log.jsonl_path(seg.id), log.parquet_path(seg.id)] {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if !expired.is_empty() {
            sync_dir(&log.dir)?;
            tracing::info!(%name, segments = expired.len(), "expired segments removed");
        }
        Ok(expired.len() as u64)
    }

    fn drop_log(&mut self, kind: Kind, name: &str) -> Result<(), Error> {
        self.files.remove(&(kind, name.to_owned()));
        let removed = self
            .shared
            .logs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(kind, name.to_owned()));
        let dir = removed.map_or_else(
            || self.shared.root.join(kind.dir()).join(name),
            |l| l.dir.clone(),
        );
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

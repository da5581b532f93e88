//! Helper threads that sync a group commit's files side by side, kept for the writer's life.
//!
//! A sync waits for the device, so the files of one group (a channel and its datastores) are
//! synced in parallel and the group waits about once. The helpers are started once and reused:
//! a thread started per commit costs more than the sync it saves on a fast disk (a new stack
//! and a new allocator heap each time).

use std::fs::File;
use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Most helper threads; a group with more files queues them on these.
const MAX_HELPERS: usize = 4;

type Job = (Arc<File>, mpsc::Sender<io::Result<()>>);

/// A small pool of threads that run `sync_data` for the writer.
pub(super) struct SyncHelpers {
    jobs: Option<mpsc::Sender<Job>>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    threads: Vec<JoinHandle<()>>,
}

impl SyncHelpers {
    pub(super) fn new() -> Self {
        let (jobs, queue) = mpsc::channel();
        Self {
            jobs: Some(jobs),
            queue: Arc::new(Mutex::new(queue)),
            threads: Vec::new(),
        }
    }

    /// Syncs the data of every file: the first on the calling thread, the others on the
    /// helpers, started as first needed. Returns the first error, after every sync has ended.
    pub(super) fn sync_data(&mut self, files: &[Arc<File>]) -> io::Result<()> {
        let Some((first, others)) = files.split_first() else {
            return Ok(());
        };
        self.start(others.len());
        let (done, results) = mpsc::channel();
        let mut queued = 0;
        let mut result = Ok(());
        for file in others {
            let sent = !self.threads.is_empty()
                && self
                    .jobs
                    .as_ref()
                    .is_some_and(|jobs| jobs.send((file.clone(), done.clone())).is_ok());
            if sent {
                queued += 1;
            } else {
                // No helper could be started: sync here rather than not at all.
                result = result.and(file.sync_data());
            }
        }
        drop(done);
        result = result.and(first.sync_data());
        for _ in 0..queued {
            result = result.and(
                results
                    .recv()
                    .unwrap_or_else(|_| Err(io::Error::other("a sync helper thread stopped"))),
            );
        }
        result
    }

    /// Starts helpers until there are `wanted` (at most [`MAX_HELPERS`]).
    fn start(&mut self, wanted: usize) {
        while self.threads.len() < wanted.min(MAX_HELPERS) {
            let queue = self.queue.clone();
            let spawned = std::thread::Builder::new()
                .name("iotanalytics-sync".into())
                .spawn(move || run_helper(&queue));
            match spawned {
                Ok(handle) => self.threads.push(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "could not start a sync helper thread; syncing on the writer");
                    return;
                }
            }
        }
    }
}

impl Drop for SyncHelpers {
    fn drop(&mut self) {
        self.jobs = None;
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

fn run_helper(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((file, done)) = job else {
            return;
        };
        let _ = done.send(file.sync_data());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(n: usize) -> (tempfile::TempDir, Vec<Arc<File>>) {
        let dir = tempfile::tempdir().unwrap();
        let files = (0..n)
            .map(|i| Arc::new(File::create(dir.path().join(format!("f{i}"))).unwrap()))
            .collect();
        (dir, files)
    }

    #[test]
    fn helpers_are_started_once_and_reused_across_commits() {
        let mut helpers = SyncHelpers::new();
        let (_dir, files) = files(3);
        for _ in 0..20 {
            helpers.sync_data(&files).unwrap();
        }
        assert_eq!(helpers.threads.len(), 2);
    }

    #[test]
    fn more_files_than_helpers_are_all_synced() {
        let mut helpers = SyncHelpers::new();
        let (_dir, files) = files(MAX_HELPERS + 4);
        helpers.sync_data(&files).unwrap();
        assert_eq!(helpers.threads.len(), MAX_HELPERS);
        helpers.sync_data(&[]).unwrap();
    }

    #[test]
    fn a_failed_sync_is_reported() {
        let mut helpers = SyncHelpers::new();
        let dir = tempfile::tempdir().unwrap();
        let good = Arc::new(File::create(dir.path().join("good")).unwrap());
        // fsync on a pipe fails (EINVAL), wherever it is in the group.
        let (reader, _writer) = std::io::pipe().unwrap();
        let pipe = Arc::new(File::from(std::os::fd::OwnedFd::from(reader)));
        assert!(helpers.sync_data(&[good.clone(), pipe.clone()]).is_err());
        assert!(helpers.sync_data(&[pipe, good]).is_err());
    }
}

//! Writes that finish whole or leave the object as it was. s3s-fs replaces an object as three
//! files, one after another (the body, then its attributes, then its ETag and checksums), and
//! checks the body's checksums only after the body is in place. A process killed in between,
//! or a write refused on a bad checksum, would leave the new body with the old ETag and
//! checksums: readers then fail the checksum, and a conditional write on the old ETag would
//! wrongly succeed.
//!
//! So before a write replaces an object, its files are hard-linked aside and a marker names
//! them; a write that fails puts them back, a write that succeeds removes the marker (the
//! moment it counts) and then the links. A write that creates an object needs none of this
//! on disk (each state s3s-fs passes through is a whole object: a body alone is served with
//! its MD5 as ETag); if it fails, what it wrote is removed. When the endpoint starts, markers
//! left by an endpoint that is gone are rolled back the same way: a write that never
//! answered its client leaves no trace.
//! Each endpoint holds a lock on a file of its own while it runs; the kernel releases it when
//! the process ends, however it ends, so a lock that can be taken marks an endpoint gone
//! (process ids are reused and cannot tell).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The start of every marker's and backup's file name in the root. No bucket starts with `.`.
const PREFIX: &str = ".pending-write-";

/// Marker files end with this; the backups beside one end with `.0`, `.1` and `.2`.
const MARKER_SUFFIX: &str = ".marker";

/// The file each endpoint holds locked while it runs ends with this.
const LOCK_SUFFIX: &str = ".lock";

/// Starts and ends the writes of one endpoint's root.
#[derive(Debug)]
pub(crate) struct Journal {
    root: PathBuf,
    /// This endpoint's part of every file name: process id and start time.
    id: String,
    /// Held locked for as long as the endpoint runs.
    _lock: std::fs::File,
    next: AtomicU64,
}

/// A write under way: what to put back if it fails. Dropped unfinished (the request was
/// cancelled part-way), it puts the object back as well.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    /// The marker naming the saved files; none when the object did not exist.
    marker: Option<PathBuf>,
    files: [PathBuf; 3],
    existed: [bool; 3],
    settled: bool,
}

/// The three files s3s-fs keeps for the object stored at `stored` in `bucket`: its body, its
/// attributes and its ETag with checksums (named as s3s-fs 0.14 names them; a test below
/// fails if a new version names them otherwise).
pub(crate) fn object_files(root: &Path, bucket: &str, stored: &str) -> [PathBuf; 3] {
    let (b, k) = (
        URL_SAFE_NO_PAD.encode(bucket),
        URL_SAFE_NO_PAD.encode(stored),
    );
    [
        root.join(bucket).join(stored),
        root.join(format!(".bucket-{b}.object-{k}.metadata.json")),
        root.join(format!(".bucket-{b}.object-{k}.internal.json")),
    ]
}

fn backup(marker: &Path, file: usize) -> PathBuf {
    marker.with_extension(file.to_string())
}

/// Removes `path`; one that is not there is already as asked.
pub(crate) fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Puts back the files a marker saved: each backup over its file, and a file that did not
/// exist before the write removed. Safe to repeat after a crash part-way.
fn roll_back(
    marker: Option<&Path>,
    files: &[PathBuf; 3],
    existed: [bool; 3],
) -> std::io::Result<()> {
    for (i, file) in files.iter().enumerate() {
        let saved = marker.map(|m| backup(m, i));
        if let Some(saved) = saved.filter(|s| s.exists()) {
            std::fs::rename(&saved, file)?;
            // Renaming a link onto the same file leaves both names (POSIX).
            remove_if_there(&saved)?;
        } else if !existed[i] {
            remove_if_there(file)?;
        }
        // Otherwise the write had not started: the file is still the one it was.
    }
    marker.map_or(Ok(()), remove_if_there)
}

/// Whether the endpoint `id` of `root` is still running (and so may still be writing).
fn running(root: &Path, id: &str) -> std::io::Result<bool> {
    let path = root.join(format!("{PREFIX}{id}{LOCK_SUFFIX}"));
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

impl Journal {
    /// The journal of `root`, marked as running; call [`Journal::recover`] before serving.
    pub(crate) fn new(root: PathBuf) -> std::io::Result<Self> {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let id = format!("{}_{started}", std::process::id());
        let lock = std::fs::File::create(root.join(format!("{PREFIX}{id}{LOCK_SUFFIX}")))?;
        lock.lock()?;
        Ok(Self {
            root,
            id,
            _lock: lock,
            next: AtomicU64::new(0),
        })
    }

    /// Rolls back the writes of endpoints that ended during them and clears what they left;
    /// returns how many writes were rolled back.
    pub(crate) fn recover(&self) -> std::io::Result<usize> {
        let mut rolled_back = 0;
        let mut gone = std::collections::HashMap::<String, bool>::new();
        let mut leftovers = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
                continue;
            };
            let id = rest.split(['-', '.']).next().unwrap_or_default().to_owned();
            if id == self.id {
                continue;
            }
            let is_gone = match gone.get(&id) {
                Some(&known) => known,
                None => {
                    let known = !running(&self.root, &id)?;
                    gone.insert(id, known);
                    known
                }
            };
            if !is_gone {
                continue;
            }
            let path = entry.path();
            if rest.ends_with(MARKER_SUFFIX) {
                let text = std::fs::read_to_string(&path)?;
                // A marker cut short was being written: its write had not started.
                let lines: Vec<&str> = text.lines().collect();
                if let [bucket, stored, flags] = lines[..]
                    && text.ends_with('\n')
                    && flags.len() == 3
                {
                    let files = object_files(&self.root, bucket, stored);
                    let mut existed = [false; 3];
                    for (i, flag) in flags.bytes().enumerate() {
                        existed[i] = flag == b'1';
                    }
                    roll_back(Some(&path), &files, existed)?;
                    tracing::warn!(
                        bucket,
                        stored,
                        "rolled back a write a stopped process left half done"
                    );
                    rolled_back += 1;
                }
            }
            leftovers.push(path);
        }
        for path in leftovers {
            remove_if_there(&path)?;
        }
        Ok(rolled_back)
    }

    /// Saves the files of `bucket`/`stored` before a write replaces them. Call under the key's
    /// write lock.
    pub(crate) fn begin(&self, bucket: &str, stored: &str) -> std::io::Result<PendingWrite> {
        let files = object_files(&self.root, bucket, stored);
        let existed = files.each_ref().map(|f| f.exists());
        if existed == [false; 3] {
            return Ok(PendingWrite {
                marker: None,
                files,
                existed,
                settled: false,
            });
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let marker = self
            .root
            .join(format!("{PREFIX}{}-{n}{MARKER_SUFFIX}", self.id));
        let flags: String = existed.iter().map(|&e| if e { '1' } else { '0' }).collect();
        std::fs::write(&marker, format!("{bucket}\n{stored}\n{flags}\n"))?;
        let pending = PendingWrite {
            marker: Some(marker.clone()),
            files,
            existed,
            settled: false,
        };
        for (i, file) in pending.files.iter().enumerate() {
            if pending.existed[i]
                && let Err(e) = std::fs::hard_link(file, backup(&marker, i))
            {
                let _ = pending.abandon();
                return Err(e);
            }
        }
        Ok(pending)
    }
}

impl PendingWrite {
    /// The write succeeded: the marker goes first, so a crash now keeps the new object.
    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        self.settled = true;
        if let Some(marker) = &self.marker {
            remove_if_there(marker)?;
            for i in 0..3 {
                remove_if_there(&backup(marker, i))?;
            }
        }
        Ok(())
    }

    /// The write failed: the object is put back as it was.
    pub(crate) fn abandon(mut self) -> std::io::Result<()> {
        self.settled = true;
        roll_back(self.marker.as_deref(), &self.files, self.existed)
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if !self.settled
            && let Err(e) = roll_back(self.marker.as_deref(), &self.files, self.existed)
        {
            tracing::error!(object = %self.files[0].display(), error = %e, "could not put an object back after a cancelled write");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replaces `path` as s3s-fs does: a new file renamed over the old one.
    fn replace(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let new = path.with_extension("new");
        std::fs::write(&new, content).unwrap();
        std::fs::rename(new, path).unwrap();
    }

    fn write_object(root: &Path, bucket: &str, stored: &str, content: &str) {
        for file in object_files(root, bucket, stored) {
            replace(&file, content);
        }
    }

    fn contents(root: &Path, bucket: &str, stored: &str) -> Vec<Option<String>> {
        object_files(root, bucket, stored)
            .iter()
            .map(|f| std::fs::read_to_string(f).ok())
            .collect()
    }

    #[test]
    fn a_failed_write_puts_the_old_object_back() {
        let root = tempfile::tempdir().unwrap();
        write_object(root.path(), "b", "k.json", "old");
        let journal = Journal::new(root.path().to_owned()).unwrap();
        let pending = journal.begin("b", "k.json").unwrap();
        // Only the body is replaced, as when s3s-fs refuses a bad checksum.
        replace(&root.path().join("b/k.json"), "new");
        pending.abandon().unwrap();
        assert_eq!(
            contents(root.path(), "b", "k.json"),
            vec![Some("old".into()); 3]
        );
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            3 + 1,
            "the object and the lock"
        );
    }

    #[test]
    fn a_failed_write_of_a_new_object_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("b")).unwrap();
        let journal = Journal::new(root.path().to_owned()).unwrap();
        let pending = journal.begin("b", "new").unwrap();
        replace(&root.path().join("b/new"), "body");
        replace(&object_files(root.path(), "b", "new")[1], "attributes");
        pending.abandon().unwrap();
        assert_eq!(contents(root.path(), "b", "new"), vec![None; 3]);
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            2,
            "the bucket and the lock"
        );
    }

    #[test]
    fn a_write_dropped_part_way_puts_the_old_object_back() {
        let root = tempfile::tempdir().unwrap();
        write_object(root.path(), "b", "k", "old");
        let journal = Journal::new(root.path().to_owned()).unwrap();
        let pending = journal.begin("b", "k").unwrap();
        replace(&root.path().join("b/k"), "new");
        drop(pending);
        assert_eq!(contents(root.path(), "b", "k"), vec![Some("old".into()); 3]);
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            3 + 1,
            "the object and the lock"
        );
    }

    #[test]
    fn a_finished_write_keeps_the_new_object_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        write_object(root.path(), "b", "k", "old");
        let journal = Journal::new(root.path().to_owned()).unwrap();
        let pending = journal.begin("b", "k").unwrap();
        write_object(root.path(), "b", "k", "new");
        pending.finish().unwrap();
        assert_eq!(journal.recover().unwrap(), 0);
        assert_eq!(contents(root.path(), "b", "k"), vec![Some("new".into()); 3]);
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            3 + 1,
            "the object and the lock"
        );
    }

    #[test]
    fn a_write_a_stopped_endpoint_left_half_done_is_rolled_back_at_start() {
        let root = tempfile::tempdir().unwrap();
        write_object(root.path(), "b", "dir/k", "old");
        let stopped = Journal::new(root.path().to_owned()).unwrap();
        let pending = stopped.begin("b", "dir/k").unwrap();
        replace(&root.path().join("b/dir/k"), "new");
        std::mem::forget(pending);
        // A new object, written only as far as its body.
        let fresh = stopped.begin("b", "other").unwrap();
        replace(&root.path().join("b/other"), "new");
        std::mem::forget(fresh);
        // Its lock goes as it would when its process ends.
        drop(stopped);

        let journal = Journal::new(root.path().to_owned()).unwrap();
        assert_eq!(journal.recover().unwrap(), 1);
        assert_eq!(
            contents(root.path(), "b", "dir/k"),
            vec![Some("old".into()); 3]
        );
        // A body alone is a whole object (its ETag is its MD5), and the write may have happened.
        assert_eq!(
            contents(root.path(), "b", "other"),
            vec![Some("new".into()), None, None]
        );
        // The object's three, and the running endpoint's lock.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 3 + 1);
    }

    #[test]
    fn a_marker_cut_short_and_a_running_endpoint_s_writes_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        write_object(root.path(), "b", "k", "old");
        std::fs::write(
            root.path().join(format!("{PREFIX}1_2-7{MARKER_SUFFIX}")),
            "b\nk",
        )
        .unwrap();
        let running = Journal::new(root.path().to_owned()).unwrap();
        let pending = running.begin("b", "k").unwrap();
        replace(&root.path().join("b/k"), "new");
        let later = Journal::new(root.path().to_owned()).unwrap();
        assert_eq!(later.recover().unwrap(), 0);
        // The cut-short marker is gone; the running one's marker, backups and lock stay.
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            3 + 1 + 3 + 1 + 1
        );
        pending.abandon().unwrap();
        assert_eq!(contents(root.path(), "b", "k"), vec![Some("old".into()); 3]);
    }

    #[tokio::test]
    async fn the_files_saved_are_the_ones_s3s_fs_writes() {
        use s3s::S3 as _;
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("b")).unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let input = s3s::dto::PutObjectInput::builder()
            .bucket("b".to_owned())
            .key("dir/k".to_owned())
            .content_type(Some("text/csv".parse().unwrap()))
            .body(Some(s3s::dto::StreamingBlob::from(s3s::Body::from(
                "a,b\n".to_owned(),
            ))))
            .build()
            .unwrap();
        fs.put_object(crate::store::bare(input)).await.unwrap();
        for file in object_files(root.path(), "b", "dir/k") {
            assert!(file.is_file(), "s3s-fs wrote no {}", file.display());
        }
    }
}

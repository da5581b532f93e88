//! Where the service keeps its catalog, messages and dataset results: a local directory
//! ([`fs::FsBackend`], the default of `s3-ingest serve`) or a prefix of an S3 bucket
//! ([`s3::S3Backend`], what the service uses on AWS). Both answer every request the same way;
//! the request handlers see only [`Backend`].

pub mod arrow;
pub mod fs;
pub mod s3;
pub mod segments;

use std::path::Path;

use crate::catalog::{DatastoreDef, Resource};
use crate::error::Error;
use crate::validate::AttrType;

pub use segments::{Format, Kind};

/// Size and recency of a channel's or datastore's stored messages.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DataStats {
    /// Stored bytes (JSON lines).
    pub size_bytes: u64,
    /// When the newest message arrived, seconds since the epoch.
    pub last_arrival: Option<f64>,
}

/// One accepted `BatchPutMessage`: the channel's raw payloads and what each pipeline made of
/// them for its datastore, as newline-terminated JSON objects.
#[derive(Debug, Default)]
pub struct Append {
    /// The channel the messages were sent to.
    pub channel: String,
    /// The raw payloads, one per line.
    pub channel_lines: Vec<u8>,
    /// Lines in `channel_lines`.
    pub channel_records: u64,
    /// Each datastore's share.
    pub datastores: Vec<DatastoreAppend>,
}

/// Messages one pipeline routes to its datastore.
#[derive(Debug, Default)]
pub struct DatastoreAppend {
    /// Datastore name.
    pub datastore: String,
    /// Processed messages, one JSON object per line.
    pub lines: Vec<u8>,
    /// Lines in `lines`.
    pub records: u64,
    /// Attributes present (lower-cased) and their kinds, for the datastore's schema.
    pub attrs: Vec<(String, AttrType)>,
}

/// Puts the last lines of `data` (newline-separated, blank lines skipped, the first one left
/// out when `skip_first` because it may be cut) in front of `newest`, until it holds `n`.
pub(crate) fn prepend_last_lines(
    newest: &mut Vec<Vec<u8>>,
    data: &[u8],
    skip_first: bool,
    n: usize,
) {
    let mut lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if skip_first && !lines.is_empty() {
        lines.remove(0);
    }
    let take = n.saturating_sub(newest.len()).min(lines.len());
    let mut chunk: Vec<Vec<u8>> = lines[lines.len() - take..]
        .iter()
        .map(|l| l.to_vec())
        .collect();
    chunk.append(newest);
    *newest = chunk;
}

/// The storage backend of a running service.
pub enum Backend {
    /// A local directory.
    Fs(fs::FsBackend),
    /// A bucket and prefix in S3 (AWS or any S3-compatible endpoint).
    S3(s3::S3Backend),
}

impl Backend {
    /// Stores a new resource definition. `Ok(false)` when one with its name exists: of two
    /// concurrent creations of one name exactly one returns `Ok(true)`.
    pub async fn create<R: Resource>(&self, def: &R) -> Result<bool, Error> {
        match self {
            Backend::Fs(b) => b.create(def),
            Backend::S3(b) => b.create(def).await,
        }
    }

    /// A resource definition by name.
    pub async fn get<R: Resource>(&self, name: &str) -> Result<Option<R>, Error> {
        match self {
            Backend::Fs(b) => Ok(b.get(name)),
            Backend::S3(b) => b.get(name).await,
        }
    }

    /// A resource definition by name, or `ResourceNotFoundException` naming its kind.
    pub async fn require<R: Resource>(&self, name: &str) -> Result<R, Error> {
        self.get::<R>(name)
            .await?
            .ok_or_else(|| Error::not_found(R::KIND.noun(), name))
    }

    /// Every definition of one kind, sorted by name.
    pub async fn list<R: Resource>(&self) -> Result<Vec<R>, Error> {
        match self {
            Backend::Fs(b) => Ok(b.list()),
            Backend::S3(b) => b.list().await,
        }
    }

    /// Changes a stored definition with `change`, which may run more than once when another
    /// writer changed it meanwhile. `Ok(None)` when there is no such resource.
    pub async fn update<R, T, F>(&self, name: &str, change: F) -> Result<Option<T>, Error>
    where
        R: Resource,
        F: FnMut(&mut R) -> Result<T, Error> + Send,
        T: Send,
    {
        match self {
            Backend::Fs(b) => b.update(name, change),
            Backend::S3(b) => b.update(name, change).await,
        }
    }

    /// [`Backend::update`] of a resource that must exist: `ResourceNotFoundException`
    /// naming its kind otherwise.
    pub async fn modify<R, T, F>(&self, name: &str, change: F) -> Result<T, Error>
    where
        R: Resource,
        F: FnMut(&mut R) -> Result<T, Error> + Send,
        T: Send,
    {
        self.update(name, change)
            .await?
            .ok_or_else(|| Error::not_found(R::KIND.noun(), name))
    }

    /// Removes a definition; `Ok(false)` when there was none.
    pub async fn delete<R: Resource>(&self, name: &str) -> Result<bool, Error> {
        match self {
            Backend::Fs(b) => b.delete::<R>(name),
            Backend::S3(b) => b.delete::<R>(name).await,
        }
    }

    /// Prepares the message store of a new channel or datastore.
    pub fn open_data(&self, kind: Kind, name: &str, format: Format) -> Result<(), Error> {
        match self {
            Backend::Fs(b) => b.open_data(kind, name, format),
            Backend::S3(_) => Ok(()),
        }
    }

    /// Deletes a channel's or datastore's messages.
    pub async fn drop_data(&self, kind: Kind, name: &str) -> Result<(), Error> {
        match self {
            Backend::Fs(b) => b.drop_data(kind, name).await,
            Backend::S3(b) => b.drop_data(kind, name).await,
        }
    }

    /// Size and last arrival of a channel's or datastore's messages.
    pub async fn stats(&self, kind: Kind, name: &str) -> Result<DataStats, Error> {
        match self {
            Backend::Fs(b) => Ok(b.stats(kind, name)),
            Backend::S3(b) => b.stats(kind, name).await,
        }
    }

    /// Up to `n` of a channel's newest payloads, newest last.
    pub async fn sample(&self, channel: &str, n: usize) -> Result<Vec<Vec<u8>>, Error> {
        match self {
            Backend::Fs(b) => b.sample(channel, n).await,
            Backend::S3(b) => b.sample(channel, n).await,
        }
    }

    /// A channel's stored payloads that arrived in `[start, end)` (seconds since the epoch;
    /// either end open), oldest first. S3 selects by each batch's arrival; the filesystem by
    /// segment (see [`segments::lines_between`]).
    pub async fn channel_lines(
        &self,
        channel: &str,
        start: Option<f64>,
        end: Option<f64>,
    ) -> Result<Vec<Vec<u8>>, Error> {
        match self {
            Backend::Fs(b) => b.channel_lines(channel, start, end).await,
            Backend::S3(b) => b.channel_lines(channel, start, end).await,
        }
    }

    /// Removes a channel's or datastore's data that arrived before `cutoff` (seconds since the
    /// epoch): on S3 each batch's objects, on the filesystem whole segments; returns how many
    /// objects or segments went.
    pub async fn expire(&self, kind: Kind, name: &str, cutoff: f64) -> Result<u64, Error> {
        match self {
            Backend::Fs(b) => b.expire(kind, name, cutoff).await,
            Backend::S3(b) => b.expire(kind, name, cutoff).await,
        }
    }

    /// Whether messages can be sent to this channel.
    pub async fn channel_exists(&self, channel: &str) -> Result<bool, Error> {
        match self {
            Backend::Fs(b) => Ok(b.has_data(Kind::Channel, channel)),
            Backend::S3(b) => b.channel_exists(channel).await,
        }
    }

    /// Makes an accepted batch durable; returns once it is.
    pub async fn append(&self, append: Append) -> Result<(), Error> {
        match self {
            Backend::Fs(b) => b.append(append).await,
            Backend::S3(b) => b.append(append).await,
        }
    }

    /// Keeps a dataset content's CSV, written to `file` by the query engine.
    pub async fn save_result(
        &self,
        dataset: &str,
        version: &str,
        file: &Path,
    ) -> Result<(), Error> {
        match self {
            Backend::Fs(b) => b.save_result(dataset, version, file),
            Backend::S3(b) => b.save_result(dataset, version, file).await,
        }
    }

    /// A succeeded content's CSV: from the backend's results, or from `result` (`s3://…`)
    /// where the query engine wrote it.
    pub async fn read_result(
        &self,
        dataset: &str,
        version: &str,
        result: Option<&str>,
    ) -> Result<bytes::Bytes, Error> {
        match self {
            Backend::Fs(b) => Ok(tokio::fs::read(b.result_path(dataset, version))
                .await?
                .into()),
            Backend::S3(b) => b.read_result(dataset, version, result).await,
        }
    }

    /// Deletes dataset content CSVs (missing ones are fine).
    pub async fn delete_results(&self, dataset: &str, versions: &[String]) {
        match self {
            Backend::Fs(b) => b.delete_results(dataset, versions),
            Backend::S3(b) => b.delete_results(dataset, versions).await,
        }
    }

    /// Called when the schema of `def` may need declaring elsewhere (the Glue table on AWS).
    pub async fn datastore_created(&self, def: &DatastoreDef) -> Result<(), Error> {
        match self {
            Backend::Fs(_) => Ok(()),
            Backend::S3(b) => b.datastore_created(def).await,
        }
    }

    /// Background work still queued: datastore segments waiting for conversion to Parquet
    /// (always zero on S3, where objects are written in their final format).
    pub fn pending_background_work(&self) -> usize {
        match self {
            Backend::Fs(b) => b.unconverted_segments(),
            Backend::S3(_) => 0,
        }
    }

    /// Flushes and stops background work.
    pub async fn shutdown(&self) {
        match self {
            Backend::Fs(b) => b.shutdown().await,
            Backend::S3(_) => {}
        }
    }
}

//! The filesystem backend: the catalog in one JSON file replaced atomically on every change,
//! messages in segment logs ([`super::segments`]), dataset results as CSV files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::catalog::{Catalog, Resource};
use crate::error::Error;

use super::segments::{self, Format, Kind, Store, Write, write_atomic};
use super::{Append, DataStats};

/// A service's state under one data directory.
pub struct FsBackend {
    data_dir: PathBuf,
    durable: bool,
    catalog: Mutex<Catalog>,
    store: Arc<Store>,
}

fn catalog_path(data_dir: &Path) -> PathBuf {
    data_dir.join("catalog.json")
}

impl FsBackend {
    /// Opens (or creates) the data directory and reopens every channel's and datastore's log.
    pub fn open(data_dir: &Path, durable: bool) -> Result<Self, Error> {
        std::fs::create_dir_all(data_dir)?;
        let catalog: Catalog = match std::fs::read(catalog_path(data_dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Catalog::default(),
            Err(e) => return Err(e.into()),
        };
        let store = Store::open(data_dir, durable)?;
        for name in catalog.channels.keys() {
            store.open_log(Kind::Channel, name, Format::Json)?;
        }
        for def in catalog.datastores.values() {
            store.open_log(Kind::Datastore, &def.name, def.format())?;
        }
        Ok(Self {
            data_dir: data_dir.to_owned(),
            durable,
            catalog: Mutex::new(catalog),
            store,
        })
    }

    fn catalog(&self) -> MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, catalog: &Catalog) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(catalog)?;
        write_atomic(&catalog_path(&self.data_dir), &bytes, self.durable)?;
        Ok(())
    }

    pub(super) fn create<R: Resource>(&self, def: &R) -> Result<bool, Error> {
        let mut catalog = self.catalog();
        if R::entries(&mut catalog).contains_key(def.name()) {
            return Ok(false);
        }
        R::entries(&mut catalog).insert(def.name().to_owned(), def.clone());
        self.save(&catalog)?;
        Ok(true)
    }

    pub(super) fn get<R: Resource>(&self, name: &str) -> Option<R> {
        R::entries(&mut self.catalog()).get(name).cloned()
    }

    pub(super) fn list<R: Resource>(&self) -> Vec<R> {
        R::entries(&mut self.catalog()).values().cloned().collect()
    }

    pub(super) fn update<R, T, F>(&self, name: &str, mut change: F) -> Result<Option<T>, Error>
    where
        R: Resource,
        F: FnMut(&mut R) -> Result<T, Error>,
    {
        let mut catalog = self.catalog();
        let Some(def) = R::entries(&mut catalog).get_mut(name) else {
            return Ok(None);
        };
        // Changed on a copy, so a refused change leaves the catalog as it was.
        let mut changed = def.clone();
        let out = change(&mut changed)?;
        *def = changed;
        self.save(&catalog)?;
        Ok(Some(out))
    }

    pub(super) fn delete<R: Resource>(&self, name: &str) -> Result<bool, Error> {
        let mut catalog = self.catalog();
        if R::entries(&mut catalog).remove(name).is_none() {
            return Ok(false);
        }
        self.save(&catalog)?;
        Ok(true)
    }

    pub(super) fn open_data(&self, kind: Kind, name: &str, format: Format) -> Result<(), Error> {
        self.store.open_log(kind, name, format).map(|_| ())
    }

    pub(super) async fn drop_data(&self, kind: Kind, name: &str) -> Result<(), Error> {
        self.store.drop_log(kind, name).await
    }

    pub(super) fn has_data(&self, kind: Kind, name: &str) -> bool {
        self.store.log(kind, name).is_some()
    }

    pub(super) fn stats(&self, kind: Kind, name: &str) -> DataStats {
        let Some(log) = self.store.log(kind, name) else {
            return DataStats::default();
        };
        let state = log.state();
        DataStats {
            size_bytes: state.total_bytes,
            last_arrival: state.last_arrival.map(|t| (t * 1000.0).round() / 1000.0),
        }
    }

    pub(super) async fn sample(&self, channel: &str, n: usize) -> Result<Vec<Vec<u8>>, Error> {
        let log = self
            .store
            .log(Kind::Channel, channel)
            .ok_or_else(|| Error::not_found("channel", channel))?;
        tokio::task::spawn_blocking(move || segments::tail_lines(&log, n))
            .await
            .map_err(|e| Error::InternalFailure(e.to_string()))?
    }

    pub(super) async fn channel_lines(
        &self,
        channel: &str,
        start: Option<f64>,
        end: Option<f64>,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let log = self
            .store
            .log(Kind::Channel, channel)
            .ok_or_else(|| Error::not_found("channel", channel))?;
        tokio::task::spawn_blocking(move || segments::lines_between(&log, start, end))
            .await
            .map_err(|e| Error::InternalFailure(e.to_string()))?
    }

    pub(super) async fn expire(&self, kind: Kind, name: &str, cutoff: f64) -> Result<u64, Error> {
        let cutoff = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(cutoff.max(0.0));
        self.store.expire(kind, name, cutoff).await
    }

    pub(super) async fn append(&self, append: Append) -> Result<(), Error> {
        let mut writes = Vec::with_capacity(1 + append.datastores.len());
        if append.channel_records > 0 {
            let log = self
                .store
                .log(Kind::Channel, &append.channel)
                .ok_or_else(|| Error::not_found("channel", &append.channel))?;
            writes.push(Write {
                log,
                data: append.channel_lines,
                records: append.channel_records,
                attrs: Vec::new(),
            });
        }
        for d in append.datastores {
            // A datastore deleted after the pipeline was read receives nothing, as on AWS.
            let Some(log) = self.store.log(Kind::Datastore, &d.datastore) else {
                continue;
            };
            if d.records > 0 {
                writes.push(Write {
                    log,
                    data: d.lines,
                    records: d.records,
                    attrs: d.attrs,
                });
            }
        }
        self.store.append(writes).await
    }

    /// The segment log of a datastore, for queries.
    pub fn datastore_log(&self, name: &str) -> Option<Arc<segments::Log>> {
        self.store.log(Kind::Datastore, name)
    }

    /// Sealed datastore segments the compaction thread has still to convert.
    pub fn unconverted_segments(&self) -> usize {
        self.store.unconverted_segments()
    }

    fn results_dir(&self, dataset: &str) -> PathBuf {
        self.data_dir.join("datasets").join(dataset)
    }

    /// Where a dataset content's CSV is kept.
    pub fn result_path(&self, dataset: &str, version: &str) -> PathBuf {
        self.results_dir(dataset).join(format!("{version}.csv"))
    }

    pub(super) fn save_result(
        &self,
        dataset: &str,
        version: &str,
        file: &Path,
    ) -> Result<(), Error> {
        let target = self.result_path(dataset, version);
        std::fs::create_dir_all(self.results_dir(dataset))?;
        std::fs::rename(file, &target)?;
        Ok(())
    }

    pub(super) fn delete_results(&self, dataset: &str, versions: &[String]) {
        for version in versions {
            let _ = std::fs::remove_file(self.result_path(dataset, version));
        }
        // The folder goes once it is empty (a deleted dataset's).
        let _ = std::fs::remove_dir(self.results_dir(dataset));
    }

    /// A scratch directory on the same file system as the results (renames stay atomic).
    pub fn scratch_dir(&self) -> PathBuf {
        self.data_dir.join("datasets")
    }

    pub(super) async fn shutdown(&self) {
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
    }
}

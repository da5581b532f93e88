//! Channel and datastore messages as JSON Lines objects partitioned by day, and each
//! datastore's schema as one conditionally written object.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::catalog::{ChannelDef, DatastoreDef};
use crate::error::Error;
use crate::store::{Append, DataStats, Kind, arrow};
use crate::validate::{AttrType, merge_attr};

use super::{CACHE_FOR, S3Backend, S3Failure, classify, s3_failure};

/// Object reads or deletions in flight at once.
const IN_FLIGHT: usize = 16;
/// Attempts of a schema read-change-write under contention.
const SCHEMA_ATTEMPTS: usize = 20;

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// The arrival time a data object's name records (`MILLIS-UUID.jsonl`).
fn arrival_of(key: &str) -> Option<f64> {
    let name = key.rsplit('/').next()?;
    let millis: u64 = name.split('-').next()?.parse().ok()?;
    Some(millis as f64 / 1000.0)
}

impl S3Backend {
    fn data_prefix(&self, kind: Kind, name: &str) -> String {
        let folder = match kind {
            Kind::Channel => "channels",
            Kind::Datastore => "datastores",
        };
        self.key(&format!("{folder}/{name}/"))
    }

    fn schema_key(&self, datastore: &str) -> String {
        self.key(&format!("schemas/{datastore}.json"))
    }

    /// Every data object of a channel or datastore: key and size.
    async fn objects(&self, prefix: &str) -> Result<Vec<(String, u64)>, Error> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.location.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_failure("ListObjectsV2", prefix, e))?;
            out.extend(page.contents().iter().filter_map(|o| {
                let key = o.key()?;
                key.ends_with(".jsonl")
                    .then(|| (key.to_owned(), o.size().unwrap_or(0).max(0) as u64))
            }));
        }
        Ok(out)
    }

    async fn put(&self, key: String, body: Vec<u8>) -> Result<(), Error> {
        self.client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&key)
            .content_type("application/x-ndjson")
            .body(body.into())
            .send()
            .await
            .map_err(|e| s3_failure("PutObject", &key, e))?;
        Ok(())
    }

    /// An object listed a moment ago; gone since is an error, as for any read of data.
    async fn get_bytes(&self, key: &str) -> Result<bytes::Bytes, Error> {
        self.get_versioned(key)
            .await?
            .map(|(bytes, _)| bytes)
            .ok_or_else(|| Error::InternalFailure(format!("{key} was deleted while being read")))
    }

    pub(in crate::store) async fn channel_exists(&self, channel: &str) -> Result<bool, Error> {
        let fresh = self
            .channels_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(channel)
            .is_some_and(|seen| seen.elapsed() < CACHE_FOR);
        if fresh {
            return Ok(true);
        }
        let exists = self.get::<ChannelDef>(channel).await?.is_some();
        if exists {
            self.channels_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(channel.to_owned(), Instant::now());
        }
        Ok(exists)
    }

    /// A datastore's attributes and their kinds, in order of first appearance.
    pub async fn schema(&self, datastore: &str) -> Result<Vec<(String, AttrType)>, Error> {
        Ok(self
            .read_schema(datastore)
            .await?
            .map(|(s, _)| s)
            .unwrap_or_default())
    }

    async fn read_schema(
        &self,
        datastore: &str,
    ) -> Result<Option<(Vec<(String, AttrType)>, String)>, Error> {
        let key = self.schema_key(datastore);
        match self.get_versioned(&key).await? {
            Some((bytes, etag)) => Ok(Some((serde_json::from_slice(&bytes)?, etag))),
            None => Ok(None),
        }
    }

    /// Adds the attributes of an accepted batch to the datastore's schema, and declares the
    /// change to Glue, before the batch is stored: a query never meets a column it was not
    /// told about. Nothing is read when this instance already knows every attribute.
    async fn extend_schema(
        &self,
        datastore: &str,
        attrs: &[(String, AttrType)],
    ) -> Result<(), Error> {
        let known = {
            let cache = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(datastore)
                .and_then(|(schema, at)| (at.elapsed() < CACHE_FOR).then(|| schema.clone()))
        };
        if let Some(mut schema) = known
            && !attrs.iter().any(|(n, t)| merge_attr(&mut schema, n, *t))
        {
            return Ok(());
        }
        let key = self.schema_key(datastore);
        for _ in 0..SCHEMA_ATTEMPTS {
            let stored = self.read_schema(datastore).await?;
            let (mut schema, etag) = stored.map_or((Vec::new(), None), |(s, e)| (s, Some(e)));
            let mut changed = false;
            for (n, t) in attrs {
                changed |= merge_attr(&mut schema, n, *t);
            }
            if changed {
                let request = self
                    .client
                    .put_object()
                    .bucket(&self.location.bucket)
                    .key(&key)
                    .content_type("application/json")
                    .body(serde_json::to_vec(&schema)?.into());
                let request = match &etag {
                    Some(etag) => request.if_match(etag),
                    None => request.if_none_match("*"),
                };
                if let Err(e) = request.send().await {
                    match classify("PutObject", &key, e) {
                        S3Failure::ConditionFailed | S3Failure::NotFound => continue,
                        S3Failure::Other(e) => return Err(e),
                    }
                }
            }
            // Glue is told on every change this instance sees, and whenever it first reads a
            // schema, so a Glue update lost to a crash is repeated by the next instance.
            #[cfg(feature = "lambda-host")]
            if let Some(glue) = &self.glue {
                glue.sync_table(datastore, &schema).await?;
            }
            self.schemas
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(datastore.to_owned(), (schema, Instant::now()));
            return Ok(());
        }
        Err(Error::Throttling(format!(
            "The schema of datastore {datastore} is being changed by too many requests at once; retry"
        )))
    }

    pub(in crate::store) async fn append(&self, append: Append) -> Result<(), Error> {
        let now = now_millis();
        let day = chrono::DateTime::from_timestamp_millis(now as i64)
            .unwrap_or_default()
            .format("%Y-%m-%d");
        let name = format!("{now:013}-{}.jsonl", uuid::Uuid::new_v4());
        for d in &append.datastores {
            if d.records > 0 {
                self.extend_schema(&d.datastore, &d.attrs).await?;
            }
        }
        let mut puts = Vec::with_capacity(1 + append.datastores.len());
        if append.channel_records > 0 {
            let key = format!(
                "{}dt={day}/{name}",
                self.data_prefix(Kind::Channel, &append.channel)
            );
            puts.push(self.put(key, append.channel_lines));
        }
        for d in append.datastores {
            if d.records > 0 {
                let key = format!(
                    "{}dt={day}/{name}",
                    self.data_prefix(Kind::Datastore, &d.datastore)
                );
                puts.push(self.put(key, d.lines));
            }
        }
        futures::future::try_join_all(puts).await?;
        Ok(())
    }

    pub(in crate::store) async fn stats(&self, kind: Kind, name: &str) -> Result<DataStats, Error> {
        let objects = self.objects(&self.data_prefix(kind, name)).await?;
        Ok(DataStats {
            size_bytes: objects.iter().map(|(_, size)| size).sum(),
            last_arrival: objects
                .iter()
                .filter_map(|(key, _)| arrival_of(key))
                .fold(None, |newest: Option<f64>, t| {
                    Some(newest.map_or(t, |n| n.max(t)))
                }),
        })
    }

    pub(in crate::store) async fn sample(
        &self,
        channel: &str,
        n: usize,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let mut objects = self
            .objects(&self.data_prefix(Kind::Channel, channel))
            .await?;
        // Keys sort by day, then arrival: the newest objects are last.
        objects.sort();
        let mut out: Vec<Vec<u8>> = Vec::new();
        for (key, _) in objects.iter().rev() {
            if out.len() >= n {
                break;
            }
            let data = self.get_bytes(key).await?;
            crate::store::prepend_last_lines(&mut out, &data, false, n);
        }
        Ok(out)
    }

    /// A channel's stored payloads that arrived in `[start, end)` (seconds since the epoch),
    /// oldest first; each object records the arrival of its whole batch.
    pub(in crate::store) async fn channel_lines(
        &self,
        channel: &str,
        start: Option<f64>,
        end: Option<f64>,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let mut objects = self
            .objects(&self.data_prefix(Kind::Channel, channel))
            .await?;
        objects.sort();
        let mut out = Vec::new();
        for (key, _) in objects {
            let Some(t) = arrival_of(&key) else { continue };
            if start.is_some_and(|s| t < s) || end.is_some_and(|e| t >= e) {
                continue;
            }
            let data = self.get_bytes(&key).await?;
            out.extend(
                data.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
        Ok(out)
    }

    /// Deletes the data objects of a channel or datastore that arrived before `cutoff`
    /// (seconds since the epoch); returns how many went. Whole `dt=` partitions go as their
    /// last object does.
    pub(in crate::store) async fn expire(
        &self,
        kind: Kind,
        name: &str,
        cutoff: f64,
    ) -> Result<u64, Error> {
        let expired: Vec<String> = self
            .objects(&self.data_prefix(kind, name))
            .await?
            .into_iter()
            .filter(|(key, _)| arrival_of(key).is_some_and(|t| t < cutoff))
            .map(|(key, _)| key)
            .collect();
        let n = expired.len() as u64;
        futures::stream::iter(expired)
            .map(|key| async move { self.delete_key(&key).await })
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        if n > 0 {
            tracing::info!(%name, objects = n, "expired objects removed");
        }
        Ok(n)
    }

    pub(in crate::store) async fn drop_data(&self, kind: Kind, name: &str) -> Result<(), Error> {
        let objects = self.objects(&self.data_prefix(kind, name)).await?;
        futures::stream::iter(objects)
            .map(|(key, _)| async move { self.delete_key(&key).await })
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        if kind == Kind::Datastore {
            let _ = self.delete_key(&self.schema_key(name)).await;
            self.schemas
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            #[cfg(feature = "lambda-host")]
            if let Some(glue) = &self.glue {
                glue.drop_table(name).await?;
            }
        } else {
            self.channels_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
        }
        Ok(())
    }

    pub(in crate::store) async fn datastore_created(
        &self,
        def: &DatastoreDef,
    ) -> Result<(), Error> {
        // A Parquet datastore's schema definition is known before any message arrives.
        if let Some(columns) = def.defined_columns() {
            self.extend_schema(&def.name, &columns).await?;
        }
        Ok(())
    }

    /// Every stored message of a datastore, as batches of `schema`.
    pub async fn read_datastore(
        &self,
        datastore: &str,
        schema: SchemaRef,
    ) -> Result<Vec<RecordBatch>, Error> {
        let objects = self
            .objects(&self.data_prefix(Kind::Datastore, datastore))
            .await?;
        let schema = Arc::new(schema);
        let parts: Vec<Vec<RecordBatch>> = futures::stream::iter(objects)
            .map(|(key, _)| {
                let schema = schema.clone();
                async move {
                    let data = self.get_bytes(&key).await?;
                    tokio::task::spawn_blocking(move || arrow::decode_jsonl(&data, &schema))
                        .await
                        .map_err(|e| Error::InternalFailure(e.to_string()))?
                }
            })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(parts.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_objects_name_gives_its_arrival_time() {
        assert_eq!(
            arrival_of("p/datastores/d/dt=2026-12-01/1764547200123-0f0e.jsonl"),
            Some(1_764_547_200.123)
        );
        assert_eq!(arrival_of("p/datastores/d/dt=2026-12-01/junk.jsonl"), None);
    }
}

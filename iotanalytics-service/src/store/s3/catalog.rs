//! Resource definitions as one S3 object each, written only conditionally.

use futures::{StreamExt as _, TryStreamExt as _};

use crate::catalog::Resource;
use crate::error::Error;

use super::{S3Backend, S3Failure, classify, s3_failure};

/// Reads of the definitions a listing names, in flight at once.
const LIST_READS: usize = 16;
/// Attempts of a read-change-write before a change gives up under contention.
const UPDATE_ATTEMPTS: usize = 20;

impl S3Backend {
    fn catalog_prefix<R: Resource>(&self) -> String {
        self.key(&format!("catalog/{}/", R::KIND.plural()))
    }

    fn catalog_key<R: Resource>(&self, name: &str) -> String {
        format!("{}{name}.json", self.catalog_prefix::<R>())
    }

    pub(in crate::store) async fn create<R: Resource>(&self, def: &R) -> Result<bool, Error> {
        let key = self.catalog_key::<R>(def.name());
        let body = serde_json::to_vec(def)?;
        match self
            .client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&key)
            .if_none_match("*")
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match classify("PutObject", &key, e) {
                S3Failure::ConditionFailed => Ok(false),
                S3Failure::NotFound => Err(Error::InternalFailure(format!(
                    "The service's bucket {} does not exist",
                    self.location.bucket
                ))),
                S3Failure::Other(e) => Err(e),
            },
        }
    }

    /// A definition and the ETag it was read with.
    async fn read<R: Resource>(&self, name: &str) -> Result<Option<(R, String)>, Error> {
        let key = self.catalog_key::<R>(name);
        let Some((bytes, etag)) = self.get_versioned(&key).await? else {
            return Ok(None);
        };
        let def = serde_json::from_slice(&bytes)
            .map_err(|e| Error::InternalFailure(format!("{key} is not a valid definition: {e}")))?;
        Ok(Some((def, etag)))
    }

    pub(in crate::store) async fn get<R: Resource>(&self, name: &str) -> Result<Option<R>, Error> {
        Ok(self.read::<R>(name).await?.map(|(def, _)| def))
    }

    /// The names of every stored definition of a kind, sorted.
    async fn names<R: Resource>(&self) -> Result<Vec<String>, Error> {
        let prefix = self.catalog_prefix::<R>();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.location.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_failure("ListObjectsV2", &prefix, e))?;
            names.extend(page.contents().iter().filter_map(|o| {
                o.key()?
                    .strip_prefix(&prefix)?
                    .strip_suffix(".json")
                    .filter(|n| !n.contains('/'))
                    .map(str::to_owned)
            }));
        }
        names.sort();
        Ok(names)
    }

    pub(in crate::store) async fn list<R: Resource>(&self) -> Result<Vec<R>, Error> {
        let names = self.names::<R>().await?;
        // A definition deleted between the listing and its read is left out.
        let defs: Vec<Option<R>> = futures::stream::iter(names)
            .map(|name| async move { self.get::<R>(&name).await })
            .buffered(LIST_READS)
            .try_collect()
            .await?;
        Ok(defs.into_iter().flatten().collect())
    }

    pub(in crate::store) async fn update<R, T, F>(
        &self,
        name: &str,
        mut change: F,
    ) -> Result<Option<T>, Error>
    where
        R: Resource,
        F: FnMut(&mut R) -> Result<T, Error> + Send,
        T: Send,
    {
        let key = self.catalog_key::<R>(name);
        for _ in 0..UPDATE_ATTEMPTS {
            let Some((mut def, etag)) = self.read::<R>(name).await? else {
                return Ok(None);
            };
            let out = change(&mut def)?;
            let body = serde_json::to_vec(&def)?;
            match self
                .client
                .put_object()
                .bucket(&self.location.bucket)
                .key(&key)
                .if_match(etag)
                .content_type("application/json")
                .body(body.into())
                .send()
                .await
            {
                Ok(_) => return Ok(Some(out)),
                Err(e) => match classify("PutObject", &key, e) {
                    // Deleted meanwhile, or changed by another writer: read again.
                    S3Failure::ConditionFailed | S3Failure::NotFound => continue,
                    S3Failure::Other(e) => return Err(e),
                },
            }
        }
        Err(Error::Throttling(format!(
            "The {} {name} is being changed by too many requests at once; retry",
            R::KIND.noun()
        )))
    }

    pub(in crate::store) async fn delete<R: Resource>(&self, name: &str) -> Result<bool, Error> {
        let key = self.catalog_key::<R>(name);
        if self.read::<R>(name).await?.is_none() {
            return Ok(false);
        }
        self.delete_key(&key).await?;
        Ok(true)
    }
}

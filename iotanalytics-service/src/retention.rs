//! Retention: every `sweep_every` of the [`RetentionClock`], each channel and datastore whose
//! `retentionPeriod` has a `numberOfDays` loses the data that arrived more than that many
//! (clock) days ago; customer-managed storage is left alone, as the real service did. Each
//! dataset likewise loses the finished content versions created longer ago than its
//! `retentionPeriod` (90 days unless set), results included.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::catalog::{ChannelDef, ContentState, DatasetDef, DatastoreDef};
use crate::config::RetentionClock;
use crate::error::Error;
use crate::rules::{is_customer_managed, retention_days};
use crate::store::{Backend, Kind};

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// One pass over every channel and datastore; returns the objects or segments removed.
pub async fn sweep(backend: &Backend, clock: RetentionClock) -> Result<u64, Error> {
    let mut targets: Vec<(Kind, String, u64)> = Vec::new();
    for c in backend.list::<ChannelDef>().await? {
        if let Some(days) =
            retention_days(&c.retention_period).filter(|_| !is_customer_managed(&c.storage))
        {
            targets.push((Kind::Channel, c.name, days));
        }
    }
    for d in backend.list::<DatastoreDef>().await? {
        if let Some(days) =
            retention_days(&d.retention_period).filter(|_| !is_customer_managed(&d.storage))
        {
            targets.push((Kind::Datastore, d.name, days));
        }
    }
    let now = now_secs();
    let mut removed = 0;
    for (kind, name, days) in targets {
        let cutoff = now - clock.day.as_secs_f64() * days as f64;
        removed += backend.expire(kind, &name, cutoff).await?;
    }
    for dataset in backend.list::<DatasetDef>().await? {
        let Some(days) = retention_days(&dataset.retention_period) else {
            continue;
        };
        let cutoff = now - clock.day.as_secs_f64() * days as f64;
        // Only a dataset with something to remove is written (on S3 every write is a PUT).
        if dataset
            .contents
            .iter()
            .any(|c| c.state != ContentState::Creating && c.creation_time < cutoff)
        {
            removed += expire_versions(backend, &dataset.name, cutoff).await?;
        }
    }
    Ok(removed)
}

/// Removes a dataset's finished content versions created before `cutoff`, and their results.
async fn expire_versions(backend: &Backend, dataset: &str, cutoff: f64) -> Result<u64, Error> {
    let expired = backend
        .update(dataset, |def: &mut DatasetDef| {
            let expired: Vec<String> = def
                .contents
                .iter()
                .filter(|c| c.state != ContentState::Creating && c.creation_time < cutoff)
                .map(|c| c.version_id.clone())
                .collect();
            def.contents.retain(|c| !expired.contains(&c.version_id));
            Ok(expired)
        })
        .await?
        .unwrap_or_default();
    if !expired.is_empty() {
        backend.delete_results(dataset, &expired).await;
        tracing::info!(%dataset, versions = expired.len(), "expired dataset contents removed");
    }
    Ok(expired.len() as u64)
}

/// Sweeps every `clock.sweep_every` until aborted.
pub fn spawn(backend: Arc<Backend>, clock: RetentionClock) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(clock.sweep_every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = sweep(&backend, clock).await {
                tracing::warn!(error = %e, "retention sweep failed");
            }
        }
    })
}

//! Retention: every `sweep_every` of the [`RetentionClock`], each channel and datastore whose
//! `retentionPeriod` has a `numberOfDays` loses the data that arrived more than that many
//! (clock) days ago. Customer-managed storage is left alone, as the real service did.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::catalog::{ChannelDef, DatastoreDef};
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
    Ok(removed)
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

//! The life of one dataset content, whoever asked for it (CreateDatasetContent, a schedule or
//! a triggering dataset): start its query, record how it ended, deliver a succeeded one to the
//! dataset's `contentDeliveryRules` and create the contents of the datasets it triggers.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::catalog::{ContentState, ContentVersion, DatasetDef, DatastoreDef};
use crate::error::Error;
use crate::query::{Engine, Outcome, Started};
use crate::store::Backend;

use super::{Service, now};

/// Who asked for a content.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Origin {
    /// CreateDatasetContent: limited to one per second per dataset.
    Request,
    /// A schedule trigger, for this instant (seconds since the epoch): its `scheduleTime`.
    /// An instant already fired (by this or another instance) is not fired again.
    Schedule(f64),
    /// A triggering dataset's content succeeded.
    Trigger,
}

/// Starts a content of dataset `name`; returns its version id, or `None` when `origin` is a
/// schedule instant the dataset already had a content for.
pub(crate) async fn start_content(
    svc: &Arc<Service>,
    name: &str,
    origin: Origin,
) -> Result<Option<String>, Error> {
    let version_id = uuid::Uuid::new_v4().to_string();
    // A deltaTime filter needs the datastore names to know which tables to window.
    let delta = crate::delta::delta_time(&svc.backend.require::<DatasetDef>(name).await?.actions);
    let datastores: Vec<String> = match delta {
        Some(_) => svc
            .backend
            .list::<DatastoreDef>()
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect(),
        None => Vec::new(),
    };
    let sql = svc
        .backend
        .modify(name, |def: &mut DatasetDef| {
            let t = now();
            let schedule_time = match origin {
                Origin::Schedule(at) => {
                    if def.last_scheduled.is_some_and(|last| last >= at) {
                        return Ok(None);
                    }
                    def.last_scheduled = Some(at);
                    Some(at)
                }
                // One per second per dataset, counted from the newest content's creation, so
                // every instance of the service applies the same quota.
                Origin::Request
                    if def
                        .contents
                        .last()
                        .is_some_and(|c| (t - c.creation_time).abs() < 1.0) =>
                {
                    return Err(Error::Throttling(format!(
                        "CreateDatasetContent is limited to 1 request per second for dataset {}",
                        def.name
                    )));
                }
                Origin::Request | Origin::Trigger => None,
            };
            let mut sql = def
                .sql()
                .ok_or_else(|| Error::InvalidRequest("The dataset has no queryAction".into()))?
                .to_owned();
            if let Some(delta) = crate::delta::delta_time(&def.actions) {
                let end = t - delta.offset_seconds as f64;
                sql = crate::delta::restrict(&sql, &datastores, &delta, def.delta_end, end)?;
                def.delta_end = Some(end);
            }
            def.contents.push(ContentVersion {
                version_id: version_id.clone(),
                state: ContentState::Creating,
                reason: None,
                creation_time: t,
                schedule_time,
                completion_time: None,
                rows: None,
                query_execution_id: None,
                result: None,
            });
            Ok(Some(sql))
        })
        .await?;
    let Some(sql) = sql else {
        return Ok(None);
    };
    tracing::info!(dataset = %name, version = %version_id, ?origin, "dataset content started");
    let started: Result<Started, Error> = match &svc.engine {
        Engine::DataFusion(engine) => {
            let datastores = svc.backend.list::<DatastoreDef>().await?;
            let scratch = match &*svc.backend {
                Backend::Fs(fs) => fs.scratch_dir(),
                Backend::S3(_) => std::env::temp_dir(),
            };
            std::fs::create_dir_all(&scratch)?;
            Ok(engine.start(
                svc.backend.clone(),
                datastores,
                name,
                &version_id,
                sql,
                scratch,
            ))
        }
        #[cfg(feature = "lambda-host")]
        Engine::Athena(athena) => athena
            .start(&sql, &version_id)
            .await
            .map(Started::Submitted),
    };
    match started {
        Ok(Started::Running(task)) => {
            let svc = svc.clone();
            let (dataset, version) = (name.to_owned(), version_id.clone());
            tokio::spawn(async move {
                let outcome = task.await.unwrap_or_else(|e| Outcome::Failed {
                    reason: format!("The query failed: {e}"),
                });
                if let Err(e) = finish(&svc, &dataset, &version, outcome).await {
                    tracing::error!(dataset, version, error = %e, "recording a dataset content failed");
                }
            });
        }
        Ok(Started::Submitted(id)) => {
            svc.backend
                .update(name, |def: &mut DatasetDef| {
                    if let Some(c) = def.contents.iter_mut().find(|c| c.version_id == version_id) {
                        c.query_execution_id = Some(id.clone());
                    }
                    Ok(())
                })
                .await?;
        }
        Err(e) => {
            finish(
                svc,
                name,
                &version_id,
                Outcome::Failed {
                    reason: e.to_string(),
                },
            )
            .await?;
        }
    }
    Ok(Some(version_id))
}

/// Creates a content of every dataset whose schedule came due on `timeline` and has not
/// fired yet; returns how many were started. Instants from before the dataset was created
/// or last updated do not fire; of several missed instants only the newest does.
pub(crate) async fn run_schedules(
    svc: &Arc<Service>,
    timeline: &crate::schedule::Timeline,
) -> Result<usize, Error> {
    let now = timeline.now();
    let mut started = 0;
    for def in svc.backend.list::<DatasetDef>().await? {
        let schedules = crate::schedule::schedules(&def.triggers);
        if schedules.is_empty() {
            continue;
        }
        let set_at = timeline.at(def.last_update_time);
        let after = def.last_scheduled.map_or(set_at, |l| l.max(set_at));
        let Some(at) = crate::schedule::due(&schedules, after, now, set_at) else {
            continue;
        };
        match start_content(svc, &def.name, Origin::Schedule(at)).await {
            Ok(Some(_)) => started += 1,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(dataset = %def.name, error = %e, "scheduled dataset content not started")
            }
        }
    }
    Ok(started)
}

/// Brings a dataset's contents still being created by Athena up to date.
pub(crate) async fn refresh(svc: &Arc<Service>, mut def: DatasetDef) -> Result<DatasetDef, Error> {
    let pending: Vec<(String, String)> = def
        .contents
        .iter()
        .filter(|c| c.state == ContentState::Creating)
        .filter_map(|c| Some((c.version_id.clone(), c.query_execution_id.clone()?)))
        .collect();
    if pending.is_empty() {
        return Ok(def);
    }
    for (version, id) in pending {
        if let Some(outcome) = svc.engine.poll(&id).await? {
            finish(svc, &def.name, &version, outcome).await?;
        }
    }
    if let Some(fresh) = svc.backend.get::<DatasetDef>(&def.name).await? {
        def = fresh;
    }
    Ok(def)
}

/// Brings every content still being created by Athena up to date (so that it is delivered
/// and triggers its dependents without a client asking for it); returns how many datasets
/// had such contents.
pub(crate) async fn refresh_all(svc: &Arc<Service>) -> Result<usize, Error> {
    let mut pending = 0;
    for def in svc.backend.list::<DatasetDef>().await? {
        let waiting = def
            .contents
            .iter()
            .any(|c| c.state == ContentState::Creating && c.query_execution_id.is_some());
        if waiting {
            pending += 1;
            let name = def.name.clone();
            if let Err(e) = refresh(svc, def).await {
                tracing::warn!(dataset = %name, error = %e, "polling dataset contents failed");
            }
        }
    }
    Ok(pending)
}

/// What recording an outcome changed.
struct Recorded {
    /// Finished versions the versioning configuration no longer keeps.
    dropped: Vec<String>,
    /// The dataset and the content, when this call made it SUCCEEDED.
    succeeded: Option<(DatasetDef, ContentVersion)>,
}

/// Records how a content's query ended and drops the finished versions the dataset's
/// versioning configuration no longer keeps; a content this call made SUCCEEDED is then
/// delivered and triggers its dependent datasets.
pub(crate) async fn finish(
    svc: &Arc<Service>,
    dataset: &str,
    version: &str,
    outcome: Outcome,
) -> Result<(), Error> {
    let backend = &svc.backend;
    let recorded = backend
        .update(dataset, |def: &mut DatasetDef| {
            let Some(content) = def.contents.iter_mut().find(|c| c.version_id == version) else {
                // Deleted while its query ran.
                return Ok(Recorded {
                    dropped: vec![version.to_owned()],
                    succeeded: None,
                });
            };
            if content.state != ContentState::Creating {
                return Ok(Recorded {
                    dropped: Vec::new(),
                    succeeded: None,
                });
            }
            content.completion_time = Some(now());
            match &outcome {
                Outcome::Succeeded { rows, result } => {
                    content.state = ContentState::Succeeded;
                    content.rows = *rows;
                    content.result.clone_from(result);
                }
                Outcome::Failed { reason } => {
                    content.state = ContentState::Failed;
                    content.reason = Some(reason.clone());
                }
            }
            let content = content.clone();
            let keep = def.max_versions();
            let finished: Vec<String> = def
                .contents
                .iter()
                .filter(|c| c.state != ContentState::Creating)
                .map(|c| c.version_id.clone())
                .collect();
            let mut dropped = Vec::new();
            if finished.len() > keep {
                dropped = finished[..finished.len() - keep].to_vec();
                let drop: HashSet<&String> = dropped.iter().collect();
                def.contents.retain(|c| !drop.contains(&c.version_id));
            }
            let succeeded =
                (content.state == ContentState::Succeeded).then(|| (def.clone(), content));
            Ok(Recorded { dropped, succeeded })
        })
        .await?
        // The dataset was deleted while its query ran.
        .unwrap_or_else(|| Recorded {
            dropped: vec![version.to_owned()],
            succeeded: None,
        });
    match &outcome {
        Outcome::Succeeded { rows, .. } => {
            tracing::info!(dataset, version, rows, "dataset content succeeded")
        }
        Outcome::Failed { reason } => {
            tracing::info!(dataset, version, reason, "dataset content failed")
        }
    }
    if !recorded.dropped.is_empty() {
        backend.delete_results(dataset, &recorded.dropped).await;
    }
    if let Some((def, content)) = recorded.succeeded {
        deliver(svc, &def, &content).await;
        // Awaited, not spawned: on the Lambda host a task outliving the invocation may never run.
        trigger_dependents(svc.clone(), dataset.to_owned()).await;
    }
    Ok(())
}

/// Copies a succeeded content to every S3 destination of its dataset's delivery rules. A
/// failure leaves the content SUCCEEDED (its CSV is still served) and is recorded as the
/// content's `status.reason`, besides the log line.
async fn deliver(svc: &Service, def: &DatasetDef, content: &ContentVersion) {
    let targets: Vec<crate::delivery::S3Destination> =
        crate::delivery::destinations(&def.content_delivery_rules)
            .into_iter()
            .map(|mut d| {
                d.key = crate::delivery::expand_key(
                    &d.key,
                    content.schedule_time.unwrap_or(content.creation_time),
                    content.creation_time,
                    &content.version_id,
                );
                d
            })
            .collect();
    if targets.is_empty() {
        return;
    }
    let failures: Vec<String> = match svc.config.delivery_client() {
        None => vec!["this service has no S3 client to deliver with".to_owned()],
        Some(client) => match svc
            .backend
            .read_result(&def.name, &content.version_id, content.result.as_deref())
            .await
        {
            Err(e) => vec![format!("reading the content's CSV failed: {e}")],
            Ok(csv) => {
                crate::delivery::deliver(client, &def.name, &content.version_id, csv, &targets)
                    .await
                    .into_iter()
                    .map(|e| e.to_string())
                    .collect()
            }
        },
    };
    if failures.is_empty() {
        return;
    }
    tracing::warn!(dataset = %def.name, version = %content.version_id, failures = ?failures, "dataset content delivery failed");
    let reason = format!("Content delivery failed: {}", failures.join("; "));
    let recorded = svc
        .backend
        .update(&def.name, |d: &mut DatasetDef| {
            if let Some(c) = d
                .contents
                .iter_mut()
                .find(|c| c.version_id == content.version_id)
            {
                c.reason = Some(reason.clone());
            }
            Ok(())
        })
        .await;
    if let Err(e) = recorded {
        tracing::error!(dataset = %def.name, error = %e, "recording a delivery failure failed");
    }
}

/// Creates a content of every dataset with a trigger naming `dataset`. Boxed: a triggered
/// content's own success comes back here.
fn trigger_dependents(
    svc: Arc<Service>,
    dataset: String,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let dependents = match svc.backend.list::<DatasetDef>().await {
            Ok(all) => all
                .into_iter()
                .filter(|d| crate::schedule::triggered_by(&d.triggers).any(|t| t == dataset))
                .map(|d| d.name)
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::error!(%dataset, error = %e, "listing the datasets it triggers failed");
                return;
            }
        };
        for dependent in dependents {
            match start_content(&svc, &dependent, Origin::Trigger).await {
                Ok(_) => tracing::info!(%dataset, %dependent, "triggered dataset content started"),
                Err(e) => {
                    tracing::warn!(%dataset, %dependent, error = %e, "triggered dataset content not started")
                }
            }
        }
    })
}
